/**
 * Gradients through every layer of the transformer, checked against finite differences, parameter
 * tensor by parameter tensor, on both masks (multi-scene joint and conditional) and both position
 * schemes (2B sin-cos table, 5B RoPE).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { fixturePath, loadFixture, numbers, toTensor } from '../helpers/fixtures.js';
import { gradCheck } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await selectBackend('wasm'); // the training backend; cpu gives the same verdicts, slower
});
afterAll(() => shutdownBackends());

async function check(caseName: string, clipIdx?: number) {
  const model = await Mask2DiTTransformer.fromPretrained(fixturePath(caseName), { weights: fixturePath(caseName, 'weights.safetensors') });
  const io = await loadFixture(caseName);
  const hs = toTensor(io, 'hidden_states');
  const ehs = toTensor(io, 'encoder_hidden_states');
  const R = tf.randomNormal(hs.shape.map((d, i) => (i === 2 ? model.config.outChannels : d)), 0, 1, 'float32', 5);
  const loss = () =>
    tf.tidy(() => {
      const y = model.forward({ hiddenStates: hs, encoderHiddenStates: ehs, timestep: numbers(io, 'timestep'), ...(clipIdx !== undefined ? { clipIdx, timestepCond: 0 } : {}) });
      return tf.mean(tf.mul(y, R)) as tf.Scalar; // linear in the output: only the network's curvature enters
    });
  const rows = gradCheck(model, loss);
  tf.dispose([hs, ehs, R]);
  model.dispose();
  return rows;
}

describe('finite-difference gradient checks (wasm, float32)', () => {
  test.each([
    ['mask2dit_conditional', undefined],
    ['mask2dit_conditional', 1],
    ['transformer_2b_single', undefined],
  ])('%s (clip_idx %s): every parameter tensor', async (caseName, clip) => {
    const rows = await check(caseName, clip);
    const rope = caseName !== 'transformer_2b_single';
    expect(rows.length).toBeGreaterThan(40);
    const bad = rows.filter((r) => r.relErr > 2e-2);
    if (bad.length > 0) throw new Error(`gradient mismatch:\n${bad.map((r) => `${r.name}: analytic ${r.analytic} numeric ${r.numeric}`).join('\n')}`);
    // every parameter influences the loss (no silently detached weight) — except, without RoPE, the
    // key LayerNorm's bias: it adds the same vector b to every key of a head, so each query's scores all
    // shift by q·b and the softmax cancels it; its true gradient is zero (RoPE rotates b per position).
    const invariant = (n: string) => !rope && /attn1\.norm_k\.bias$/.test(n);
    const dead = rows.filter((r) => Math.abs(r.numeric) < 1e-7 && !invariant(r.name));
    expect(dead.map((r) => r.name)).toEqual([]);
    for (const r of rows.filter((x) => invariant(x.name))) expect(Math.abs(r.analytic)).toBeLessThan(1e-6);
  });
});
