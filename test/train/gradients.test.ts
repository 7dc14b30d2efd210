/**
 * Gradients through every layer of the transformer, checked against finite differences, parameter
 * tensor by parameter tensor, on both masks (multi-scene joint and conditional) and both position
 * schemes (2B sin-cos table, 5B RoPE); a VAE and a text encoder likewise. The check
 * (test/helpers/gradcheck.ts) is an allclose, |analytic − numeric| ≤ atol + rtol·|numeric|, with each
 * atol set from the measured finite-difference noise of its loss; the last tests cut one parameter's
 * gradient on purpose and require the check to name it.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import type { Linear } from '../../src/layers/linear.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { fixturePath, loadFixture, numbers, toTensor } from '../helpers/fixtures.js';
import { gradCheck, type GradCheckOptions, gradMismatches, stopGradient } from '../helpers/gradcheck.js';

beforeAll(async () => {
  await selectBackend('wasm'); // the training backend; cpu gives the same verdicts, slower
});
afterAll(() => shutdownBackends());

/**
 * Transformer fixtures, loss mean(y·R) ≈ 1e-3…1e-2, step h = 1e-2. Noise measured on the three cases
 * below (wasm, 1 thread, 192 rows): the float32 loss is reproducible to σ_L ≈ 5e-9 (RMS residual of
 * L(p + δu), |δ| ≤ 4e-6, about its straight line), so one central difference carries
 * σ_L/(√2·h) ≈ 2e-7…8e-7 and the 4-point value ≈ 1.34× that; its observed error on the parameters with
 * gradients below 1e-3 (where truncation does not count) is 8e-7 RMS, 2e-6 at most. atol = 4e-6 is
 * 5× that RMS, 2× that maximum — and below the smallest gradients that matter here (1.3e-5:
 * the conditional case's key bias). The truncation error left is at most 1.2e-3 of the gradient
 * (rtol 5e-3). A single central difference would need rtol ≈ 2e-2 here, and the former relative
 * criterion an effective atol of 2e-5.
 */
const TRANSFORMER_TOL: GradCheckOptions = { atol: 4e-6, rtol: 5e-3, eps: 1e-2 };

async function check(caseName: string, clipIdx?: number, tamper?: (model: Mask2DiTTransformer) => void) {
  const model = await Mask2DiTTransformer.fromPretrained(fixturePath(caseName), {
    weights: fixturePath(caseName, 'weights.safetensors'),
  });
  tamper?.(model);
  const io = await loadFixture(caseName);
  const hs = toTensor(io, 'hidden_states');
  const ehs = toTensor(io, 'encoder_hidden_states');
  const R = tf.randomNormal(
    hs.shape.map((d, i) => (i === 2 ? model.config.outChannels : d)),
    0,
    1,
    'float32',
    5,
  );
  const loss = () =>
    tf.tidy(() => {
      const y = model.forward({
        hiddenStates: hs,
        encoderHiddenStates: ehs,
        timestep: numbers(io, 'timestep'),
        ...(clipIdx !== undefined ? { clipIdx, timestepCond: 0 } : {}),
      });
      return tf.mean(tf.mul(y, R)) as tf.Scalar; // linear in the output: only the network's curvature enters
    });
  const rows = gradCheck(model, loss, TRANSFORMER_TOL);
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
    expect(gradMismatches(rows)).toEqual([]);
    // every parameter influences the loss (no silently detached weight) — except, without RoPE, the
    // key LayerNorm's bias: it adds the same vector b to every key of a head, so each query's scores all
    // shift by q·b and the softmax cancels it; its true gradient is zero (RoPE rotates b per position).
    const invariant = (n: string) => !rope && /attn1\.norm_k\.bias$/.test(n);
    const dead = rows.filter((r) => Math.abs(r.numeric) < 1e-7 && !invariant(r.name));
    expect(dead.map((r) => r.name)).toEqual([]);
    for (const r of rows.filter((x) => invariant(x.name))) expect(Math.abs(r.analytic)).toBeLessThan(1e-6);
  });
});

