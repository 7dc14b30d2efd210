/**
 * The heap-view Slice, SplitV and Unpack kernels (src/backend/wasmSlice.ts) return what tfjs-cpu returns,
 * on random shapes (rank 1–6), cuts, splits and dtypes, and are the kernels wasm actually runs.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { copySlice } from '../../src/backend/wasmSlice.js';

afterAll(() => shutdownBackends());

interface Case {
  shape: number[];
  begin: number[];
  size: number[];
  dtype: 'float32' | 'int32' | 'bool';
}

/** A shape (some axes 1), then per axis a begin and a size that fit (sometimes whole, sometimes -1, sometimes 0). */
const caseArb: fc.Arbitrary<Case> = fc
  .record({
    shape: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 6 }),
    cuts: fc.array(
      fc.tuple(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 4 }),
      ),
      { minLength: 6, maxLength: 6 },
    ),
    dtype: fc.constantFrom('float32' as const, 'int32' as const, 'bool' as const),
  })
  .map(({ shape, cuts, dtype }) => {
    const begin: number[] = [];
    const size: number[] = [];
    shape.forEach((n, a) => {
      const [u, w, kind] = cuts[a]!;
      if (kind === 0) {
        begin.push(0);
        size.push(n);
      } // whole axis
      else if (kind === 1) {
        const b = Math.floor(u * n);
        begin.push(b);
        size.push(-1);
      } // to the end
      else {
        const b = Math.floor(u * n);
        begin.push(b);
        size.push(Math.min(n - b, Math.floor(w * (n - b + 1))));
      } // any fit, 0 allowed
    });
    return { shape, begin, size, dtype };
  });

function values(c: Case): tf.Tensor {
  const n = c.shape.reduce((a, b) => a * b, 1);
  if (c.dtype === 'bool')
    return tf.tensor(
      Array.from({ length: n }, (_, i) => i % 3 === 0),
      c.shape,
      'bool',
    );
  return tf.tensor(
    Array.from({ length: n }, (_, i) => (c.dtype === 'int32' ? i * 7 - 11 : i * 0.5 - 3)),
    c.shape,
    c.dtype,
  );
}

const run = (c: Case) => tf.tidy(() => Array.from(tf.slice(values(c), c.begin, c.size).dataSync()));

describe('wasm Slice kernel', () => {
  it('equals tfjs-cpu slice on random shapes, cuts and dtypes', async () => {
    const cases = fc.sample(caseArb, { numRuns: 300, seed: 11 });
    await selectBackend('cpu');
    const want = cases.map(run);
    const shapes = cases.map((c) => tf.tidy(() => tf.slice(values(c), c.begin, c.size).shape));
    await selectBackend('wasm');
    cases.forEach((c, i) => {
      const before = [tf.memory().numTensors, tf.engine().backend.numDataIds()];
      const got = tf.tidy(() => tf.slice(values(c), c.begin, c.size));
      expect([JSON.stringify(c), got.shape]).toEqual([JSON.stringify(c), shapes[i]]);
      expect([JSON.stringify(c), Array.from(got.dataSync())]).toEqual([JSON.stringify(c), want[i]]);
      got.dispose();
      expect([tf.memory().numTensors, tf.engine().backend.numDataIds()]).toEqual(before); // no tensor and no backend buffer left behind
    });
  });

  it('split (by count and by sizes) and unstack equal tfjs-cpu on random shapes, axes and dtypes', async () => {
    const splitArb = fc.record({
      c: caseArb,
      axisU: fc.double({ min: 0, max: 0.999, noNaN: true }),
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }),
      byCount: fc.boolean(),
    });
    const cases = fc.sample(splitArb, { numRuns: 200, seed: 12 }).map(({ c, axisU, cuts, byCount }) => {
      const axis = Math.floor(axisU * c.shape.length);
      const n = c.shape[axis]!;
      // by count: a divisor of n; by sizes: cut points (parts of size 0 allowed), the last part as -1
      const divisors = [...Array(n).keys()].map((i) => i + 1).filter((k) => n % k === 0);
      const count = divisors[cuts.length % divisors.length]!;
      const points = cuts.map((u) => Math.min(n, Math.floor(u * (n + 1)))).sort((a, b) => a - b);
      const sizes = [...points, n].map((p, i, all) => p - (i === 0 ? 0 : all[i - 1]!));
      // (-1 only after a first part: tfjs 4.22's prepareSplitSize miscounts a leading -1)
      return { c, axis, split: byCount ? count : sizes.length > 1 ? [...sizes.slice(0, -1), -1] : sizes };
    });
    const run = (k: (typeof cases)[number]) =>
      tf.tidy(() => {
        const x = values(k.c);
        return [...tf.split(x, k.split, k.axis), ...tf.unstack(x, k.axis)].map((t) => [
          t.shape,
          Array.from(t.dataSync()),
        ]);
      });
    await selectBackend('cpu');
    const want = cases.map(run);
    await selectBackend('wasm');
    cases.forEach((k, i) => {
      const before = [tf.memory().numTensors, tf.engine().backend.numDataIds()];
      expect([JSON.stringify(k), run(k)]).toEqual([JSON.stringify(k), want[i]]);
      expect([tf.memory().numTensors, tf.engine().backend.numDataIds()]).toEqual(before);
    });
  });

  it('are the kernels registered for wasm (the stock ones read the whole input back first)', async () => {
    await selectBackend('wasm');
    expect(tf.getKernel('Slice', 'wasm')!.kernelFunc.name).not.toBe('slice');
    expect(tf.getKernel('SplitV', 'wasm')!.kernelFunc.name).not.toBe('splitV');
    expect(tf.getKernel('Unpack', 'wasm')!.kernelFunc.name).not.toBe('unpack');
    // string tensors still slice and unstack (handed to the stock kernels; tf.split refuses strings itself)
    const s = tf.tensor(['a', 'b', 'c']);
    expect(tf.slice(s, [1], [2]).dataSync()).toEqual(['b', 'c']);
    expect(tf.unstack(s).map((t) => t.dataSync()[0])).toEqual(['a', 'b', 'c']);
  });

  it('stays right when the output allocation grows the wasm heap (views are taken after it)', async () => {
    await selectBackend('wasm');
    const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength;
    const n = 32 * 2 ** 20; // 128 MiB of float32 out of a 256 MiB input: more than the heap keeps spare (growth steps ≤ 96 MiB)
    const x = tf.tidy(() => tf.reshape(tf.range(0, 2 * n, 1, 'int32'), [2, n]));
    const grownBefore = heap();
    const y = tf.slice(x, [1, 0], [1, n]);
    const grew = heap() > grownBefore;
    const v = y.dataSync();
    expect([grew, v[0], v[n - 1], v[n >> 1]]).toEqual([true, n, 2 * n - 1, n + (n >> 1)]);
    tf.dispose([x, y]);
  });

  it('copySlice merges whole trailing axes into one run per outer index', () => {
    const x = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const out = new Float32Array(2 * 2 * 4);
    const calls: number[] = [];
    const spy = new Proxy(out, {
      get: (t, p) =>
        p === 'set'
          ? (v: Float32Array, at: number) => {
              calls.push(v.length);
              t.set(v, at);
            }
          : Reflect.get(t, p),
    });
    copySlice(x, [2, 3, 4], [0, 1, 0], [2, 2, 4], spy as Float32Array);
    expect(calls).toEqual([8, 8]); // two runs of 2·4, not four rows of 4
    expect(Array.from(out)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]);
  });
});
