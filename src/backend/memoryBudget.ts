/**
 * Refuse work that would not fit, before running it.
 *
 * - wasm: the heap is one 4 GiB − 64 KiB linear memory, and running it out does not throw: malloc
 *   fails, the output lands at offset 0 and overwrites live tensors (BACKENDS.md §6). So a forward
 *   whose estimated peak, on top of what is already live (`tf.memory().numBytes`), exceeds the budget
 *   (3.5 GiB by default, `MASK2DIT_WASM_BUDGET_MIB` to change) is refused with a MemoryBudgetError.
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

const GiB = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

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

/** Throw a MemoryBudgetError if `est` does not fit the current backend's limits. */
export function checkMemoryBudget(what: string, est: PeakEstimate, limits: MemoryLimits = memoryLimits()): void {
  if (limits.totalBytes !== undefined) {
    const live = tf.memory().numBytes;
    if (live + est.totalBytes > limits.totalBytes) {
      throw new MemoryBudgetError(what, live + est.totalBytes, limits.totalBytes, limits.backend, `${GiB(live)} already live + about ${GiB(est.totalBytes)} of intermediates; ${est.hint}`);
    }
  }
  if (limits.perTensorBytes !== undefined && est.largestTensorBytes > limits.perTensorBytes) {
    throw new MemoryBudgetError(what, est.largestTensorBytes, limits.perTensorBytes, `${limits.backend} (one tensor)`, `its largest tensor is about ${GiB(est.largestTensorBytes)}; ${est.hint}`);
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
}

/**
 * A block's peak, in `[B, L, D]` float32 units ("act"), is the larger of its two halves (each runs
 * in its own tidy), measured with tf.profile on single blocks (D 512, 1024, 3072; 1–3 scenes of
 * 226 + 4,290 tokens; the cached weight transposes excluded) and the test model:
 *
 *   attention half   ATTN_ACTS·act + 3·score      q, k, v, their per-head copies, the output, the
 *                                                residual stream and norm outputs; the largest
 *                                                `[chunk, keys]` scores, softmax's temporaries, the
 *                                                probabilities
 *   MLP half         FF_ACTS·act + FF_CHUNKS·ff   input, outputs, the row-chunked `[rows, ffInner]`
 *                                                temporaries (rows = min(B·L, FF_CHUNK_ROWS))
 *
 * Measured per block (units of act): D 512 → 11.7 / 13.7 (1 / 3 scenes), D 1024 → 12.0 / 9.7,
 * D 3072 → 11.7 / 7.7, the test models (D 64: unchunked MLP 21.0; 4,112 tokens, scores dominate
 * 49); the estimate is 0.95–1.45× of each.
 * (The previous estimate, 22 acts regardless of L, was 2× high at 3 scenes.)
 */
export const ATTN_ACTS = 10;
export const FF_ACTS = 5;
export const FF_CHUNKS = 3.75;

/** Peak intermediate bytes of one transformer forward (float32): see ATTN_ACTS. */
export function transformerPeakEstimate(d: TransformerDims): PeakEstimate {
  const n = d.B * (d.Lt + d.Lv);
  const act = 4 * n * d.dim;
  const ff = 4 * Math.min(n, FF_CHUNK_ROWS) * d.ffInner;
  const score = peakScoreBytes(d.layout, d.chunkSize);
  return {
    totalBytes: Math.max(ATTN_ACTS * act + 3 * score, FF_ACTS * act + FF_CHUNKS * ff),
    largestTensorBytes: Math.max(ff, score, act),
    hint: 'use fewer frames or scenes, a smaller size, or a backend with more memory (webgpu on a GPU)',
  };
}
