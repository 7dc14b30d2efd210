/**
 * Flow-matching Euler with `stochastic_sampling: true` (diffusers ≥ 0.33): each step re-noises the
 * estimate x̂₀ with fresh noise, x ← (1 − σ_next)·x̂₀ + σ_next·ε, for both prediction types.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { FlowMatchSchedulerConfigSchema } from '../../src/config/schedulerConfig.js';
import { FlowMatchEulerSampler } from '../../src/sampler/flowMatchEuler.js';
import { gaussianArray } from '../../src/sampler/noise.js';
import type { NoiseSource } from '../../src/sampler/sampler.js';
import { expectClose } from '../helpers/close.js';

beforeAll(async () => {
  await selectBackend('cpu');
});
afterAll(() => shutdownBackends());

const shape = [1, 4, 4, 4];
const draws: string[] = [];
const noise: NoiseSource = (s, step, draw) => {
  draws.push(`${step}.${draw}`);
  return tf.tensor(gaussianArray(64, 100 + step), s);
};

describe('flow-euler, stochastic_sampling', () => {
  test.each(['flow_prediction', 'sample'] as const)(
    '%s: x ← (1 − σ_next)·x̂₀ + σ_next·ε; the last step returns x̂₀ and draws nothing',
    (prediction_type) => {
      const s = new FlowMatchEulerSampler(
        FlowMatchSchedulerConfigSchema.parse({ stochastic_sampling: true, prediction_type }),
      );
      s.setTimesteps(5);
      const x = tf.tensor(gaussianArray(64, 1), shape);
      const out = tf.tensor(gaussianArray(64, 2), shape);
      draws.length = 0;
      const before = tf.memory().numTensors;
      for (const i of [0, 2, 4]) {
        const sigma = s.sigmas[i]!;
        const next = s.sigmas[i + 1]!;
        const [x0, want] = tf.tidy(() => {
          const x0 = prediction_type === 'sample' ? tf.clone(out) : tf.sub(x, tf.mul(out, sigma));
          const eps = tf.tensor(gaussianArray(64, 100 + i), shape);
          return [x0, tf.add(tf.mul(x0, 1 - next), tf.mul(eps, next))];
        });
        const got = s.step(out, i, x, { noise });
        expectClose(`x̂₀ ${i}`, got.predOriginalSample.dataSync(), x0.dataSync(), 1e-6, 1e-6);
        expectClose(`step ${i}`, got.prevSample.dataSync(), want.dataSync(), 1e-6, 1e-6);
        if (i === 4) expectClose('last step', got.prevSample.dataSync(), x0.dataSync(), 0, 0);
        tf.dispose([got.prevSample, got.predOriginalSample, x0, want]);
      }
      expect(s.sigmas[5]).toBe(0); // the step at i = 4 went to σ = 0
      expect(draws).toEqual(['0.0', '2.0']);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, out]);
    },
  );

  test('needs a noise source; the deterministic step ignores one', () => {
    const s = new FlowMatchEulerSampler(FlowMatchSchedulerConfigSchema.parse({ stochastic_sampling: true }));
    const d = new FlowMatchEulerSampler(FlowMatchSchedulerConfigSchema.parse({}));
    s.setTimesteps(3);
    d.setTimesteps(3);
    const x = tf.zeros(shape);
    expect(() => s.step(x, 0, x)).toThrow(/stochastic_sampling draws noise at every step; pass options.noise/);
    draws.length = 0;
    const a = d.step(x, 0, x, { noise });
    expect(draws).toEqual([]);
    tf.dispose([x, a.prevSample, a.predOriginalSample]);
  });
});
