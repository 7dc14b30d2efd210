/**
 * Activation-memory estimates of the models' forwards (the transformer's and the T5 encoder's), for
 * `checkMemoryBudget` (src/backend/memoryBudget.ts), which refuses work that would not fit.
 * The constants were measured with `benchmarks/memory.ts` (benchmarks/RESULTS.md, "Activation memory
 * on wasm: estimate vs the heap").
 */
import { WASM_HEAP_FIXED_BYTES, WASM_HEAP_MARGIN, type PeakEstimate } from '../backend/memoryBudget.js';
import { FF_CHUNK_ROWS } from '../layers/feedForward.js';
import { peakScoreBytes } from '../layers/maskedAttention.js';
import type { SceneLayout } from '../scene/layout.js';

export interface TransformerDims {
  B: number;
  /** Text and video tokens (all scenes). */
  Lt: number;
  Lv: number;
  /** Token width D. */
  dim: number;
  heads: number;
  /** MLP hidden width (4·D). */
  ffInner: number;
  /** Attention query chunk. */
  chunkSize: number;
  layout: SceneLayout;
  /**
   * Block outputs the forward keeps alive until it ends: `num_layers` with today's
   * Mask2DiTTransformer.forward (its scope holds every block's output); 1 once it frees each block's
   * input after the block. Default 1.
   */
  heldBlockOutputs?: number;
  /** Whether the segment condition (`clip_idx`) is on: its gates are full `[B, L, D]` tensors. */
  segment?: boolean;
  /** Per-head width d (default dim / heads). */
  headDim?: number;
  /** 3D RoPE (CogVideoX-5B; default true): its `[L, d]` cos/sin tables, made by the forward at a new size. */
  rope?: boolean;
  /**
   * wasm: bytes of weights this forward multiplies for the first time (a model's first forward; an
   * offloaded block every forward): XNNPACK packs a copy of each, made inside the wasm module, where
   * running out is a trap ("memory access out of bounds"), not a WasmHeapError.
   */
  packBytes?: number;
}

/**
 * The peak tensor bytes of a transformer forward, in `[B, L, D]` float32 units (act = 4·B·L·D), from
 * what is live at its highest point (measured on the heap, benchmarks/memory.ts; "ff" is one MLP row
 * chunk `[rows, 4D]`, rows = min(B·L, FF_CHUNK_ROWS); "score" the largest `[chunk, keys]` score block
 * of one head, `peakScoreBytes`; "head" one head's `[L, d]`):
 *
 *   held all along  (OUTER_ACTS + LAYER_ACTS·held)·act     the patch-embedded tokens, their text/video
 *                                                         slices and the block outputs the forward keeps
 *                                                         (`heldBlockOutputs`: all of them today)
 *                   + 2·head with RoPE                    its cos/sin tables (the attention adds 2·head more)
 *                   + SEGMENT_ACTS·act with clip_idx      the segment condition's full-size gates and
 *                                                         its per-scene norm temporaries
 *   + the largest block stage:
 *     MLP, its end      MLP_END_ACTS·act                  h1/e1, norm2 out, [e; h], the MLP output, its
 *                                                         slices, gated sums (the MLP scope ends last)
 *     MLP, a row chunk  4·act + 3·ff + 2·[rows, D]        (one pass when B·L ≤ rows: 3·act + max(3·ff, 2·ff + 2·act))
 *     attention, v      ATTN_PROJ_ACTS·act                norm1 out, [e; h], q, k, v's projection and bias
 *     attention, heads  ATTN_LOOP_ACTS·act + 2·score + 8·head
 *                                                         norm1 out, per-head q, k, v (freed as the head
 *                                                         outputs grow), one score block and its softmax
 *
 * times ESTIMATE_SLACK. Measured against it (D 512 and 3072; 1 and 3 scenes; clip_idx; CFG batch 2;
 * 1,576–17,776 tokens): the estimate is 1.04–1.17× the measured peak (benchmarks/RESULTS.md, "Activation memory
 * on wasm"); `heapBytes` adds WASM_HEAP_MARGIN and WASM_HEAP_FIXED_BYTES. Not included: weights, and on wasm XNNPACK's packed copy
 * of each weight made by its first matMul — 1× the weights of a model's first forward, or of each
 * offloaded block every forward: pass those bytes as `packBytes`.
 */
export const OUTER_ACTS = 1;
export const LAYER_ACTS = 1;
export const SEGMENT_ACTS = 2.25;
export const MLP_END_ACTS = 7.25;
export const ATTN_PROJ_ACTS = 6;
export const ATTN_LOOP_ACTS = 4.25;
export const ESTIMATE_SLACK = 1.05;

