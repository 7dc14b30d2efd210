/**
 * Properties of the block-wise masked attention op on tiny random cases (cpu backend):
 * equality with the dense-mask reference, plain attention for one scene, segment isolation
 * (bit-identical), probability captures, no leaks, probes that do not change results.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import {
  denseMaskedAttention,
  maskedAttention,
  peakScoreBytes,
  denseScoreBytes,
} from '../../src/layers/maskedAttention.js';
import { Probe } from '../../src/layers/probe.js';
import { denseMask } from '../../src/scene/masks.js';
import {
  layoutTotals,
  textRange,
  uniformLayout,
  videoRange,
  type SceneLayout,
  type TokenRange,
} from '../../src/scene/layout.js';
import { expectClose } from '../helpers/close.js';

beforeAll(async () => {
  await selectBackend('cpu');
});
afterAll(() => shutdownBackends());

const opts = { seed: 7741, numRuns: 40 };

/** A tiny case: layout (1–5 scenes, per-scene lengths), B, H 1–3, d 2–8, chunk incl. 1, data seed. */
interface Case {
  layout: SceneLayout;
  B: number;
  H: number;
  d: number;
  chunk: number;
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc.integer({ min: 1, max: 5 }).chain((S) =>
  fc.record({
    layout: fc.record({
      text: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: S, maxLength: S }),
      video: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: S, maxLength: S }),
    }),
    B: fc.integer({ min: 1, max: 2 }),
    H: fc.integer({ min: 1, max: 3 }),
    d: fc.integer({ min: 2, max: 8 }),
    chunk: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 40 })),
    seed: fc.nat(),
  }),
);

/** mulberry32: deterministic uniform [-2, 2) data without touching tfjs' RNG. */
function randomData(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 4 - 2;
  }
  return out;
}

function qkv(c: Case, seedShift = 0): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const L = layoutTotals(c.layout).total;
  const shape = [c.B, c.H, L, c.d];
  const n = c.B * c.H * L * c.d;
  return [0, 1, 2].map((i) => tf.tensor(randomData(n, c.seed * 3 + i + seedShift), shape)) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
}

/** Copy of `x` `[B, H, L, d]` with the token rows in `ranges` replaced by other random values. */
function perturbRows(x: tf.Tensor, ranges: TokenRange[], seed: number): tf.Tensor {
  const [B, H, L, d] = x.shape as [number, number, number, number];
  const data = Float32Array.from(x.dataSync());
  const noise = randomData(data.length, seed);
  for (let bh = 0; bh < B * H; bh++) {
    for (const r of ranges)
      for (let t = r.start; t < r.end; t++)
        for (let j = 0; j < d; j++) data[(bh * L + t) * d + j] = noise[(bh * L + t) * d + j]!;
  }
  return tf.tensor(data, x.shape);
}

/** Values of `x` `[B, H, L, d]` at token rows `r`, flattened. */
function rows(x: Float32Array, shape: number[], r: TokenRange): number[] {
  const [B, H, L, d] = shape as [number, number, number, number];
  const out: number[] = [];
  for (let bh = 0; bh < B * H; bh++)
    for (let t = r.start; t < r.end; t++) for (let j = 0; j < d; j++) out.push(x[(bh * L + t) * d + j]!);
  return out;
}

const bitEqual = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

