/**
 * sliceAxis / splitAxis / concatAxis (rank-3 views, for wasm's fast slice path) equal tf.slice,
 * tf.split and tf.concat on random shapes and axes, values and gradients, and leave no tensors.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { concatAxis, sliceAxis, splitAxis } from '../../src/layers/axis.js';

afterAll(() => shutdownBackends());

const shapeAndAxis = fc
  .array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 6 })
  .chain((shape) =>
    fc.record({ shape: fc.constant(shape), axis: fc.integer({ min: -shape.length, max: shape.length - 1 }) }),
  );

const same = (a: tf.Tensor, b: tf.Tensor) => {
  expect(a.shape).toEqual(b.shape);
  expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
};

describe.each(['cpu', 'wasm'] as const)('axis helpers on %s', (backend) => {
  it('sliceAxis = tf.slice, with the same gradient', async () => {
    await selectBackend(backend);
    fc.assert(
      fc.property(shapeAndAxis, fc.nat(), fc.nat(), ({ shape, axis }, u, v) => {
        const ax = axis < 0 ? shape.length + axis : axis;
        const n = shape[ax]!;
        const begin = u % n;
        const size = 1 + (v % (n - begin));
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const x = tf.randomNormal(shape, 0, 1, 'float32', u);
          const w = tf.randomNormal([...shape.slice(0, ax), size, ...shape.slice(ax + 1)], 0, 1, 'float32', v);
          const ref = (t: tf.Tensor) =>
            tf.slice(
              t,
              shape.map((_, i) => (i === ax ? begin : 0)),
              shape.map((d, i) => (i === ax ? size : d)),
            );
          same(sliceAxis(x, axis, begin, size), ref(x));
          same(
            tf.grad((t: tf.Tensor) => tf.sum(tf.mul(sliceAxis(t, axis, begin, size), w)))(x),
            tf.grad((t: tf.Tensor) => tf.sum(tf.mul(ref(t), w)))(x),
          );
        });
        expect(tf.memory().numTensors).toBe(before);
      }),
      { numRuns: 60, seed: 7 },
    );
  });

  it('splitAxis = tf.split and concatAxis = tf.concat, with the same gradient', async () => {
    await selectBackend(backend);
    fc.assert(
      fc.property(shapeAndAxis, fc.integer({ min: 1, max: 3 }), fc.nat(), ({ shape, axis }, parts, seed) => {
        const ax = axis < 0 ? shape.length + axis : axis;
        const s = [...shape];
        s[ax] = s[ax]! * parts;
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const x = tf.randomNormal(s, 0, 1, 'float32', seed);
          const ours = splitAxis(x, parts, axis);
          tf.split(x, parts, axis).forEach((r, i) => same(ours[i]!, r));
          same(concatAxis(ours, axis), x);
          const w = tf.randomNormal(s, 0, 1, 'float32', seed + 1);
          const g = (f: (ts: tf.Tensor[]) => tf.Tensor) =>
            tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(f(ts), w)))(ours);
          g((ts) => concatAxis(ts, axis)).forEach((gi, i) => same(gi, g((ts) => tf.concat(ts, axis))[i]!));
        });
        expect(tf.memory().numTensors).toBe(before);
      }),
      { numRuns: 60, seed: 11 },
    );
  });
});