/** Peak intermediate bytes of one transformer forward (float32), see OUTER_ACTS; pass `heldBlockOutputs` and `segment`. */
export function transformerPeakEstimate(d: TransformerDims): PeakEstimate {
  const n = d.B * (d.Lt + d.Lv);
  const act = 4 * n * d.dim;
  const rows = Math.min(n, FF_CHUNK_ROWS);
  const ff = 4 * rows * d.ffInner;
  const chunkOut = 4 * rows * d.dim;
  const score = peakScoreBytes(d.layout, d.chunkSize);
  const head = 4 * (d.Lt + d.Lv) * (d.headDim ?? d.dim / d.heads);
  const tables = d.rope === false ? 0 : 2 * head; // cos and sin
  const held =
    (OUTER_ACTS + LAYER_ACTS * (d.heldBlockOutputs ?? 1) + (d.segment === true ? SEGMENT_ACTS : 0)) * act + tables;
  const ffStage = n > rows ? 4 * act + 3 * ff + 2 * chunkOut : 3 * act + Math.max(3 * ff, 2 * ff + 2 * act);
  const attn = Math.max(ATTN_PROJ_ACTS * act, ATTN_LOOP_ACTS * act + 2 * score + 8 * head) + tables; // + the joint-sequence tables
  const block = Math.max(MLP_END_ACTS * act, ffStage, attn);
  const peak = Math.ceil(ESTIMATE_SLACK * (held + block));
  const pack = d.packBytes ?? 0;
  return {
    totalBytes: peak + pack,
    heapBytes: Math.ceil(peak * (1 + WASM_HEAP_MARGIN)) + WASM_HEAP_FIXED_BYTES + pack,
    largestTensorBytes: Math.max(ff, score, act),
    hint: 'use fewer frames or scenes, a smaller size, or a backend with more memory (webgpu on a GPU)',
  };
}

/** A T5 encoder forward (src/text/textEncoder.ts). */
export interface T5Dims {
  /** Prompts in the batch (scenes, ×2 with classifier-free guidance). */
  B: number;
  /** Tokens per prompt (226 for CogVideoX). */
  L: number;
  dModel: number;
  heads: number;
  dKv: number;
  dFF: number;
  layers: number;
  /** gated-gelu (T5 v1.1 / XXL: two `[B, L, d_ff]` inputs) rather than relu. */
  gated?: boolean;
  /** A padding mask makes the position bias `[B, H, L, L]` instead of `[1, H, L, L]`. */
  paddingMask?: boolean;
  /** wasm: bytes of weights multiplied for the first time (see `TransformerDims.packBytes`). */
  packBytes?: number;
}

/**
 * The peak tensor bytes of a T5 encoder forward (src/text/textEncoder.ts), with act = `[B, L, d_model]`,
 * inner = `[B, L, H·d_kv]`, scores = `[B, H, L, L]`, f = `[B, L, d_ff]` (float32):
 *
 *   held all along  2·bias + (1 + T5_LAYER_ACTS·layers)·act   the position bias ([1 | B, H, L, L]) and
 *                                                             its gathered table, the embeddings, every
 *                                                             block's output (the forward's scope keeps them)
 *   + the larger block stage:
 *     attention     T5_ATTN_ACTS·act + T5_ATTN_INNER·inner + T5_SCORES·scores
 *                                                             norm, q, k, v and their head transposes, the
 *                                                             scores, + bias, softmax (one batched matMul,
 *                                                             all kept by the attention's scope)
 *     MLP           T5_FF_ACTS·act + T5_FF_INNER·f            gated-gelu: wi_0, its gelu, wi_1, the product
 *
 * times ESTIMATE_SLACK. Measured (T5-XXL's ratios H·L / d_model = 3.5 and d_ff / d_model = 2.5 at
 * d_model 512 and 1024, 4 and 8 layers, batch 2 and 6, with and without a padding mask): 1.12–1.19× the
 * measured peak; `heapBytes` adds T5_HEAP_MARGIN. T5-XXL (d_model 4096, 64 heads, d_ff 10,240, 24
 * layers, L 226): about 50 act = 0.36 GiB for one scene with CFG (B 2), 1.02 GiB for 3 scenes (B 6);
 * weights (and, on wasm, their packed copies: `packBytes`) not included.
 */
export const T5_LAYER_ACTS = 1;
export const T5_ATTN_ACTS = 4;
export const T5_ATTN_INNER = 6;
export const T5_SCORES = 3;
export const T5_FF_ACTS = 4;
export const T5_FF_INNER = 4;
/**
 * wasm: a T5 forward's heap need above its estimate. Measured: 1.02–1.44× its tensor peak depending on
 * the allocator's state (its tensors are a few MiB each, so where they land matters more), at most
 * 1.24× the estimate; the request is at least 1.05× the largest need measured.
 */
export const T5_HEAP_MARGIN = 0.35;

/** Peak intermediate bytes of one T5 encoder forward (float32). */
export function t5PeakEstimate(d: T5Dims): PeakEstimate {
  const act = 4 * d.B * d.L * d.dModel;
  const inner = 4 * d.B * d.L * d.heads * d.dKv; // q, k, v, the merged heads
  const scores = 4 * d.B * d.heads * d.L * d.L; // [B, H, L, L]
  const bias = 4 * (d.paddingMask === true ? d.B : 1) * d.heads * d.L * d.L;
  const f = 4 * d.B * d.L * d.dFF;
  const outer = 2 * bias + (1 + T5_LAYER_ACTS * d.layers) * act;
  const attn = T5_ATTN_ACTS * act + T5_ATTN_INNER * inner + T5_SCORES * scores;
  const ff = T5_FF_ACTS * act + (d.gated === false ? 2 : T5_FF_INNER) * f;
  const peak = Math.ceil(ESTIMATE_SLACK * (outer + Math.max(attn, ff)));
  const pack = d.packBytes ?? 0;
  return {
    totalBytes: peak + pack,
    heapBytes: Math.ceil(peak * (1 + T5_HEAP_MARGIN)) + pack,
    largestTensorBytes: Math.max(scores, f, act),
    hint: 'encode fewer prompts at once (e.g. the conditional and unconditional prompts, or the scenes, one after the other)',
  };
}
