/**
 * The wasm memory budget at its edge, on a real-width block (CogVideoX-5B: D 3072, 48 heads × 64,
 * MLP 12,288; one layer of zero weights, small text and latent widths, few tokens so that the file
 * runs in seconds). The budget is set through MASK2DIT_WASM_BUDGET_MIB to what is live plus the heap
 * need of a chosen size: that size runs and stays under the budget, measured on the heap (tensor peak,
 * and the contiguous need of a forward started on a heap without holes); one latent frame more is
 * refused with a MemoryBudgetError before a single tensor is allocated. Also: the allocator probe and
 * the malloc guard (a failed allocation is a typed error and overwrites nothing).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import {
  MemoryBudgetError,
  WasmHeapError,
  checkMemoryBudget,
  installWasmHeapGuard,
  memoryLimits,
  occupyWasmHeapHoles,
  resetWasmHighWater,
  setWasmHeapLimitForTesting,
  wasmHeapCanHold,
  wasmHeapNeed,
  wasmHeapStats,
  type PeakEstimate,
} from '../../src/backend/memoryBudget.js';
import { transformerPeakEstimate } from '../../src/model/peakEstimate.js';
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer, type TransformerInputs } from '../../src/model/transformer.js';

const TEXT = 16;
const saved = process.env['MASK2DIT_WASM_BUDGET_MIB'];
afterEach(() => {
  if (saved === undefined) delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
  else process.env['MASK2DIT_WASM_BUDGET_MIB'] = saved;
  setWasmHeapLimitForTesting(undefined);
});
afterAll(() => shutdownBackends());

function model(): Mask2DiTTransformer {
  const { config } = parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: 48,
    attention_head_dim: 64,
    num_layers: 1,
    in_channels: 4,
    out_channels: 4,
    text_embed_dim: 64,
    max_text_seq_length: TEXT,
    time_embed_dim: 64,
    sample_height: 16,
    sample_width: 16,
    use_rotary_positional_embeddings: true,
  });
  return new Mask2DiTTransformer(config, WeightSource.zeros()); // the memory does not depend on the values; 140 M random draws take minutes under jest
}

/** One scene, `frames` latent frames of 16×16 (64 video tokens each) + 16 text tokens. */
function inputs(frames: number): TransformerInputs {
  return {
    hiddenStates: tf.randomNormal([1, frames, 4, 16, 16], 0, 1, 'float32', frames),
    encoderHiddenStates: tf.randomNormal([1, TEXT, 64], 0, 1, 'float32', 99),
    timestep: [500],
  };
}

/** The estimate for the forward over `x`, with every term the model has (layers, no segment). */
function estimate(m: Mask2DiTTransformer, x: TransformerInputs): PeakEstimate {
  const { layout, B } = m.plan(x);
  const c = m.config;
  const Lv = layout.video.reduce((a, b) => a + b, 0);
  return transformerPeakEstimate({
    B,
    Lt: TEXT,
    Lv,
    dim: c.innerDim,
    heads: c.num_attention_heads,
    ffInner: 4 * c.innerDim,
    chunkSize: 1024,
    layout,
    heldBlockOutputs: c.num_layers,
    headDim: c.attention_head_dim,
  });
}

/** Set the wasm budget to exactly `bytes` (MiB with a fraction: scaling by 2^20 is exact). */
const setBudget = (bytes: number) => (process.env['MASK2DIT_WASM_BUDGET_MIB'] = String(bytes / 2 ** 20));

