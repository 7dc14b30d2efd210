/**
 * `maskedAttentionHeads` (per-head inputs, heads merged, inputs freed as used) against
 * `maskedAttention` on random tiny cases (cpu): the same values bit for bit, the same captured
 * probabilities, inputs freed only with `consume`, no leaks, typed errors.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { maskedAttention, maskedAttentionHeads, type AttentionHeads } from '../../src/layers/maskedAttention.js';
import { Probe } from '../../src/layers/probe.js';
import { layoutTotals, uniformLayout, type SceneLayout } from '../../src/scene/layout.js';

beforeAll(async () => {
  await selectBackend('cpu');
});
afterAll(() => shutdownBackends());

interface Case {
  layout: SceneLayout;
  B: number;
  H: number;
  d: number;
  chunk: number;
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc.integer({ min: 1, max: 4 }).chain((S) =>
  fc.record({
    layout: fc.record({
      text: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: S, maxLength: S }),
      video: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: S, maxLength: S }),
    }),
    B: fc.integer({ min: 1, max: 2 }),
    H: fc.integer({ min: 1, max: 3 }),
    d: fc.integer({ min: 2, max: 6 }),
    chunk: fc.integer({ min: 1, max: 20 }),
    seed: fc.nat({ max: 10_000 }),
  }),
);

/** `[B, H, L, d]` q, k, v of a case. */
function qkv(c: Case): tf.Tensor[] {
  const L = layoutTotals(c.layout).total;
  return [0, 1, 2].map((i) => tf.randomUniform([c.B, c.H, L, c.d], -2, 2, 'float32', c.seed * 3 + i));
}

/** `[B, H, L, d]` → B·H tensors `[L, d]`, index b·H + h. */
function heads(t: tf.Tensor): tf.Tensor[] {
  const [B, H, L, d] = t.shape as number[];
  return tf.unstack(tf.reshape(t, [B! * H!, L!, d!]));
}

/** `[B, H, L, d]` → `[B, L, H·d]`. */
function merge(t: tf.Tensor): tf.Tensor {
  const [B, H, L, d] = t.shape as number[];
  return tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B!, L!, H! * d!]);
}

const bitEqual = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]));

describe('maskedAttentionHeads (cpu)', () => {
  it('equals maskedAttention with the heads merged, bit for bit, and captures the same probabilities', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const [q, k, v] = qkv(c) as [tf.Tensor, tf.Tensor, tf.Tensor];
        const p1 = new Probe(['a.probs']);
        const p2 = new Probe(['a.probs']);
        const ref = tf.tidy(() => merge(maskedAttention(q, k, v, c.layout, { chunkSize: c.chunk, probe: p1.at('a') })));
        const input: AttentionHeads = { q: heads(q), k: heads(k), v: heads(v) };
        const got = maskedAttentionHeads(input, c.layout, c.H, {
          chunkSize: c.chunk,
          probe: p2.at('a'),
          consume: true,
        });
        expect(got.shape).toEqual(ref.shape);
        expect(bitEqual(got.dataSync(), ref.dataSync())).toBe(true);
        expect(bitEqual(p2.get('a.probs')!.dataSync(), p1.get('a.probs')!.dataSync())).toBe(true);
        expect([...input.q, ...input.k, ...input.v].every((t) => t.isDisposed)).toBe(true);
        tf.dispose([q, k, v, ref, got]);
        p1.dispose();
        p2.dispose();
      }),
      { seed: 9127, numRuns: 30 },
    );
  });

  it('keeps its inputs without consume, and leaks nothing either way', () => {
    const layout = uniformLayout(3, 2, 3);
    const c: Case = { layout, B: 2, H: 2, d: 4, chunk: 2, seed: 5 };
    const [q, k, v] = qkv(c) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const input: AttentionHeads = { q: heads(q), k: heads(k), v: heads(v) };
    const before = tf.memory().numTensors;
    tf.dispose(maskedAttentionHeads(input, layout, 2, { chunkSize: 2 }));
    expect(tf.memory().numTensors).toBe(before);
    expect([...input.q, ...input.k, ...input.v].some((t) => t.isDisposed)).toBe(false);
    tf.dispose(maskedAttentionHeads(input, layout, 2, { chunkSize: 3, consume: true }));
    expect(tf.memory().numTensors).toBe(before - 3 * 4);
    tf.dispose([q, k, v]);
  });

  it('rejects inputs that do not match the layout or the head count', () => {
    const layout = uniformLayout(2, 1, 2); // L = 6
    const six = () => tf.zeros([6, 2]);
    const five = () => tf.zeros([5, 2]);
    const ok: AttentionHeads = { q: [six(), six()], k: [six(), six()], v: [six(), six()] };
    expect(() => maskedAttentionHeads(ok, layout, 3)).toThrow(/expected B·3 tensors/);
    const short: AttentionHeads = { q: [five()], k: [five()], v: [five()] };
    expect(() => maskedAttentionHeads(short, layout, 1)).toThrow(/expected \[6, 2\] per head/);
    tf.dispose([...ok.q, ...ok.k, ...ok.v, ...short.q, ...short.k, ...short.v]);
  });
});