describe('maskedAttention (cpu)', () => {
  it('block-wise == dense-mask reference within 1e-5', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const [q, k, v] = qkv(c);
        const got = maskedAttention(q, k, v, c.layout, { chunkSize: c.chunk });
        const ref = denseMaskedAttention(q, k, v, c.layout);
        expect(got.shape).toEqual(q.shape);
        expectClose(`maskedAttention ${JSON.stringify(c)}`, got.dataSync(), ref.out.dataSync(), 1e-5, 1e-5);
        tf.dispose([q, k, v, got, ref.out, ref.probs]);
      }),
      opts,
    );
  });

  it('one scene == plain (unmasked) softmax attention', () => {
    fc.assert(
      fc.property(caseArb, (c0) => {
        const c = { ...c0, layout: { text: [c0.layout.text[0]!], video: [c0.layout.video[0]!] } };
        const [q, k, v] = qkv(c);
        const got = maskedAttention(q, k, v, c.layout, { chunkSize: c.chunk });
        const plain = tf.tidy(() => tf.matMul(tf.softmax(tf.div(tf.matMul(q, k, false, true), Math.sqrt(c.d))), v));
        expectClose('one scene', got.dataSync(), plain.dataSync(), 1e-5, 1e-5);
        tf.dispose([q, k, v, got, plain]);
      }),
      opts,
    );
  });

  it('segment isolation: scene j never reaches the text rows of scene i, text_j never the video rows of scene i (bit-identical)', () => {
    fc.assert(
      fc.property(caseArb, fc.nat(), (c, jRaw) => {
        const S = c.layout.video.length;
        const j = jRaw % S;
        const [q, k, v] = qkv(c);
        const base = maskedAttention(q, k, v, c.layout, { chunkSize: c.chunk });
        const baseData = base.dataSync() as Float32Array;
        // (a) perturb all of scene j (text_j and video_j keys/values)
        const sceneJ = [textRange(c.layout, j), videoRange(c.layout, j)];
        const [k1, v1] = [perturbRows(k, sceneJ, c.seed * 3 + 3), perturbRows(v, sceneJ, c.seed * 3 + 4)];
        const out1 = maskedAttention(q, k1, v1, c.layout, { chunkSize: c.chunk });
        // (b) perturb text_j only
        const textJ = [textRange(c.layout, j)];
        const [k2, v2] = [perturbRows(k, textJ, c.seed * 3 + 5), perturbRows(v, textJ, c.seed * 3 + 6)];
        const out2 = maskedAttention(q, k2, v2, c.layout, { chunkSize: c.chunk });
        const d1 = out1.dataSync() as Float32Array;
        const d2 = out2.dataSync() as Float32Array;
        for (let i = 0; i < S; i++) {
          if (i === j) continue;
          expect(
            bitEqual(rows(d1, base.shape, textRange(c.layout, i)), rows(baseData, base.shape, textRange(c.layout, i))),
          ).toBe(true);
          expect(
            bitEqual(
              rows(d2, base.shape, videoRange(c.layout, i)),
              rows(baseData, base.shape, videoRange(c.layout, i)),
            ),
          ).toBe(true);
        }
        // the perturbation is real: scene j's own video rows see text_j and do change
        expect(
          bitEqual(rows(d2, base.shape, videoRange(c.layout, j)), rows(baseData, base.shape, videoRange(c.layout, j))),
        ).toBe(c.layout.text[j] === 0);
        tf.dispose([q, k, v, base, k1, v1, out1, k2, v2, out2]);
      }),
      opts,
    );
  });

  it('captured probabilities: zero on masked keys, rows sum to 1, equal to the dense reference; capture does not change the output', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const [q, k, v] = qkv(c);
        const L = layoutTotals(c.layout).total;
        const plain = maskedAttention(q, k, v, c.layout, { chunkSize: c.chunk });
        const probe = new Probe(['attn.probs']);
        const withProbe = maskedAttention(q, k, v, c.layout, { chunkSize: c.chunk, probe: probe.at('attn') });
        expect(bitEqual(Array.from(withProbe.dataSync()), Array.from(plain.dataSync()))).toBe(true);
        const p = probe.get('attn.probs')!;
        expect(p.shape).toEqual([c.B, c.H, L, L]);
        const pd = p.dataSync();
        const mask = denseMask(c.layout);
        for (let row = 0; row < c.B * c.H * L; row++) {
          let s = 0;
          for (let kk = 0; kk < L; kk++) {
            const x = pd[row * L + kk]!;
            if (mask[(row % L) * L + kk] === 0) expect(x).toBe(0);
            s += x;
          }
          expect(Math.abs(s - 1)).toBeLessThan(1e-5);
        }
        const ref = denseMaskedAttention(q, k, v, c.layout);
        expectClose('probs', pd, ref.probs.dataSync(), 1e-5, 1e-5);
        probe.dispose();
        tf.dispose([q, k, v, plain, withProbe, ref.out, ref.probs]);
      }),
      opts,
    );
  });

  it("captures the requested heads and one scene's query rows", () => {
    const layout: SceneLayout = { text: [2, 3, 1], video: [3, 2, 4] };
    const c: Case = { layout, B: 2, H: 3, d: 4, chunk: 2, seed: 5 };
    const [q, k, v] = qkv(c);
    const L = layoutTotals(layout).total;
    const probe = new Probe(['x.probs']);
    const out = maskedAttention(q, k, v, layout, { probe: probe.at('x'), probeHeads: [2, 0], probeScene: 1 });
    const p = probe.get('x.probs')!;
    expect(p.shape).toEqual([2, 2, 3 + 2, L]);
    const ref = denseMaskedAttention(q, k, v, layout).probs; // [B, H, L, L]
    const rowsOfScene1 = [...[2, 3, 4], ...[9, 10]]; // text_1 then video_1
    const expected = tf.tidy(() => tf.gather(tf.gather(ref, [2, 0], 1), rowsOfScene1, 2));
    expectClose('probs scene 1', p.dataSync(), expected.dataSync(), 1e-5, 1e-5);
    probe.dispose();
    tf.dispose([q, k, v, out, ref, expected]);
  });

  it('does not leak tensors across repeated calls (with and without probe)', () => {
    const layout = uniformLayout(3, 2, 3);
    const c: Case = { layout, B: 2, H: 2, d: 4, chunk: 2, seed: 1 };
    const [q, k, v] = qkv(c);
    const run = () => {
      const probe = new Probe(['a.probs']);
      tf.dispose(maskedAttention(q, k, v, layout, { chunkSize: 2 }));
      tf.dispose(maskedAttention(q, k, v, layout, { chunkSize: 3, probe: probe.at('a') }));
      probe.dispose();
    };
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, k, v]);
  });

  it('rejects bad shapes and options with typed errors', () => {
    const layout = uniformLayout(2, 1, 2);
    const q = tf.zeros([1, 1, 6, 2]);
    const bad = tf.zeros([1, 1, 5, 2]);
    expect(() => maskedAttention(bad, bad, bad, layout)).toThrow(/expected L = 6/);
    expect(() => maskedAttention(q, q, q, layout, { chunkSize: 0 })).toThrow(/chunkSize/);
    expect(() =>
      maskedAttention(q, q, q, layout, { probe: new Probe(['attention.probs']).at('attention'), probeHeads: [3] }),
    ).toThrow(/probeHeads/);
    tf.dispose([q, bad]);
  });

  it('peak score bytes grow linearly with the number of scenes (dense grows quadratically)', () => {
    const peaks = [1, 2, 4, 8].map((S) => peakScoreBytes(uniformLayout(S, 226, 1350), 1024));
    const dense = [1, 2, 4, 8].map((S) => denseScoreBytes(uniformLayout(S, 226, 1350)));
    // video block of one scene: min(1024, 1350) rows × (226 + S·1350) keys × 4 bytes
    expect(peaks).toEqual([1, 2, 4, 8].map((S) => 4 * 1024 * (226 + S * 1350)));
    expect(dense[3]! / dense[0]!).toBeCloseTo(64, 5);
  });
});
