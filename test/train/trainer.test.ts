/** The training loop: it learns (overfit a fixed batch), resumes exactly, and refuses mismatches early. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { gaussianArray } from '../../src/sampler/noise.js';
import { ditObjective, type LatentDataset } from '../../src/train/ditObjective.js';
import { learningRate } from '../../src/train/schedule.js';
import { TRAIN_DEFAULTS, Trainer } from '../../src/train/trainer.js';

const S = 2;
const T = 4;
const cfg = (layers = 2) =>
  parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: 2,
    attention_head_dim: 16,
    num_layers: layers,
    in_channels: 4,
    out_channels: 4,
    text_embed_dim: 8,
    max_text_seq_length: T,
    time_embed_dim: 16,
    sample_height: 4,
    sample_width: 4,
    use_rotary_positional_embeddings: true,
  }).config;

/** Two clips of 2 scenes × 1 latent frame of 4×4, fixed random latents and embeddings. */
const data: LatentDataset = {
  size: 2,
  scenes: S,
  latentShape: [S, 4, 4, 4],
  latents: (i) => gaussianArray(S * 4 * 16, 100 + i),
  embeddings: (i) => gaussianArray(S * T * 8, 200 + i),
};

const opts = { ...TRAIN_DEFAULTS, lr: 3e-3, warmupSteps: 2, totalSteps: 40, minLr: 3e-4, seed: 7 };
let tmp: string;

beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-train-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackends();
});

function makeTrainer(seedWeights = 1, pConditional = 0.5, layers = 2) {
  const model = new Mask2DiTTransformer(cfg(layers), WeightSource.random(seedWeights));
  const trainer = new Trainer(
    'dit',
    { transformer: model },
    ditObjective(model, data, { batchSize: 2, pConditional }),
    opts,
    { transformer: JSON.stringify(model.configJson()) },
  );
  return { model, trainer };
}

describe('Trainer', () => {
  test('learning-rate schedule: linear warmup, cosine to minLr', () => {
    expect(learningRate(opts, 0)).toBeCloseTo(opts.lr / 2);
    expect(learningRate(opts, 1)).toBeCloseTo(opts.lr);
    expect(learningRate(opts, opts.totalSteps)).toBeCloseTo(opts.minLr);
    expect(learningRate(opts, 21)).toBeCloseTo((opts.lr + opts.minLr) / 2, 6);
  });

  test('overfits a tiny dataset: the loss goes down, both objectives are used, no tensor leak', async () => {
    const { model, trainer } = makeTrainer(1, 0.5);
    const before = tf.memory().numTensors;
    const recs = await trainer.run(30);
    expect(tf.memory().numTensors).toBe(before);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const first = mean(recs.slice(0, 5).map((r) => r.loss));
    const last = mean(recs.slice(-5).map((r) => r.loss));
    expect(last).toBeLessThan(0.8 * first);
    const kinds = new Set(recs.map((r) => String(r['objective']).split(':')[0]));
    expect(kinds).toEqual(new Set(['joint', 'conditional']));
    expect(recs.every((r) => r.gradNorm > 0 && Number.isFinite(r.gradNorm))).toBe(true);
    trainer.dispose();
    model.dispose();
  });

  test('resume continues exactly: same losses as an uninterrupted run', async () => {
    const a = makeTrainer(3);
    const full = await a.trainer.run(6);
    a.trainer.dispose();
    a.model.dispose();

    const b = makeTrainer(3);
    const firstHalf = await b.trainer.run(3);
    const ckpt = path.join(tmp, 'half.safetensors');
    await b.trainer.save(ckpt);
    b.trainer.dispose();
    b.model.dispose();

    const c = makeTrainer(99); // different initial weights: everything must come from the checkpoint
    await c.trainer.resume(ckpt);
    expect(c.trainer.step).toBe(3);
    const secondHalf = await c.trainer.run(6);
    c.trainer.dispose();
    c.model.dispose();
    expect([...firstHalf, ...secondHalf].map((r) => r.loss)).toEqual(full.map((r) => r.loss));
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  test('a checkpoint of another model shape is refused before any step runs', async () => {
    const b = makeTrainer(3);
    const ckpt = path.join(tmp, 'two-layers.safetensors');
    await b.trainer.save(ckpt);
    b.trainer.dispose();
    b.model.dispose();
    const c = makeTrainer(3, 0.5, 3);
    await expect(c.trainer.resume(ckpt)).rejects.toThrow(/config differs|does not match/);
    expect(c.trainer.step).toBe(0);
    c.trainer.dispose();
    c.model.dispose();
  });

  test('data that does not fit the model is refused with a clear message', () => {
    const model = new Mask2DiTTransformer(cfg(), WeightSource.zeros());
    expect(() =>
      ditObjective(model, { ...data, latentShape: [S, 3, 4, 4] }, { batchSize: 1, pConditional: 0 }),
    ).toThrow(/3 channels.*in_channels is 4/);
    expect(() => ditObjective(model, { ...data, size: 0 }, { batchSize: 1, pConditional: 0 })).toThrow(/empty/);
    model.dispose();
  });
});
