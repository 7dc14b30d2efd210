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

describe('finite-difference gradient checks: VAE and text encoder (wasm, float32)', () => {
  test('VAE: one parameter tensor of every kind of layer, encoder and decoder', async () => {
    const { CogVideoXVAE } = await import('../../src/model/vae.js');
    const vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode'), { weights: fixturePath('vae_decode', 'weights.safetensors') });
    const x = tf.randomUniform([1, 3, 9, 24, 32], -1, 1, 'float32', 3);
    const R = tf.randomNormal([1, 3, 9, 24, 32], 0, 1, 'float32', 4);
    const loss = () => tf.tidy(() => {
      const post = vae.encode(x);
      const y = vae.decode(post.mean);
      post.dispose();
      return tf.mean(tf.mul(y, R)) as tf.Scalar;
    });
    // conv_in/out, resnet norms and convs, shortcut, down/up samplers, spatial norm conv_y/conv_b, mid block, norm_out
    const kinds = [/^encoder\.conv_in\.conv\.weight$/, /^encoder\.down_blocks\.0\.resnets\.0\.(norm1\.weight|conv1\.conv\.weight)$/, /^encoder\.down_blocks\.1\.downsamplers\.0\.conv\.weight$/,
      /^encoder\.down_blocks\.2\.resnets\.0\.conv_shortcut\.weight$/, /^encoder\.mid_block\.resnets\.1\.conv2\.conv\.bias$/, /^encoder\.norm_out\.weight$/, /^encoder\.conv_out\.conv\.weight$/,
      /^decoder\.conv_in\.conv\.weight$/, /^decoder\.mid_block\.resnets\.0\.norm1\.conv_y\.conv\.weight$/, /^decoder\.up_blocks\.0\.resnets\.0\.norm2\.conv_b\.conv\.bias$/,
      /^decoder\.up_blocks\.0\.upsamplers\.0\.conv\.weight$/, /^decoder\.up_blocks\.2\.upsamplers\.0\.conv\.bias$/, /^decoder\.up_blocks\.1\.resnets\.0\.conv_shortcut\.weight$/,
      /^decoder\.norm_out\.norm_layer\.weight$/, /^decoder\.conv_out\.conv\.weight$/];
    const rows = gradCheck(vae, loss, { only: (n) => kinds.some((k) => k.test(n)), eps: 2e-3 }); // encoder GroupNorms make larger steps nonlinear (1e-2 gives ~20% truncation error)
    tf.dispose([x, R]);
    vae.dispose();
    expect(rows.length).toBeGreaterThanOrEqual(12);
    const bad = rows.filter((r) => r.relErr > 3e-2 || Math.abs(r.numeric) < 1e-8);
    if (bad.length > 0) throw new Error(`VAE gradient mismatch:\n${bad.map((r) => `${r.name}: analytic ${r.analytic} numeric ${r.numeric}`).join('\n')}`);
  });

  test('text encoder (T5-style, gated-GELU, relative position bias): every parameter tensor', async () => {
    const { T5Encoder } = await import('../../src/text/textEncoder.js');
    const { parseTextEncoderConfig } = await import('../../src/config/textEncoderConfig.js');
    const { WordTokenizer } = await import('../../src/text/tokenizer.js');
    const tok = WordTokenizer.forWorld(8);
    const cfg = parseTextEncoderConfig({ vocab_size: tok.vocabSize, d_model: 16, d_kv: 8, num_heads: 2, num_layers: 2, d_ff: 24, feed_forward_proj: 'gated-gelu', relative_attention_num_buckets: 8, relative_attention_max_distance: 16 }).config;
    const enc = T5Encoder.init(cfg, 5);
    const ids = tf.tensor2d(tok.encodeBatch(['a red circle slides left on a blue background', 'it spins']), [2, 8], 'int32');
    const R = tf.randomNormal([2, 8, 16], 0, 1, 'float32', 6);
    const rows = gradCheck(enc, () => tf.tidy(() => tf.mean(tf.mul(enc.forward({ ids }), R)) as tf.Scalar), { eps: 2e-3 });
    tf.dispose([ids, R]);
    enc.dispose();
    const bad = rows.filter((r) => r.relErr > 3e-2);
    if (bad.length > 0) throw new Error(`text encoder gradient mismatch:\n${bad.map((r) => `${r.name}: analytic ${r.analytic} numeric ${r.numeric}`).join('\n')}`);
    // the embedding rows of unused tokens get no gradient, every other tensor does
    expect(rows.filter((r) => Math.abs(r.numeric) < 1e-8).map((r) => r.name)).toEqual([]);
  });
});
