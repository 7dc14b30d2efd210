/**
 * The seeded noise generator: Philox known answers, bit-identical tensors on every backend, seeds and
 * streams independent, counter-based slicing, and N(0, 1) statistics.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { Mask2DiTError } from '../../src/errors.js';
import { cosSin2Pi, gaussianArray, gaussianNoise, lnPositive, philox4x32 } from '../../src/sampler/noise.js';

afterAll(() => shutdownBackends());

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(philox4x32([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])).toEqual([
      0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd,
    ]);
    expect(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1,
    ]);
  });
});

describe('portable ln / sin / cos', () => {
  it('agree with Math.* to ~1 ulp', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 2 ** -60, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (x, u) => {
          const l = lnPositive(x);
          const [c, s] = cosSin2Pi(u);
          return (
            Math.abs(l - Math.log(x)) <= 4e-16 * Math.max(1, Math.abs(Math.log(x))) &&
            Math.abs(c - Math.cos(2 * Math.PI * u)) < 2e-15 &&
            Math.abs(s - Math.sin(2 * Math.PI * u)) < 2e-15
          );
        },
      ),
      { seed: 7, numRuns: 2000 },
    );
  });
});

describe('gaussian noise', () => {
  it('is pinned: the first values for seed 42 never change (README documents them)', () => {
    expect(bits(gaussianArray(6, 42))).toEqual([
      0x3f9e0577, 0x3f1ca232, 0xc03d1f98, 0xbe8488d9, 0xbfbf29f1, 0xbf8ffd15,
    ]);
  });

  // webgpu: the same check lives in test/backend/webgpu.parity.test.ts (one file per run drives the GPU)
  it('same seed gives bit-identical tensors on cpu and wasm', async () => {
    const shape = [1, 3, 4, 6, 10];
    const expected = bits(gaussianArray(720, 1234, 5));
    const seen: string[] = [];
    for (const backend of ['cpu', 'wasm'] as const) {
      await selectBackend(backend);
      const t = gaussianNoise(shape, 1234, 5);
      expect(t.shape).toEqual(shape);
      // a backend op in between, so the data really lives on the backend
      const u = tf.add(t, 0);
      expect(bits((await u.data()) as Float32Array)).toEqual(expected);
      tf.dispose([t, u]);
      seen.push(backend);
    }
    expect(seen).toEqual(expect.arrayContaining(['cpu', 'wasm']));
  });

  it('different seeds and different streams differ; offsets give the same stream', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 100 }),
        (seed, d, k) => {
          const a = gaussianArray(64, seed);
          if (bits(a).join() === bits(gaussianArray(64, seed + d)).join()) return false;
          if (bits(a).join() === bits(gaussianArray(64, seed, d)).join()) return false;
          const long = gaussianArray(64 + 2 * k, seed, 3);
          return bits(long.subarray(2 * k)).join() === bits(gaussianArray(64, seed, 3, 2 * k)).join();
        },
      ),
      { seed: 11, numRuns: 100 },
    );
  });

  it('has N(0, 1) statistics (mean, variance, kurtosis, tails, lag-1 correlation)', () => {
    const n = 400_000;
    const a = gaussianArray(n, 2024);
    let s1 = 0,
      s2 = 0,
      s4 = 0,
      lag = 0,
      beyond3 = 0;
    for (let i = 0; i < n; i++) {
      const v = a[i]!;
      s1 += v;
      s2 += v * v;
      s4 += v ** 4;
      if (Math.abs(v) > 3) beyond3++;
      if (i > 0) lag += v * a[i - 1]!;
    }
    expect(Math.abs(s1 / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.01);
    expect(Math.abs(s4 / n - 3)).toBeLessThan(0.05);
    expect(Math.abs(lag / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(beyond3 / n).toBeGreaterThan(0.0027 * 0.8); // P(|z| > 3) = 0.0027
    expect(beyond3 / n).toBeLessThan(0.0027 * 1.2);
    expect(a.every(Number.isFinite)).toBe(true);
  });

  it('rejects bad seeds with a typed error', () => {
    expect(() => gaussianArray(4, -1)).toThrow(Mask2DiTError);
    expect(() => gaussianArray(4, 1.5)).toThrow(/seed must be an integer/);
    expect(() => gaussianArray(4, 2 ** 53)).toThrow(Mask2DiTError);
  });
});