describe('wasm memory budget at the edge (D 3072, 48 heads)', () => {
  let m: Mask2DiTTransformer;
  beforeAll(async () => {
    await selectBackend('wasm');
    installWasmHeapGuard();
    m = model();
    const warm = inputs(1);
    tf.dispose(m.forward(warm)); // weights packed by XNNPACK, RoPE cache: what a sampler's later steps find
    tf.dispose([warm.hiddenStates, warm.encoderHiddenStates]);
  });
  afterAll(() => {
    m.dispose();
  });

  it('the size whose heap need is the budget runs under it; one latent frame more is refused before allocating', () => {
    const frames = 6; // 16 + 384 tokens
    const below = inputs(frames);
    const above = inputs(frames + 1);
    try {
      const need = wasmHeapNeed(estimate(m, below));
      expect(wasmHeapNeed(estimate(m, above))).toBeGreaterThan(need);
      const live = tf.memory().numBytes; // what checkMemoryBudget sees as live when the forward starts
      const budget = live + need;
      setBudget(budget);

      // one frame more: refused, and not one tensor was allocated on the heap
      resetWasmHighWater();
      const tensors = tf.memory().numTensors;
      const heapLive = wasmHeapStats()!.liveBytes;
      expect(() => m.forward(above)).toThrow(MemoryBudgetError);
      expect(() => m.forward(above)).toThrow(/transformer forward: needs about .* GiB but wasm allows/);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(wasmHeapStats()!.liveBytes).toBe(heapLive);
      expect(wasmHeapStats()!.highWaterBytes).toBe(0);

      // the edge size: runs; measured from a heap without holes, so its allocations all come from the top
      const hole = occupyWasmHeapHoles();
      resetWasmHighWater();
      const start = wasmHeapStats()!;
      try {
        tf.dispose(m.forward(below));
      } finally {
        hole.release();
      }
      const end = wasmHeapStats()!;
      const peak = end.liveHighWaterBytes - start.liveBytes;
      const heapNeed = end.highWaterBytes - hole.top;
      expect(tf.memory().numTensors).toBe(tensors);
      expect(live + peak).toBeLessThanOrEqual(budget); // the measured peak stays under the budget
      expect(heapNeed).toBeLessThanOrEqual(need); // and so does the heap it needed in one block
      expect(estimate(m, below).totalBytes).toBeLessThanOrEqual(1.5 * peak); // not wildly pessimistic
    } finally {
      tf.dispose([below.hiddenStates, below.encoderHiddenStates, above.hiddenStates, above.encoderHiddenStates]);
    }
  });

  it('refused when the allocator has no free block that large, however small the live bytes', () => {
    const x = inputs(2);
    try {
      const need = wasmHeapNeed(estimate(m, x));
      const s = wasmHeapStats()!;
      setWasmHeapLimitForTesting(s.heapBytes); // as if the heap could not grow: only holes are left
      const hole = occupyWasmHeapHoles(); // and there are none
      try {
        resetWasmHighWater();
        expect(() => m.forward(x)).toThrow(/no free block of .* GiB: the heap has grown to/);
        expect(wasmHeapStats()!.highWaterBytes).toBe(0);
      } finally {
        hole.release();
      }
      setWasmHeapLimitForTesting(undefined);
      expect(() => checkMemoryBudget('op', { totalBytes: need, largestTensorBytes: 1, hint: '' })).not.toThrow();
    } finally {
      tf.dispose([x.hiddenStates, x.encoderHiddenStates]);
    }
  });

  it('the budget bounds the heap: the probe does not grow it past the budget, and work that would is refused', () => {
    const hole = occupyWasmHeapHoles(); // every free block taken: a new block must come from growth
    try {
      const before = wasmHeapStats()!.heapBytes;
      const need = 256 * 2 ** 20;
      const cap = before + need / 2; // live bytes are far under the budget; growing the heap for `need` is not
      const limits = { backend: 'wasm', totalBytes: 3 * 2 ** 30, heapBytes: cap };
      const est: PeakEstimate = { totalBytes: 1, largestTensorBytes: 1, hint: 'smaller', heapBytes: need };
      expect(wasmHeapCanHold(need, cap)).toBe(false);
      expect(() => checkMemoryBudget('op', est, limits)).toThrow(/no free block of 0\.25 GiB/);
      expect(wasmHeapStats()!.heapBytes).toBe(before); // refused without growing
      expect(memoryLimits('wasm').heapBytes).toBe(3.5 * 2 ** 30); // the default budget bounds the heap
      setBudget(2 ** 30); // a smaller budget bounds the tensors a forward plans for, not the heap
      expect(memoryLimits('wasm').heapBytes).toBe(3.5 * 2 ** 30);
      setBudget(3.75 * 2 ** 30); // a larger one raises the heap's bound too
      expect(memoryLimits('wasm').heapBytes).toBe(3.75 * 2 ** 30);
      // the cap is gone after the probe: the same block with room in the budget grows the heap
      expect(wasmHeapCanHold(need, before + 2 * need)).toBe(true);
      const grown = wasmHeapStats()!.heapBytes;
      expect(grown).toBeGreaterThanOrEqual(before + need);
      expect(grown).toBeLessThanOrEqual(before + 2 * need);
      const t = tf.ones([1024, 1024]); // and tensors still allocate
      expect(tf.sum(t).dataSync()[0]).toBe(1024 * 1024);
      t.dispose();
    } finally {
      hole.release();
    }
  });

  it('an allocation the heap cannot take throws WasmHeapError instead of overwriting live tensors', () => {
    const canary = tf.tensor1d([1, 2, 3, 4]);
    const big = tf.ones([1024, 1024]); // 4 MiB
    const tensors = tf.memory().numTensors;
    setWasmHeapLimitForTesting(wasmHeapStats()!.heapBytes); // as if the heap could not grow
    const hole = occupyWasmHeapHoles(); // and had no free block left
    try {
      expect(() => tf.tidy(() => tf.add(tf.mul(big, 2), 1))).toThrow(WasmHeapError);
      expect(() => tf.tidy(() => tf.mul(big, 2))).toThrow(
        /wasm heap exhausted: no room for a tensor of 4\.0 MiB .* nothing was overwritten/,
      );
    } finally {
      hole.release();
      setWasmHeapLimitForTesting(undefined);
    }
    expect(tf.memory().numTensors).toBe(tensors);
    expect(Array.from(canary.dataSync())).toEqual([1, 2, 3, 4]);
    expect(tf.tidy(() => tf.sum(tf.mul(big, 2))).dataSync()[0]).toBe(2 * 1024 * 1024);
    tf.dispose([canary, big]);
  });
});
