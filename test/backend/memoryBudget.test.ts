/**
 * The memory budget refuses a forward that would not fit before running it, and its peak estimate
 * covers the measured peak (tf.profile); the transformer keeps one RoPE table per input size.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { MemoryBudgetError, checkMemoryBudget, memoryLimits, WASM_BUDGET_BYTES } from '../../src/backend/memoryBudget.js';
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';

afterAll(() => shutdownBackends());

function model(): Mask2DiTTransformer {
  const { config } = parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel', num_attention_heads: 2, attention_head_dim: 32, num_layers: 2, in_channels: 4, out_channels: 4,
    text_embed_dim: 32, max_text_seq_length: 8, time_embed_dim: 32, sample_height: 16, sample_width: 16, use_rotary_positional_embeddings: true,
  });
  return new Mask2DiTTransformer(config, WeightSource.random(1));
}

describe('memory budget', () => {
  let m: Mask2DiTTransformer;
  let x: tf.Tensor;
  let e: tf.Tensor;
  beforeAll(async () => {
    await selectBackend('wasm');
    m = model();
    x = tf.randomNormal([1, 4, 4, 16, 16], 0, 1, 'float32', 1); // 2 scenes × 2 latent frames × 8×8 patches
    e = tf.randomNormal([1, 16, 32], 0, 1, 'float32', 2);
  });
  afterAll(() => {
    tf.dispose([x, e]);
    m.dispose();
  });
  const inputs = () => ({ hiddenStates: x, encoderHiddenStates: e, timestep: [500] });

  it('the estimate covers the measured peak of a forward, within 1.5×', async () => {
    tf.dispose(m.forward(inputs())); // caches
    const before = tf.memory().numBytes;
    const prof = await tf.profile(() => {
      tf.dispose(m.forward(inputs()));
    });
    const measured = prof.peakBytes - before;
    const est = m.peakEstimate(m.plan(inputs())).totalBytes;
    expect(est).toBeGreaterThanOrEqual(0.9 * measured);
    expect(est).toBeLessThanOrEqual(1.5 * measured);
  });

  it('long sequences (MLP in row chunks, B·L > 2,048): the estimate still covers the measured peak, within 1.5×', async () => {
    // 2 scenes × 2 latent frames × 32×32 patches + 2 × 8 text = 4,112 tokens
    const big = tf.randomNormal([1, 4, 4, 64, 64], 0, 1, 'float32', 3);
    const long = { hiddenStates: big, encoderHiddenStates: e, timestep: [500] };
    try {
      tf.dispose(m.forward(long)); // caches (the RoPE table of this size)
      const before = tf.memory().numBytes;
      const prof = await tf.profile(() => {
        tf.dispose(m.forward(long));
      });
      const measured = prof.peakBytes - before;
      const est = m.peakEstimate(m.plan(long)).totalBytes;
      expect(est).toBeGreaterThanOrEqual(0.9 * measured);
      expect(est).toBeLessThanOrEqual(1.5 * measured);
    } finally {
      big.dispose();
    }
  });

  it('wasm: a forward over the budget is refused before running, naming the sizes', () => {
    expect(memoryLimits('wasm').totalBytes).toBe(WASM_BUDGET_BYTES);
    const saved = process.env['MASK2DIT_WASM_BUDGET_MIB'];
    process.env['MASK2DIT_WASM_BUDGET_MIB'] = '0.01'; // 10 KiB
    try {
      const n = tf.memory().numTensors;
      expect(() => m.forward(inputs())).toThrow(MemoryBudgetError);
      expect(() => m.forward(inputs())).toThrow(/transformer forward: needs about .* GiB but wasm allows/);
      expect(tf.memory().numTensors).toBe(n); // nothing was run
    } finally {
      if (saved === undefined) delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
      else process.env['MASK2DIT_WASM_BUDGET_MIB'] = saved;
    }
    expect(() => tf.dispose(m.forward(inputs()))).not.toThrow();
  });

  it('a tensor over the per-tensor limit is refused (the webgpu binding rule)', () => {
    const est = { totalBytes: 1, largestTensorBytes: 200 * 2 ** 20, hint: 'use a smaller chunk' };
    expect(() => checkMemoryBudget('op', est, { backend: 'webgpu', perTensorBytes: 128 * 2 ** 20 })).toThrow(/largest tensor .* use a smaller chunk/);
    expect(() => checkMemoryBudget('op', est, { backend: 'webgpu', perTensorBytes: 256 * 2 ** 20 })).not.toThrow();
  });

  it('RoPE tables are built once per input size, replaced on a new size, freed by dispose', () => {
    const a = m.cachedRope(4, 16, 16);
    expect(m.cachedRope(4, 16, 16)).toBe(a);
    const n = tf.memory().numTensors;
    const b = m.cachedRope(2, 16, 16);
    expect(b).not.toBe(a);
    expect(a.cos.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(n);
    const m2 = model();
    const before = tf.memory().numTensors;
    m2.cachedRope(4, 16, 16);
    m2.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before);
  });
});
