/**
 * Character-weighted flow loss and x₀ prediction: where the character is on the latent grid (`latentForeground`), the
 * masks in the latent dataset file, and the weights reaching the DiT's flow-matching loss.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { gaussianArray } from '../../src/sampler/noise.js';
import { ditObjective, foregroundWeights, type LatentDataset } from '../../src/train/ditObjective.js';
import { flowMatchingLoss, meanSquaredError } from '../../src/train/flowMatchingObjective.js';
import { FlowMatchSchedulerConfigSchema } from '../../src/config/schedulerConfig.js';
import { FlowMatchEulerSampler } from '../../src/sampler/flowMatchEuler.js';
import { tinyTransformer } from '../helpers/tinyTransformer.js';
import { expectClose } from '../helpers/close.js';
import {
  latentForeground,
  loadLatentGroups,
  readLatentsMetadata,
  saveLatentGroups,
  type LatentGroup,
} from '../../src/train/latentData.js';
import { StepRng } from '../../src/train/rng.js';

let tmp: string;
beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-fg-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackends();
});

/** Frames `[3, T, H, W]` of a grey background with character pixels at `(t, y, x)` (never the corner, as in the world). */
function frames(T: number, H: number, W: number, character: [number, number, number][]): Float32Array {
  const f = new Float32Array(3 * T * H * W).fill(0.5);
  for (const [t, y, x] of character) f[(t * H + y) * W + x] = 0.9; // red channel differs
  return f;
}

describe('latentForeground', () => {
  test('pools pixel frames onto the causal VAE grouping: frame 0 alone, then r frames per latent frame', () => {
    // T 5 → f 3 (r = 2: latent frame 1 = pixel frames 1–2, latent frame 2 = frames 3–4); 16×16 → 4×4
    const cases: [[number, number, number], number][] = [
      [[0, 3, 2], 0],
      [[1, 5, 9], (1 * 4 + 1) * 4 + 2],
      [[2, 15, 15], (1 * 4 + 3) * 4 + 3],
      [[3, 9, 2], (2 * 4 + 2) * 4 + 0],
      [[4, 4, 12], (2 * 4 + 1) * 4 + 3],
    ];
    for (const [px, at] of cases) {
      const m = latentForeground(frames(5, 16, 16, [px]), 5, 16, 16, 3, 4, 4);
      expect(Array.from(m.keys()).filter((i) => m[i] === 1)).toEqual([at]);
    }
    // no temporal compression, and an empty scene
    expect(latentForeground(frames(3, 8, 8, [[2, 7, 0]]), 3, 8, 8, 3, 2, 2)[(2 * 2 + 1) * 2 + 0]).toBe(1);
    expect(latentForeground(frames(5, 16, 16, []), 5, 16, 16, 3, 4, 4).every((v) => v === 0)).toBe(true);
  });

  test('refuses grids that do not pool', () => {
    expect(() => latentForeground(frames(5, 16, 16, []), 5, 16, 16, 4, 4, 4)).toThrow(
      /5×16×16 do not pool onto latent frames 4×4×4/,
    );
    expect(() => latentForeground(frames(5, 16, 16, []), 5, 16, 16, 3, 5, 4)).toThrow(/do not pool/);
  });
});

