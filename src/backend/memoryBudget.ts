/**
 * Refuse work that would not fit, before running it.
 *
 * - wasm: the heap is one linear memory of at most 4 GiB − 64 KiB. It only grows, and what limits a
 *   forward is whether the allocator (Emscripten's malloc) finds a free block for each tensor, not
 *   `tf.memory().numBytes`: XNNPACK keeps a packed copy of every matMul's right operand (a weight:
 *   1× the weights, invisible to tfjs), freed holes may be too small for the next tensor, and
 *   `numBytes` counts a reshaped view again. Running out does not throw in tfjs-wasm: malloc returns
 *   0, the output lands at offset 0 and overwrites live tensors (BACKENDS.md §6). So, on wasm:
 *     1. `checkMemoryBudget` refuses a forward whose heap need (`wasmHeapNeed`: the estimated tensor
 *        peak + `WASM_HEAP_MARGIN`), on top of what is live, exceeds the budget (3.5 GiB by default,
 *        `MASK2DIT_WASM_BUDGET_MIB`), and then asks the allocator for one block of that size
 *        (`wasmHeapCanHold`, freed at once): no block, no forward;
 *     2. `installWasmHeapGuard` (done by the check, and meant for backend start) turns a failed tensor
 *        allocation into a WasmHeapError before the kernel writes anything, so what slips past 1
 *        becomes a typed error instead of corrupted tensors.
 * - webgpu: one tensor is one storage binding; above `maxStorageBufferBindingSize` tfjs-webgpu returns
 *   zeros. The largest single tensor of the forward is checked against the device's limit.
 * - cpu: a tensor is a Float32Array of at most 2^32 elements.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { FF_CHUNK_ROWS } from '../layers/feedForward.js';
import { peakScoreBytes } from '../layers/maskedAttention.js';
import type { SceneLayout } from '../model/sceneLayout.js';
import { webGpuLimits } from './webgpu.js';

/** The wasm heap's maximum size (4 GiB − 64 KiB). */
export const WASM_HEAP_BYTES = 4294901760;
/** Default share of the wasm heap a forward may plan for (headroom for fragmentation and the allocator). */
export const WASM_BUDGET_BYTES = 3.5 * 2 ** 30;
/**
 * wasm: what a forward needs in one free heap block, above its estimated tensor peak (`wasmHeapNeed`).
 * Measured (benchmarks/memory.ts, 9 transformer cases, 5 runs each): started on a heap without holes,
 * a forward's highest address less its start is 1.05–1.28× its tensor peak — the allocator's loss to
 * the work's mix of sizes, which changes by up to 15 % between runs of one case with the allocator's
 * state — and at most 1.22× the estimate. With WASM_HEAP_FIXED_BYTES, what the check asks for is at
 * least 1.09× the largest need measured.
 */
export const WASM_HEAP_MARGIN = 0.3;
/** wasm: a transformer forward's heap need beyond WASM_HEAP_MARGIN: the allocator's granularity and XNNPACK's per-head operands (a few MiB at any size). */
export const WASM_HEAP_FIXED_BYTES = 2 * 2 ** 20;

