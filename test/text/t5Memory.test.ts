/**
 * The T5 encoder checks its activation peak before it runs (as the transformer and the VAE do): over the
 * wasm budget it is refused with a MemoryBudgetError naming it, before any tensor is made; the estimate
 * grows with the batch and counts the padding mask's `[B, H, L, L]` bias.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { MemoryBudgetError } from '../../src/backend/memoryBudget.js';
import { parseTextEncoderConfig } from '../../src/config/textEncoderConfig.js';
import { T5Encoder } from '../../src/text/textEncoder.js';

let model: T5Encoder;
beforeAll(async () => {
  await selectBackend('wasm');
  model = T5Encoder.init(
    parseTextEncoderConfig({
      vocab_size: 64,
      d_model: 32,
      d_kv: 8,
      num_heads: 4,
      num_layers: 2,
      d_ff: 48,
      feed_forward_proj: 'gated-gelu',
    }).config,
    1,
  );
});
afterEach(() => {
  delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
});
afterAll(() => {
  model.dispose();
  shutdownBackends();
});

describe('T5 memory check', () => {
  test('refused over the budget before running, runs under it', () => {
    const ids = tf.tensor2d(
      Int32Array.from({ length: 2 * 40 }, (_, i) => i % 64),
      [2, 40],
      'int32',
    );
    const est = model.peakEstimate(2, 40, false).totalBytes;
    process.env['MASK2DIT_WASM_BUDGET_MIB'] = String((tf.memory().numBytes + est / 2) / 2 ** 20);
    const before = tf.memory().numTensors;
    expect(() => model.forward({ ids })).toThrow(MemoryBudgetError);
    expect(() => model.forward({ ids })).toThrow(/T5 text encoder forward/);
    expect(tf.memory().numTensors).toBe(before);
    delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
    const y = model.forward({ ids });
    expect(y.shape).toEqual([2, 40, 32]);
    tf.dispose([ids, y]);
  });

  test('the estimate grows with the batch and with a padding mask', () => {
    expect(model.peakEstimate(4, 40, false).totalBytes).toBeGreaterThan(model.peakEstimate(2, 40, false).totalBytes);
    expect(model.peakEstimate(2, 40, true).totalBytes).toBeGreaterThan(model.peakEstimate(2, 40, false).totalBytes);
  });
});
