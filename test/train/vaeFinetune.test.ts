/**
 * Fine-tuning a trained VAE's decoder (issue 18: the round trip must keep the character's shape):
 * the edge term's value on constructed frames, `train vae --init` starting from the saved weights, and
 * `--freeze-encoder` leaving every encoder parameter (so the latents) exactly as it was.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { tinyVaeConfig } from '../helpers/tinyVae.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { vaeStage } from '../../src/train/stages.js';
import { TRAIN_DEFAULTS, Trainer } from '../../src/train/trainer.js';
import { edgeLoss } from '../../src/train/vaeObjective.js';

let tmp: string;
beforeAll(async () => {
  await selectBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-vaeft-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackends();
});

describe('edgeLoss', () => {
  // one channel, one frame, a 1×4 row: a sharp step 0 0 1 1 against a ramp 0 1/3 2/3 1
  const row = (v: number[]) => tf.tensor(v, [1, 1, 1, 1, 4]);

  test('is the mean |difference error| along each axis, summed over the two axes', () => {
    const sharp = row([0, 0, 1, 1]); // differences along W: 0 1 0
    const ramp = row([0, 1 / 3, 2 / 3, 1]); // 1/3 1/3 1/3
    // two equal rows, so the H differences exist and are all 0
    const two = (t: tf.Tensor) => tf.concat([t, t], 3); // [1, 1, 1, 2, 4]: H differences are all 0
    const l = edgeLoss(two(ramp), two(sharp), undefined).dataSync()[0]!;
    // W: |1/3 − 0| + |1/3 − 1| + |1/3 − 0| = 4/3 over 3 pairs, per row, same in both rows → 4/9; H: 0
    expect(l).toBeCloseTo(4 / 9, 6);
    expect(edgeLoss(two(sharp), two(sharp), undefined).dataSync()[0]).toBe(0);
    // a constant offset changes the L1 but not the edges
    expect(edgeLoss(tf.add(two(sharp), 0.5), two(sharp), undefined).dataSync()[0]).toBeCloseTo(0, 6);
    tf.dispose([sharp, ramp]);
  });

  test('weights a pair by the larger weight of its two pixels', () => {
    const x = tf.tensor([0, 0, 1, 1, 0, 0, 1, 1], [1, 1, 1, 2, 4]);
    const xHat = tf.tensor([0, 0, 0, 1, 0, 0, 0, 1], [1, 1, 1, 2, 4]); // W errors: 0 1 1 per row (|0−1|, |1−0|)
    const w = tf.tensor([1, 1, 5, 1, 1, 1, 5, 1], [1, 1, 1, 2, 4]); // pair weights along W: 1 5 5
    // W: (1·0 + 5·1 + 5·1) / (1 + 5 + 5) per row = 10/11; H: x and x̂ have equal rows → 0 (weights 1 5 5 1)
    expect(edgeLoss(xHat, x, w).dataSync()[0]).toBeCloseTo(10 / 11, 6);
    tf.dispose([x, xHat, w]);
  });
});

describe('train vae --init / --freeze-encoder', () => {
  const raw = tinyVaeConfig({ widths: [4, 4], size: 64, temporalCompression: 2, scalingFactor: 0.5 });
  const train = { ...TRAIN_DEFAULTS, lr: 1e-2, warmupSteps: 0, totalSteps: 3, seed: 4 };

  async function trainedFrom(freezeEncoder: boolean) {
    const saved = new CogVideoXVAE(parseVaeConfig(raw).config, WeightSource.random(77));
    const src = path.join(tmp, `src-${String(freezeEncoder)}`);
    await saved.save(src);
    const dir = path.join(tmp, `run-${String(freezeEncoder)}`);
    fs.mkdirSync(dir);
    const stage = await vaeStage(dir, {
      init: src,
      freezeEncoder,
      batchSize: 1,
      foregroundWeight: 10,
      edgeWeight: 1,
      train,
    });
    const vae = stage.trainer.modules['vae']!;
    saved.setTrainable(true);
    const before = new Map([...saved.variables()].map(([n, v]) => [n, v.dataSync().slice()]));
    const same = (n: string) => {
      const a = vae.variables().get(n)!.dataSync();
      const b = before.get(n)!;
      return a.length === b.length && a.every((x, i) => x === b[i]);
    };
    return { stage, saved, before, same };
  }

  test('--init starts from the saved weights and config; --freeze-encoder trains only the decoder', async () => {
    const { stage, saved, before, same } = await trainedFrom(true);
    // the stage's config is the saved one, scaling_factor back to 1 (prepare calibrates it)
    const cfg = JSON.parse(fs.readFileSync(path.join(tmp, 'run-true', 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(cfg['block_out_channels']).toEqual([4, 4]);
    expect(cfg['scaling_factor']).toBe(1);
    const names = [...before.keys()];
    expect(names.every(same)).toBe(true);
    await stage.trainer.run(2);
    const enc = names.filter((n) => n.startsWith('encoder.'));
    const dec = names.filter((n) => n.startsWith('decoder.'));
    expect(enc.length).toBeGreaterThan(0);
    expect(enc.every(same)).toBe(true);
    // … and so is their average (what `train prepare` and the export read): the latents do not drift
    const ema = stage.trainer.emaWeights();
    for (const n of enc) expect(Array.from(ema.get(`vae.${n}`)!.dataSync())).toEqual(Array.from(before.get(n)!));
    expect(dec.filter((n) => !same(n)).length).toBeGreaterThan(dec.length / 2);
    // resuming it without the options it trained with (a plain L1 on everything) is refused
    const ckpt = path.join(tmp, 'run-true', 'checkpoint.safetensors');
    await stage.trainer.save(ckpt);
    const plain = await vaeStage(path.join(tmp, 'run-true'), { batchSize: 1, foregroundWeight: 10, train });
    await expect(plain.trainer.resume(ckpt)).rejects.toThrow(/trained with the objective config .*freezeEncoder":true/);
    plain.dispose();
    stage.dispose();
    saved.dispose();
  });

  test('without --freeze-encoder the encoder learns too', async () => {
    const { stage, saved, before, same } = await trainedFrom(false);
    await stage.trainer.run(2);
    const enc = [...before.keys()].filter((n) => n.startsWith('encoder.'));
    expect(enc.filter((n) => !same(n)).length).toBeGreaterThan(enc.length / 2);
    stage.dispose();
    saved.dispose();
  });

  test('a trainer with every parameter frozen is refused', () => {
    const vae = new CogVideoXVAE(parseVaeConfig(raw).config, WeightSource.random(1));
    expect(
      () =>
        new Trainer(
          'vae',
          { vae },
          () => ({ loss: () => tf.scalar(0) }),
          train,
          {},
          () => true,
        ),
    ).toThrow(/every parameter is frozen/);
    vae.dispose();
  });
});
