/**
 * `conv2d`'s own gradients (filter: per-tap matMuls; input: a flipped-filter forward conv for
 * stride 1, conv2dTranspose otherwise) equal tfjs-cpu's native conv2d gradients, on random shapes,
 * strides 1–2, 'same'/'valid', odd and even kernels — computed on cpu and on wasm.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { conv2d } from '../../src/layers/conv2d.js';
import { expectClose } from '../helpers/close.js';

afterAll(() => shutdownBackends());

const caseArb = fc.record({
  N: fc.integer({ min: 1, max: 2 }),
  H: fc.integer({ min: 3, max: 7 }),
  W: fc.integer({ min: 3, max: 7 }),
  C: fc.integer({ min: 1, max: 3 }),
  Co: fc.integer({ min: 1, max: 3 }),
  k: fc.integer({ min: 1, max: 3 }),
  stride: fc.integer({ min: 1, max: 2 }),
  pad: fc.constantFrom('same' as const, 'valid' as const),
  seed: fc.integer({ min: 1, max: 1000 }), // tfjs treats seed 0 as "no seed"
});

type Case = {
  N: number;
  H: number;
  W: number;
  C: number;
  Co: number;
  k: number;
  stride: number;
  pad: 'same' | 'valid';
  seed: number;
};

/** Values, dx and dW of Σ conv(x, w)·r with the given conv. */
function grads(c: Case, conv: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.randomNormal([c.N, c.H, c.W, c.C], 0, 1, 'float32', c.seed) as tf.Tensor4D;
    const w = tf.randomNormal([c.k, c.k, c.C, c.Co], 0, 1, 'float32', c.seed + 1) as tf.Tensor4D;
    const y = conv(x, w);
    const r = tf.randomNormal(y.shape, 0, 1, 'float32', c.seed + 2);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), r)),
    )([x, w]);
    return [y, dx!, dw!].map((t) => t.dataSync() as Float32Array);
  });
}

describe.each(['cpu', 'wasm'] as const)('conv2d gradients on %s', (backend) => {
  it('equal the native tf.conv2d gradients of tfjs-cpu', async () => {
    const cases = fc.sample(caseArb, { numRuns: 40, seed: 3 });
    await selectBackend('cpu');
    const reference = cases.map((c) => grads(c, (x, w) => tf.conv2d(x, w, c.stride, c.pad)));
    await selectBackend(backend);
    cases.forEach((c, i) => {
      const before = tf.memory().numTensors;
      const ours = grads(c, (x, w) => conv2d(x, w, c.stride, c.pad));
      ['y', 'dx', 'dW'].forEach((name, j) =>
        expectClose(`${JSON.stringify(c)} ${name}`, ours[j]!, reference[i]![j]!, 1e-4, 1e-4),
      );
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});