describe('finite-difference gradient checks: VAE and text encoder (wasm, float32)', () => {
  test('VAE: one parameter tensor of every kind of layer, encoder and decoder', async () => {
    const { CogVideoXVAE } = await import('../../src/model/vae.js');
    const vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode'), {
      weights: fixturePath('vae_decode', 'weights.safetensors'),
    });
    const x = tf.randomUniform([1, 3, 9, 24, 32], -1, 1, 'float32', 3);
    const R = tf.randomNormal([1, 3, 9, 24, 32], 0, 1, 'float32', 4);
    const loss = () =>
      tf.tidy(() => {
        const post = vae.encode(x);
        const y = vae.decode(post.mean);
        post.dispose();
        return tf.mean(tf.mul(y, R)) as tf.Scalar;
      });
    // conv_in/out, resnet norms and convs, shortcut, down/up samplers, spatial norm conv_y/conv_b, mid block, norm_out
    const kinds = [
      /^encoder\.conv_in\.conv\.weight$/,
      /^encoder\.down_blocks\.0\.resnets\.0\.(norm1\.weight|conv1\.conv\.weight)$/,
      /^encoder\.down_blocks\.1\.downsamplers\.0\.conv\.weight$/,
      /^encoder\.down_blocks\.2\.resnets\.0\.conv_shortcut\.weight$/,
      /^encoder\.mid_block\.resnets\.1\.conv2\.conv\.bias$/,
      /^encoder\.norm_out\.weight$/,
      /^encoder\.conv_out\.conv\.weight$/,
      /^decoder\.conv_in\.conv\.weight$/,
      /^decoder\.mid_block\.resnets\.0\.norm1\.conv_y\.conv\.weight$/,
      /^decoder\.up_blocks\.0\.resnets\.0\.norm2\.conv_b\.conv\.bias$/,
      /^decoder\.up_blocks\.0\.upsamplers\.0\.conv\.weight$/,
      /^decoder\.up_blocks\.2\.upsamplers\.0\.conv\.bias$/,
      /^decoder\.up_blocks\.1\.resnets\.0\.conv_shortcut\.weight$/,
      /^decoder\.norm_out\.norm_layer\.weight$/,
      /^decoder\.conv_out\.conv\.weight$/,
    ];
    // Step h = 2e-3: the encoder's GroupNorms make larger steps nonlinear (a central difference at 1e-2
    // is ~20 % off; the 4-point value at 2e-3 at most 0.1 %). Noise: loss ≈ 5e-3, one central difference
    // at 2e-3 is off by 6.5e-6 RMS on the rows where truncation does not count, the 4-point value ≈ 1e-5;
    // observed at most 1.9e-5 (the decoder's conv_y weight, whose gradient is 8.6e-5). atol = 5e-5 ≈ 5σ.
    const rows = gradCheck(vae, loss, { only: (n) => kinds.some((k) => k.test(n)), eps: 2e-3, atol: 5e-5, rtol: 5e-3 });
    tf.dispose([x, R]);
    vae.dispose();
    expect(rows.length).toBeGreaterThanOrEqual(12);
    expect(gradMismatches(rows)).toEqual([]);
    expect(rows.filter((r) => Math.abs(r.numeric) < 1e-8).map((r) => r.name)).toEqual([]); // every kind of layer moves the loss
  });

  test('text encoder (T5-style, gated-GELU, relative position bias): every parameter tensor', async () => {
    const { T5Encoder } = await import('../../src/text/textEncoder.js');
    const { parseTextEncoderConfig } = await import('../../src/config/textEncoderConfig.js');
    const { WordTokenizer } = await import('../../src/text/tokenizer.js');
    const tok = WordTokenizer.forWorld(8);
    const cfg = parseTextEncoderConfig({
      vocab_size: tok.vocabSize,
      d_model: 16,
      d_kv: 8,
      num_heads: 2,
      num_layers: 2,
      d_ff: 24,
      feed_forward_proj: 'gated-gelu',
      relative_attention_num_buckets: 8,
      relative_attention_max_distance: 16,
    }).config;
    const enc = T5Encoder.init(cfg, 5);
    const ids = tf.tensor2d(
      tok.encodeBatch(['a red circle slides left on a blue background', 'it spins']),
      [2, 8],
      'int32',
    );
    const R = tf.randomNormal([2, 8, 16], 0, 1, 'float32', 6);
    // Step h = 5e-3 (gated GELU and the tiny width make this loss curved: a central difference at 5e-3 is
    // off by up to 5 %, the 4-point value by at most 0.13 %). Noise: loss ≈ 0.1, so σ_L ≈ 3e-8 and the
    // 4-point value at 5e-3 is off by 5.5e-6 RMS, 1.5e-5 at most; atol = 3e-5 ≈ 5σ. Gradients here are ≥ 2e-3.
    const rows = gradCheck(enc, () => tf.tidy(() => tf.mean(tf.mul(enc.forward({ ids }), R)) as tf.Scalar), {
      eps: 5e-3,
      atol: 3e-5,
      rtol: 5e-3,
    });
    tf.dispose([ids, R]);
    enc.dispose();
    expect(gradMismatches(rows)).toEqual([]);
    // the embedding rows of unused tokens get no gradient, every other tensor does
    expect(rows.filter((r) => Math.abs(r.numeric) < 1e-8).map((r) => r.name)).toEqual([]);
  });
});

