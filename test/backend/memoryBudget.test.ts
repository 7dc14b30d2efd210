/**
 * The memory budget refuses a forward that would not fit before running it, and its peak estimate
 * covers the measured peak — measured on the wasm heap (live tensor bytes; the contiguous need of a
 * forward started on a heap without holes) — within 1.5×, for 1 and 3 scenes, with and without the
 * segment condition (clip_idx) and CFG's batch of 2; the transformer keeps one RoPE table per input size.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import {
  MemoryBudgetError,
  checkMemoryBudget,
  memoryLimits,
  occupyWasmHeapHoles,
  resetWasmHighWater,
  wasmHeapNeed,
  wasmHeapStats,
  WASM_BUDGET_BYTES,
} from '../../src/backend/memoryBudget.js';
import { transformerPeakEstimate } from '../../src/model/peakEstimate.js';
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer, type TransformerInputs } from '../../src/model/transformer.js';

afterAll(() => shutdownBackends());

function model(): Mask2DiTTransformer {
  const { config } = parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: 2,
    attention_head_dim: 32,
    num_layers: 2,
    in_channels: 4,
    out_channels: 4,
    text_embed_dim: 32,
    max_text_seq_length: 8,
    time_embed_dim: 32,
    sample_height: 16,
    sample_width: 16,
    use_rotary_positional_embeddings: true,
  });
  return new Mask2DiTTransformer(config, WeightSource.random(1));
}

/** 4 heads × 64, 2 layers, 32 text tokens a scene: long sequences in a second or two per forward. */
function wideModel(): Mask2DiTTransformer {
  const { config } = parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: 4,
    attention_head_dim: 64,
    num_layers: 2,
    in_channels: 4,
    out_channels: 4,
    text_embed_dim: 64,
    max_text_seq_length: 32,
    time_embed_dim: 64,
    sample_height: 32,
    sample_width: 36,
    use_rotary_positional_embeddings: true,
  });
  return new Mask2DiTTransformer(config, WeightSource.random(2));
}

interface Case {
  scenes: number;
  frames: number;
  batch: number;
  clip?: number;
}

function caseInputs(c: Case): TransformerInputs {
  return {
    hiddenStates: tf.randomNormal([c.batch, c.frames, 4, 32, 36], 0, 1, 'float32', 3), // 288 video tokens a frame
    encoderHiddenStates: tf.randomNormal([c.batch, 32 * c.scenes, 64], 0, 1, 'float32', 4),
    timestep: Array<number>(c.batch).fill(500),
    ...(c.clip !== undefined ? { clipIdx: c.clip, timestepCond: 0 } : {}),
  };
}

/** `transformerPeakEstimate` with every term of the model and inputs (layers, segment). */
function estimate(m: Mask2DiTTransformer, x: TransformerInputs) {
  const { layout, B } = m.plan(x);
  const c = m.config;
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return transformerPeakEstimate({
    B,
    Lt: sum(layout.text),
    Lv: sum(layout.video),
    dim: c.innerDim,
    heads: c.num_attention_heads,
    ffInner: 4 * c.innerDim,
    chunkSize: 1024,
    layout,
    heldBlockOutputs: c.num_layers,
    segment: x.clipIdx !== undefined,
    headDim: c.attention_head_dim,
  });
}

describe('the estimate bounds the measured peak on the wasm heap', () => {
  let m: Mask2DiTTransformer;
  beforeAll(async () => {
    await selectBackend('wasm');
    m = wideModel();
    const warm = {
      hiddenStates: tf.randomNormal([1, 1, 4, 4, 4]),
      encoderHiddenStates: tf.randomNormal([1, 32, 64]),
      timestep: [500],
    };
    tf.dispose(m.forward(warm)); // weights packed by XNNPACK, as for a sampler's later steps
    tf.dispose([warm.hiddenStates, warm.encoderHiddenStates]);
  });
  afterAll(() => {
    m.dispose();
  });

  // tokens: 1 scene 32 + 1,152; 3 scenes 96 + 3,456 (MLP in row chunks, query chunks); CFG batch 2: 2,368 and 3,648 rows
  it.each([
    ['1 scene', { scenes: 1, frames: 4, batch: 1 }],
    ['3 scenes', { scenes: 3, frames: 12, batch: 1 }],
    ['3 scenes, clip_idx 1', { scenes: 3, frames: 12, batch: 1, clip: 1 }],
    ['1 scene, CFG batch 2', { scenes: 1, frames: 4, batch: 2 }],
    ['3 scenes, CFG batch 2, clip_idx 0', { scenes: 3, frames: 6, batch: 2, clip: 0 }],
  ] as [string, Case][])('%s', (_name, c) => {
    const x = caseInputs(c);
    try {
      const est = estimate(m, x);
      const hole = occupyWasmHeapHoles(); // what the forward allocates comes from the top of the heap
      resetWasmHighWater();
      const start = wasmHeapStats()!;
      try {
        tf.dispose(m.forward(x));
      } finally {
        hole.release();
      }
      const end = wasmHeapStats()!;
      const peak = end.liveHighWaterBytes - start.liveBytes; // live tensor bytes
      const need = end.highWaterBytes - hole.top; // heap bytes in one block
      expect(est.totalBytes).toBeGreaterThanOrEqual(peak);
      expect(est.totalBytes).toBeLessThanOrEqual(1.5 * peak);
      expect(wasmHeapNeed(est)).toBeGreaterThanOrEqual(need);
      expect(wasmHeapNeed(est)).toBeLessThanOrEqual(1.75 * need); // the need varies by ~10 % from run to run (the allocator)
    } finally {
      tf.dispose([x.hiddenStates, x.encoderHiddenStates]);
    }
  });
});

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
    expect(() => checkMemoryBudget('op', est, { backend: 'webgpu', perTensorBytes: 128 * 2 ** 20 })).toThrow(
      /largest tensor .* use a smaller chunk/,
    );
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