const GiB = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const sizeText = (b: number) => (b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(1)} MiB` : GiB(b));

/** Work refused before running: its estimated memory exceeds what the backend can hold. */
export class MemoryBudgetError extends Mask2DiTError {
  constructor(
    readonly what: string,
    readonly neededBytes: number,
    readonly limitBytes: number,
    readonly backend: string,
    detail: string,
  ) {
    super('MEMORY_BUDGET', `${what}: needs about ${GiB(neededBytes)} but ${backend} allows ${GiB(limitBytes)}; ${detail}`);
  }
}

/** What one piece of work is expected to hold at its peak (on top of what is live before it). */
export interface PeakEstimate {
  /** Peak bytes of live intermediate tensors. */
  totalBytes: number;
  /** Bytes of the largest single tensor. */
  largestTensorBytes: number;
  /** What to change to make it smaller. */
  hint: string;
  /** wasm: bytes needed in one free heap block (default: `totalBytes` plus `WASM_HEAP_MARGIN`). */
  heapBytes?: number;
}

export interface MemoryLimits {
  backend: string;
  /** Bytes all live tensors together may take (undefined: no limit enforced). */
  totalBytes?: number;
  /** Bytes one tensor may take. */
  perTensorBytes?: number;
}

/** The limits of a backend (default: the current one). */
export function memoryLimits(backend: string = tf.getBackend()): MemoryLimits {
  switch (backend) {
    case 'wasm': {
      const mib = Number(process.env['MASK2DIT_WASM_BUDGET_MIB'] ?? '');
      const total = Number.isFinite(mib) && mib > 0 ? Math.min(mib * 2 ** 20, WASM_HEAP_BYTES) : WASM_BUDGET_BYTES;
      return { backend, totalBytes: total, perTensorBytes: total };
    }
    case 'webgpu': {
      const l = webGpuLimits();
      const binding = l?.['maxStorageBufferBindingSize'] ?? 128 * 2 ** 20;
      return { backend, perTensorBytes: Math.min(binding, l?.['maxBufferSize'] ?? binding) };
    }
    case 'cpu':
      return { backend, perTensorBytes: 4 * 2 ** 32 };
    default:
      return { backend };
  }
}

// ---------------------------------------------------------------------------------------------
// The wasm heap: a malloc guard, the heap's figures, and a probe for one free block
// ---------------------------------------------------------------------------------------------

/**
 * Top bytes of the heap that tensors may not take (set aside for allocations made inside the wasm
 * module, e.g. XNNPACK's packed copy of a matMul operand: a failure there is not reported to JS).
 */
export const WASM_HEAP_RESERVE_BYTES = 64 * 2 ** 20;

/** The part of tfjs-wasm's Emscripten module used here. */
interface WasmModule {
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  /** The linear memory: exported as `wasmMemory` by the threaded build, as `asm.memory` by the others. */
  wasmMemory?: WasmMemory;
  asm?: { memory?: WasmMemory };
  HEAPU8: Uint8Array;
}

interface WasmMemory {
  buffer: ArrayBufferLike;
  grow?: unknown;
}

interface HeapGuard {
  /** The allocator itself (no checks, no bookkeeping). */
  raw: (bytes: number) => number;
  /** Highest end address of a tensor allocation since the last reset. */
  highWater: number;
  /** Bytes of each live allocation made through the guard, by address. */
  sizes: Map<number, number>;
  /** Their sum, and its highest value since the last reset. */
  live: number;
  liveHighWater: number;
  /** Allocations may not end above this address. */
  limit: number;
}

const guards = new WeakMap<WasmModule, HeapGuard>();

/** A tensor allocation the wasm heap could not satisfy (instead of the silent corruption of BACKENDS.md §6). */
export class WasmHeapError extends Mask2DiTError {
  constructor(
    readonly bytes: number,
    readonly heapBytes: number,
    readonly liveBytes: number,
  ) {
    super('WASM_HEAP', `wasm heap exhausted: no room for a tensor of ${sizeText(bytes)} (heap ${sizeText(heapBytes)} of at most ${GiB(WASM_HEAP_BYTES)}, ${sizeText(liveBytes)} in live tensors); nothing was overwritten — use fewer frames or scenes, a smaller size, or a backend with more memory`);
  }
}

function wasmModule(): WasmModule | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as { wasm?: WasmModule }).wasm ?? undefined;
}

const memoryOf = (m: WasmModule): WasmMemory | undefined => m.wasmMemory ?? m.asm?.memory;
const heapSize = (m: WasmModule): number => memoryOf(m)?.buffer.byteLength ?? m.HEAPU8.length;

/**
 * Make a failed tensor allocation on the running wasm backend throw a WasmHeapError (idempotent;
 * true when wasm is running). tfjs-wasm takes malloc's 0 as an address and writes the result over
 * the start of the heap; the guard throws before the kernel runs, so nothing is overwritten and the
 * enclosing tidy frees what it made. An allocation that would end in the top
 * `WASM_HEAP_RESERVE_BYTES` is refused too. Per allocation: a comparison and the bookkeeping of
 * `wasmHeapStats` (a map entry). Allocations made inside the wasm module (XNNPACK's packed weights)
 * do not pass through it: running out there traps ("memory access out of bounds").
 */
export function installWasmHeapGuard(): boolean {
  const m = wasmModule();
  if (m === undefined) return false;
  if (guards.has(m)) return true;
  m._free(m._malloc(8)); // Emscripten's first calls replace the export stubs: wrap the real functions
  const raw = m._malloc.bind(m);
  const rawFree = m._free.bind(m);
  const g: HeapGuard = { raw, highWater: 0, sizes: new Map(), live: 0, liveHighWater: 0, limit: WASM_HEAP_BYTES - WASM_HEAP_RESERVE_BYTES };
  m._malloc = (bytes: number): number => {
    const p = raw(bytes);
    const end = (p >>> 0) + bytes;
    if (bytes > 0 && (p === 0 || end > g.limit)) {
      if (p !== 0) rawFree(p);
      throw new WasmHeapError(bytes, heapSize(m), tf.memory().numBytes);
    }
    g.highWater = Math.max(g.highWater, end);
    g.sizes.set(p >>> 0, bytes); // tfjs frees by the unsigned address
    g.live += bytes;
    g.liveHighWater = Math.max(g.liveHighWater, g.live);
    return p;
  };
  m._free = (p: number): void => {
    g.live -= g.sizes.get(p >>> 0) ?? 0;
    g.sizes.delete(p >>> 0);
    rawFree(p);
  };
  guards.set(m, g);
  return true;
}

/** The wasm heap now, and high-water marks since `resetWasmHighWater`. */
export interface WasmHeapStats {
  /** Its size (it grows, never shrinks). */
  heapBytes: number;
  /** Highest end address of a tensor. */
  highWaterBytes: number;
  /** Bytes of tensors on the heap now (tfjs-wasm allocations made since the guard was installed). */
  liveBytes: number;
  /** Highest `liveBytes`. */
  liveHighWaterBytes: number;
}

/** Figures of the running wasm backend's heap (installs the guard); undefined off wasm. */
export function wasmHeapStats(): WasmHeapStats | undefined {
  const m = wasmModule();
  if (m === undefined || !installWasmHeapGuard()) return undefined;
  const g = guards.get(m)!;
  return { heapBytes: heapSize(m), highWaterBytes: g.highWater, liveBytes: g.live, liveHighWaterBytes: g.liveHighWater };
}

/** Start new high-water marks (measurements). */
export function resetWasmHighWater(): void {
  const m = wasmModule();
  if (m === undefined || !installWasmHeapGuard()) return;
  const g = guards.get(m)!;
  g.highWater = 0;
  g.liveHighWater = g.live;
}

/**
 * Test hook: make tensor allocations ending above `bytes` fail as if the heap ended there
 * (undefined: back to the real end less the reserve).
 */
export function setWasmHeapLimitForTesting(bytes: number | undefined): void {
  const m = wasmModule();
  if (m !== undefined && installWasmHeapGuard()) guards.get(m)!.limit = bytes ?? WASM_HEAP_BYTES - WASM_HEAP_RESERVE_BYTES;
}

/**
 * Whether the wasm allocator can give `bytes` in one block right now (wasm only; true elsewhere).
 * The block is freed at once; the heap may have grown to make it, as the work would have made it
 * grow. Free memory that is split into smaller holes (fragmentation) or taken by allocations that
 * are not tensors (XNNPACK's packed weights) does not count, which is the point.
 */
export function wasmHeapCanHold(bytes: number): boolean {
  const m = wasmModule();
  if (m === undefined || bytes <= 0) return true;
  installWasmHeapGuard();
  const g = guards.get(m)!;
  if (bytes > g.limit) return false;
  const p = g.raw(bytes);
  if (p === 0) return false;
  m._free(p); // not in `sizes`: the bookkeeping is untouched
  return (p >>> 0) + bytes <= g.limit;
}

/**
 * Occupy every free block of the wasm heap (in pieces of `pieceBytes`; a smaller remainder stays free)
 * and return a function that frees them. Measurements use it so that what a piece of work then
 * allocates must come from the top of the heap: its high-water mark less `top` is its real contiguous
 * need. Stops at the first piece the heap had to grow for (Emscripten grows it by up to 20 % more,
 * which stays free at the top); never makes the allocator fail, which would change how it grows later.
 * Off wasm: a no-op.
 */
export function occupyWasmHeapHoles(pieceBytes = 64 * 2 ** 10): { top: number; release: () => void } {
  const m = wasmModule();
  if (m === undefined) return { top: 0, release: () => {} };
  installWasmHeapGuard();
  const g = guards.get(m)!;
  const end0 = heapSize(m);
  const held: number[] = [];
  let top = 0;
  for (;;) {
    const p = g.raw(pieceBytes);
    const end = (p >>> 0) + pieceBytes;
    if (p === 0 || end > end0) {
      if (p !== 0) m._free(p); // the heap grew for it: every free block below is taken
      break;
    }
    held.push(p);
    top = Math.max(top, end);
  }
  return { top, release: () => held.forEach((p) => m._free(p)) };
}

// ---------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------

/**
 * Heap bytes a piece of work needs in one free block on wasm for `est`: its `heapBytes`, else the
 * tensor-byte peak plus `WASM_HEAP_MARGIN` (the allocator's loss to the work's mix of sizes and
 * XNNPACK's packed copies of the per-head attention operands; see WASM_HEAP_MARGIN).
 */
export function wasmHeapNeed(est: PeakEstimate): number {
  return est.heapBytes ?? Math.ceil(est.totalBytes * (1 + WASM_HEAP_MARGIN));
}

/** Throw a MemoryBudgetError if `est` does not fit the current backend's limits (see the module comment). */
export function checkMemoryBudget(what: string, est: PeakEstimate, limits: MemoryLimits = memoryLimits()): void {
  const onWasm = limits.backend === 'wasm';
  const need = onWasm ? wasmHeapNeed(est) : est.totalBytes;
  if (limits.totalBytes !== undefined) {
    const live = tf.memory().numBytes;
    if (live + need > limits.totalBytes) {
      throw new MemoryBudgetError(what, live + need, limits.totalBytes, limits.backend, `${GiB(live)} already live + about ${GiB(need)} of intermediates; ${est.hint}`);
    }
  }
  if (limits.perTensorBytes !== undefined && est.largestTensorBytes > limits.perTensorBytes) {
    throw new MemoryBudgetError(what, est.largestTensorBytes, limits.perTensorBytes, `${limits.backend} (one tensor)`, `its largest tensor is about ${GiB(est.largestTensorBytes)}; ${est.hint}`);
  }
  if (onWasm && !wasmHeapCanHold(need)) {
    const s = wasmHeapStats();
    const heap = s?.heapBytes ?? 0;
    throw new MemoryBudgetError(what, need, WASM_HEAP_BYTES - WASM_HEAP_RESERVE_BYTES, 'the wasm heap', `no free block of ${GiB(need)}: the heap has grown to ${GiB(heap)} and ${GiB(tf.memory().numBytes)} of it are live tensors; the rest is split into smaller holes or held outside tensors (XNNPACK keeps a packed copy of every matMul weight); ${est.hint}`);
  }
}

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
 * 1,576–17,776 tokens): the estimate is 1.04–1.17× the measured peak (RESULTS.md, "Activation memory
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
  const held = (OUTER_ACTS + LAYER_ACTS * (d.heldBlockOutputs ?? 1) + (d.segment === true ? SEGMENT_ACTS : 0)) * act + tables;
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