describe('the gradient check finds a cut gradient', () => {
  // The conditional case's first key bias: its gradient along u is ≈ 1.3e-5, the size the former
  // criterion could not see (|a − n| / max(1e-3, |n|) ≤ 2e-2 allowed any a within 2e-5 of n).
  const CASE = 'mask2dit_conditional';
  const PARAM = 'transformer_blocks.0.attn1.to_k.bias';

  /** Make the Linear that owns PARAM read its bias as keep·b + (1 − keep)·stopGradient(b): same values, gradient × keep. */
  const cut = (keep: number) => (model: Mask2DiTTransformer) => {
    const linear = model.sublayer(PARAM.slice(0, -'.bias'.length)) as Linear;
    const b = linear.bias!;
    Object.defineProperty(linear, 'bias', {
      configurable: true,
      get: () => (keep === 0 ? stopGradient(b) : tf.add(tf.mul(b, keep), tf.mul(stopGradient(b), 1 - keep))),
    });
  };

  test('a fully detached parameter (gradient ~1e-5) is reported, and nothing else is', async () => {
    const rows = await check(CASE, undefined, cut(0));
    const row = rows.find((r) => r.name === PARAM)!;
    expect(row.analytic).toBe(0);
    expect(Math.abs(row.numeric)).toBeGreaterThan(1e-5); // the loss still moves with it
    expect(Math.abs(row.numeric)).toBeLessThan(1e-3); // … by little: the case the former criterion passed
    expect(row.error / Math.max(1e-3, Math.abs(row.numeric))).toBeLessThan(2e-2);
    expect(row.reached).toBe(false);
    expect(row.error).toBeGreaterThan(row.tol); // the allclose alone rejects it, not only the "reached" flag
    const mismatches = gradMismatches(rows);
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toMatch(
      new RegExp(`^${PARAM.replace(/\./g, '\\.')}: .*\\|difference\\| .* > .*no gradient reached it`),
    );
  });

  test('a parameter with three quarters of its gradient cut is reported by the allclose', async () => {
    const rows = await check(CASE, undefined, cut(0.25));
    const row = rows.find((r) => r.name === PARAM)!;
    expect(row.reached).toBe(true);
    expect(row.analytic / row.numeric).toBeCloseTo(0.25, 1);
    expect(row.error / Math.max(1e-3, Math.abs(row.numeric))).toBeLessThan(2e-2); // the former criterion passed it
    expect(row.ok).toBe(false);
    expect(gradMismatches(rows).map((m) => m.slice(0, m.indexOf(':')))).toEqual([PARAM]);
  });
});