describe('the latent dataset file', () => {
  const group = (fg?: Uint8Array): LatentGroup => ({
    scenes: 2,
    latentShape: [2, 3, 2, 2],
    count: 2,
    latents: gaussianArray(2 * 2 * 3 * 4, 1),
    tokens: new Int32Array(2 * 8).fill(3),
    ...(fg !== undefined && { foreground: fg }),
  });

  test('keeps the foreground masks, and reads files written before they existed', async () => {
    const fg = Uint8Array.from({ length: 2 * 2 * 4 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const file = path.join(tmp, 'with.safetensors');
    await saveLatentGroups(file, [group(fg)], { clips: '2' });
    const { groups } = await loadLatentGroups(file);
    expect(Array.from(groups[0]!.foreground!)).toEqual(Array.from(fg));
    await saveLatentGroups(path.join(tmp, 'without.safetensors'), [group()], { clips: '2' });
    expect((await loadLatentGroups(path.join(tmp, 'without.safetensors'))).groups[0]!.foreground).toBeUndefined();
  });

  test('readLatentsMetadata returns the metadata without the tensors, and refuses other files', async () => {
    const file = path.join(tmp, 'meta.safetensors');
    await saveLatentGroups(file, [group()], { clips: '2', vae_step: '7' });
    expect(await readLatentsMetadata(file)).toMatchObject({ format: 'mask2dit-latents', clips: '2', vae_step: '7' });
    const other = path.join(tmp, 'other.safetensors');
    await writeSafetensors(other, { x: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, { format: 'pt' });
    await expect(readLatentsMetadata(other)).rejects.toThrow(
      /other\.safetensors: not a latent dataset \(__metadata__\.format = pt, expected mask2dit-latents\)/,
    );
  });

  test('refuses a foreground tensor of the wrong shape or dtype, naming it', async () => {
    const g = group();
    const file = path.join(tmp, 'bad.safetensors');
    await writeSafetensors(
      file,
      {
        'latents.S2': { dtype: 'F32', shape: [2, 2, 3, 2, 2], data: g.latents },
        'tokens.S2': { dtype: 'I32', shape: [2, 8], data: g.tokens },
        'foreground.S2': { dtype: 'U8', shape: [2, 2, 4], data: new Uint8Array(16) },
      },
      { format: 'mask2dit-latents' },
    );
    await expect(loadLatentGroups(file)).rejects.toThrow(/foreground\.S2 is U8 \[2,2,4\], expected U8 \[2,2,2,2\]/);
  });
});

describe('the weighted flow loss', () => {
  test('meanSquaredError: Σ w·(a − b)² / (Σ w · C), weights broadcast over channels', () => {
    const a = tf.tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 2, 2, 2]); // [B, F, C, h, w], C = 2
    const b = tf.zeros([1, 1, 2, 2, 2]);
    const w = tf.tensor([1, 3, 1, 1], [1, 1, 1, 2, 2]);
    // squared: channel 0 [1, 4, 9, 16], channel 1 [25, 36, 49, 64]; pixel 1 (4, 36) weighted 3
    expect(meanSquaredError(a, b, w).dataSync()[0]).toBeCloseTo(
      (1 + 9 + 16 + 25 + 49 + 64 + 3 * (4 + 36)) / (6 * 2),
      5,
    );
    expect(meanSquaredError(a, b, undefined).dataSync()[0]).toBeCloseTo(204 / 8, 5);
    tf.dispose([a, b, w]);
  });

  const S = 2;
  const model = () => tinyTransformer();
  const data = (mask?: (i: number) => Uint8Array): LatentDataset => ({
    size: 2,
    scenes: S,
    latentShape: [S, 4, 4, 4],
    latents: (i) => gaussianArray(S * 4 * 16, 100 + i),
    embeddings: (i) => gaussianArray(S * 4 * 8, 200 + i),
    ...(mask !== undefined && { foreground: mask }),
  });
  const lossOf = (
    m: Mask2DiTTransformer,
    d: LatentDataset,
    fgWeight: number | undefined,
    pConditional: number,
    sigmaMax?: number,
  ) => {
    const step = ditObjective(m, d, {
      batchSize: 2,
      pConditional,
      ...(fgWeight !== undefined && { foregroundWeight: fgWeight }),
      ...(sigmaMax !== undefined && { foregroundSigmaMax: sigmaMax }),
    })(0, new StepRng(11, 0));
    const loss = step.loss();
    const v = loss.dataSync()[0]!;
    loss.dispose();
    step.dispose?.();
    return v;
  };

  test.each([0, 1])(
    'reaches the loss (pConditional %d): uniform weights change nothing, the character weighted changes it',
    (pConditional) => {
      const m = model();
      const plain = lossOf(m, data(), undefined, pConditional); // also fills the model's RoPE / mask caches
      const before = tf.memory().numTensors;
      const allOnes = () => new Uint8Array(S * 16).fill(1);
      const corner = () => Uint8Array.from({ length: S * 16 }, (_, k) => (k % 16 === 0 ? 1 : 0));
      expect(lossOf(m, data(corner), 1, pConditional)).toBeCloseTo(plain, 5); // weight 1: plain mean
      expect(lossOf(m, data(allOnes), 7, pConditional)).toBeCloseTo(plain, 5); // every pixel ×7: same mean
      expect(Math.abs(lossOf(m, data(corner), 7, pConditional) - plain)).toBeGreaterThan(1e-3);
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    },
  );

  test('σ-dependent character weight: 1 + (w − 1)·m·max(0, 1 − σ/σmax)', () => {
    const mask = Uint8Array.from([0, 1, 1, 0]);
    expect(Array.from(foregroundWeights(mask, 9, 0.3))).toEqual([1, 9, 9, 1]); // constant
    expect(Array.from(foregroundWeights(mask, 9, 0, 0.5))).toEqual([1, 9, 9, 1]); // σ = 0: full
    expect(Array.from(foregroundWeights(mask, 9, 0.25, 0.5))).toEqual([1, 5, 5, 1]); // half way
    expect(Array.from(foregroundWeights(mask, 9, 0.7, 0.5))).toEqual([1, 1, 1, 1]); // past σmax: none
  });

  test('the σ fade reaches the loss: faded out it is the plain mean, never faded the constant weight', () => {
    const m = model();
    const corner = () => Uint8Array.from({ length: S * 16 }, (_, k) => (k % 16 === 0 ? 1 : 0));
    const plain = lossOf(m, data(), undefined, 0);
    const constant = lossOf(m, data(corner), 7, 0);
    expect(lossOf(m, data(corner), 7, 0, 1e-6)).toBeCloseTo(plain, 5); // every σ > σmax
    expect(lossOf(m, data(corner), 7, 0, 1e9)).toBeCloseTo(constant, 5); // fade ≈ 1
    const between = lossOf(m, data(corner), 7, 0, 0.5);
    expect(between).not.toBeCloseTo(constant, 5);
    expect(() =>
      ditObjective(m, data(corner), { batchSize: 1, pConditional: 0, foregroundWeight: 7, foregroundSigmaMax: 0 }),
    ).toThrow(/foregroundSigmaMax must be > 0, got 0/);
    m.dispose();
  });

  test('refuses a weight without masks, or below 1', () => {
    const m = model();
    expect(() => ditObjective(m, data(), { batchSize: 1, pConditional: 0, foregroundWeight: 10 })).toThrow(
      /no foreground masks \(re-run `train prepare`\)/,
    );
    expect(() =>
      ditObjective(
        m,
        data(() => new Uint8Array(S * 16)),
        { batchSize: 1, pConditional: 0, foregroundWeight: 0.5 },
      ),
    ).toThrow(/foregroundWeight must be ≥ 1, got 0.5/);
    m.dispose();
  });
});

describe('x₀ prediction (`prediction_type: sample`)', () => {
  test('the loss targets x₀ instead of ε − x₀', () => {
    const x0 = tf.tensor(gaussianArray(2 * 2 * 4 * 4 * 4, 3), [2, 2, 4, 4, 4]);
    const text = tf.zeros([2, 8, 8]);
    const noise = tf.tensor(gaussianArray(x0.size, 4), x0.shape);
    const zero = {
      forward: ({ hiddenStates }: { hiddenStates: tf.Tensor }) => tf.zerosLike(hiddenStates),
    } as unknown as Mask2DiTTransformer;
    const draw = { sigma: [0.3, 0.8] };
    const sample = flowMatchingLoss(zero, { latents: x0, text, scenes: 2, prediction: 'sample' }, draw, noise);
    const flow = flowMatchingLoss(zero, { latents: x0, text, scenes: 2 }, draw, noise);
    expect(sample.dataSync()[0]).toBeCloseTo(tf.mean(tf.square(x0)).dataSync()[0]!, 5);
    expect(flow.dataSync()[0]).toBeCloseTo(tf.mean(tf.square(tf.sub(noise, x0))).dataSync()[0]!, 5);
    tf.dispose([x0, text, noise, sample, flow]);
  });

  test('the Euler step from x̂₀ is the step from v = (x − x̂₀)/σ, and x̂₀ is passed through', () => {
    const v = new FlowMatchEulerSampler(FlowMatchSchedulerConfigSchema.parse({}));
    const s = new FlowMatchEulerSampler(FlowMatchSchedulerConfigSchema.parse({ prediction_type: 'sample' }));
    v.setTimesteps(7);
    s.setTimesteps(7);
    const x = tf.tensor(gaussianArray(64, 5), [1, 4, 4, 4]);
    const x0hat = tf.tensor(gaussianArray(64, 6), [1, 4, 4, 4]);
    for (const i of [0, 3, 6]) {
      const vel = tf.div(tf.sub(x, x0hat), v.sigmas[i]!);
      const a = v.step(vel, i, x);
      const b = s.step(x0hat, i, x);
      expectClose(`step ${i}`, b.prevSample.dataSync(), a.prevSample.dataSync(), 1e-5, 1e-5);
      expectClose(`x̂₀ ${i}`, b.predOriginalSample!.dataSync(), x0hat.dataSync(), 0, 0);
      tf.dispose([vel, a.prevSample, a.predOriginalSample!, b.prevSample, b.predOriginalSample!]);
    }
    tf.dispose([x, x0hat]);
  });
});
