/**
 * The motion term of the DiT loss (`train dit --temporal-weight`): the error of x̂₀'s frame-to-frame changes
 * within each scene, added to the frame loss on the x̂₀ the model implies (its output, or x − σ·v).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { gaussianArray } from '../../src/sampler/noise.js';
import { ditObjective } from '../../src/train/ditObjective.js';
import {
  flowMatchingLoss,
  meanSquaredError,
  temporalDifferenceError,
  type FlowBatch,
} from '../../src/train/flowMatchingObjective.js';
import { tinyTransformer } from '../helpers/tinyTransformer.js';

beforeAll(async () => {
  await selectBackend('cpu');
});
afterAll(() => shutdownBackends());

const value = (t: tf.Tensor) => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};

describe('temporalDifferenceError', () => {
  test('counts the change between consecutive frames of a scene, never across a cut', () => {
    const pred = tf.tensor([0, 1, 5, 5], [1, 4, 1, 1, 1]); // [B, F, C, h, w]: scenes [0, 1] and [5, 5]
    const target = tf.zeros([1, 4, 1, 1, 1]);
    // two scenes: steps (1 − 0) and (5 − 5); the cut step 1 → 5 is not a pair
    expect(value(temporalDifferenceError(pred, target, 2))).toBeCloseTo((1 + 0) / 2, 6);
    // one scene: all three steps (1, 4, 0)
    expect(value(temporalDifferenceError(pred, target, 1))).toBeCloseTo((1 + 16 + 0) / 3, 6);
    // a scene of one frame has no steps
    expect(value(temporalDifferenceError(pred, target, 4))).toBe(0);
    tf.dispose([pred, target]);
  });

  test('is blind to content that is the same in every frame of a scene, and sees a shifted character', () => {
    const [S, f, C, h, w] = [3, 4, 2, 4, 4];
    const still = tf.tensor(gaussianArray(S * C * h * w, 1), [1, S, 1, C, h, w]); // one image a scene
    const offset = tf.tensor(gaussianArray(S * C * h * w, 2), [1, S, 1, C, h, w]);
    const video = (x: tf.Tensor) => tf.reshape(tf.tile(x, [1, 1, f, 1, 1, 1]), [1, S * f, C, h, w]); // [1, S·f, C, h, w]
    const target = video(still);
    const wrongStill = video(tf.add(still, offset)); // a different static picture in each scene
    expect(value(temporalDifferenceError(wrongStill, target, S))).toBeCloseTo(0, 6);
    expect(value(meanSquaredError(wrongStill, target, undefined))).toBeGreaterThan(0.5); // the frame loss sees it
    // a one-pixel "character" moving right in the target, standing still in the prediction
    const moving = new Float32Array(f * h * w);
    const standing = new Float32Array(f * h * w);
    for (let t = 0; t < f; t++) [moving[t * h * w + t], standing[t * h * w]] = [1, 1];
    const err = value(
      temporalDifferenceError(tf.tensor(standing, [1, f, 1, h, w]), tf.tensor(moving, [1, f, 1, h, w]), 1),
    );
    expect(err).toBeCloseTo((3 * 2) / (3 * h * w), 6); // each step: +1 and −1 missed
    tf.dispose([still, offset, target, wrongStill]);
  });
});

describe('the flow loss with a temporal weight', () => {
  const S = 2;
  const model = () => tinyTransformer();
  const F = 2 * S; // 2 latent frames a scene

  test.each(['flow_prediction', 'sample'] as const)(
    '%s: the frame loss + λ · the motion error of x̂₀ (x − σ·v for a velocity model)',
    (prediction) => {
      const m = model();
      const latents = tf.tensor(gaussianArray(F * 64, 3), [1, F, 4, 4, 4]); // [B, F, C, h, w]
      const noise = tf.tensor(gaussianArray(F * 64, 4), [1, F, 4, 4, 4]);
      const text = tf.tensor(gaussianArray(S * 4 * 8, 5), [1, S * 4, 8]); // [B, S·T, D]
      const sigma = 0.6;
      const batch = (temporalWeight: number): FlowBatch => ({ latents, text, scenes: S, prediction, temporalWeight });
      const loss = (l: number) => value(flowMatchingLoss(m, batch(l), { sigma: [sigma] }, noise));
      // by hand: the same forward, its x̂₀ and the two terms
      const expected = tf.tidy(() => {
        const noisy = tf.add(tf.mul(latents, 1 - sigma), tf.mul(noise, sigma));
        const out = m.forward({ hiddenStates: noisy, encoderHiddenStates: text, timestep: [1000 * sigma] });
        const x0 = prediction === 'sample' ? out : tf.sub(noisy, tf.mul(out, sigma));
        const target = prediction === 'sample' ? latents : tf.sub(noise, latents);
        return [meanSquaredError(out, target, undefined), temporalDifferenceError(x0, latents, S)].map(value);
      });
      const [frames, motion] = expected as [number, number];
      expect(motion).toBeGreaterThan(1e-3);
      expect(loss(0)).toBeCloseTo(frames, 5);
      expect(loss(2.5)).toBeCloseTo(frames + 2.5 * motion, 5);
      // the conditional objective (target scene 1, frames 2 … 3 noised, scene 0 clean) scores that scene's step only
      const [condFrames, condMotion] = tf.tidy(() => {
        const frames = (x: tf.Tensor, a: number) => tf.slice(x, [0, a, 0, 0, 0], [-1, 2, -1, -1, -1]); // [1, 2, C, h, w]
        const noisy = tf.add(tf.mul(latents, 1 - sigma), tf.mul(noise, sigma));
        const input = tf.concat([frames(latents, 0), frames(noisy, 2)], 1); // [1, F, C, h, w]
        const out = frames(
          m.forward({
            hiddenStates: input,
            encoderHiddenStates: text,
            timestep: [1000 * sigma],
            clipIdx: 1,
            timestepCond: 0,
          }),
          2,
        );
        const x0 = prediction === 'sample' ? out : tf.sub(frames(input, 2), tf.mul(out, sigma));
        const target = prediction === 'sample' ? latents : tf.sub(noise, latents);
        return [
          meanSquaredError(out, frames(target, 2), undefined),
          temporalDifferenceError(x0, frames(latents, 2), 1),
        ].map(value);
      }) as [number, number];
      expect(condMotion).toBeGreaterThan(1e-3);
      const condLoss = (l: number) => value(flowMatchingLoss(m, batch(l), { sigma: [sigma], target: 1 }, noise));
      expect(condLoss(0)).toBeCloseTo(condFrames, 5);
      expect(condLoss(2.5)).toBeCloseTo(condFrames + 2.5 * condMotion, 5);
      tf.dispose([latents, noise, text]);
      m.dispose();
    },
  );

  test('ditObjective refuses a negative weight', () => {
    const m = model();
    const data = {
      size: 1,
      scenes: S,
      latentShape: [F, 4, 4, 4] as [number, number, number, number],
      latents: () => gaussianArray(F * 64, 7),
      embeddings: () => gaussianArray(S * 4 * 8, 8),
    };
    expect(() => ditObjective(m, data, { batchSize: 1, pConditional: 0, temporalWeight: -1 })).toThrow(
      /temporalWeight must be ≥ 0, got -1/,
    );
    m.dispose();
  });
});
