/**
 * Refuse work that would not fit, before running it.
 *
 * - wasm: the heap is one linear memory of at most 4 GiB − 64 KiB. It only grows, and what limits a
 *   forward is whether the allocator (Emscripten's malloc) finds a free block for each tensor, not
 *   `tf.memory().numBytes`: XNNPACK keeps a packed copy of every matMul's right operand (a weight:
 *   1× the weights, invisible to tfjs), freed holes may be too small for the next tensor, and
 *   `numBytes` counts a reshaped view again. Running out does not throw in tfjs-wasm: malloc returns
 *   0, the output lands at offset 0 and overwrites live tensors (tfjs-wasm does not check). So, on wasm:
 *     1. `checkMemoryBudget` refuses a forward whose heap need (`wasmHeapNeed`: the estimated tensor
 *        peak + `WASM_HEAP_MARGIN`), on top of what is live, exceeds the budget (3.5 GiB by default,
 *        `MASK2DIT_WASM_BUDGET_MIB`), and then asks the allocator for one block of that size
 *        (`wasmHeapCanHold`, freed at once): no block, no forward. The heap may grow for that block
 *        only up to the budget (or 3.5 GiB when a smaller budget is set, which then bounds the tensors
 *        a forward plans for, not the heap): so the heap's size stays within the budget too;
 *     2. `installWasmHeapGuard` (done by the check, and meant for backend start) turns a failed tensor
 *        allocation into a WasmHeapError before the kernel writes anything, so what slips past 1
 *        becomes a typed error instead of corrupted tensors.
 * - webgpu: one tensor is one storage binding; above `maxStorageBufferBindingSize` tfjs-webgpu returns
 *   zeros. The largest single tensor of the forward is checked against the device's limit.
 * - cpu: a tensor is a Float32Array of at most 2^32 elements.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
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
    super(
      'MEMORY_BUDGET',
      `${what}: needs about ${GiB(neededBytes)} but ${backend} allows ${GiB(limitBytes)}; ${detail}`,
    );
  }
}

/** What one piece of work is expected to hold at its peak (on top of what is live before it); the models' estimates: src/model/peakEstimate.ts, src/model/vaeMemory.ts. */
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
  /** wasm: the size the heap may grow to for the work (`wasmHeapCanHold`'s `growUpTo`). */
  heapBytes?: number;
}

/** The limits of a backend (default: the current one). */
export function memoryLimits(backend: string = tf.getBackend()): MemoryLimits {
  switch (backend) {
    case 'wasm': {
      const mib = Number(process.env['MASK2DIT_WASM_BUDGET_MIB'] ?? '');
      const total = Number.isFinite(mib) && mib > 0 ? Math.min(mib * 2 ** 20, WASM_HEAP_BYTES) : WASM_BUDGET_BYTES;
      return { backend, totalBytes: total, perTensorBytes: total, heapBytes: Math.max(total, WASM_BUDGET_BYTES) };
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

/** A tensor allocation the wasm heap could not satisfy (instead of tfjs-wasm writing it at address 0, over live tensors). */
export class WasmHeapError extends Mask2DiTError {
  constructor(
    readonly bytes: number,
    readonly heapBytes: number,
    readonly liveBytes: number,
  ) {
    super(
      'WASM_HEAP',
      `wasm heap exhausted: no room for a tensor of ${sizeText(bytes)} (heap ${sizeText(heapBytes)} of at most ${GiB(WASM_HEAP_BYTES)}, ${sizeText(liveBytes)} in live tensors); nothing was overwritten — use fewer frames or scenes, a smaller size, or a backend with more memory`,
    );
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
  const g: HeapGuard = {
    raw,
    highWater: 0,
    sizes: new Map(),
    live: 0,
    liveHighWater: 0,
    limit: WASM_HEAP_BYTES - WASM_HEAP_RESERVE_BYTES,
  };
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
  return {
    heapBytes: heapSize(m),
    highWaterBytes: g.highWater,
    liveBytes: g.live,
    liveHighWaterBytes: g.liveHighWater,
  };
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
  if (m !== undefined && installWasmHeapGuard())
    guards.get(m)!.limit = bytes ?? WASM_HEAP_BYTES - WASM_HEAP_RESERVE_BYTES;
}

/**
 * Run `f` with the heap's growth capped at `cap` bytes: Emscripten grows it through the linear
 * memory's `grow` (called from JS, `emscripten_realloc_buffer`), which here throws past the cap;
 * Emscripten then tries smaller over-growths and, failing all, malloc returns 0. Nothing else changes.
 */
function withGrowthCap<T>(m: WasmModule, cap: number, f: () => T): T {
  const mem = memoryOf(m) as (WasmMemory & { grow?: (pages: number) => number }) | undefined;
  if (mem === undefined || typeof mem.grow !== 'function') return f();
  const grow = mem.grow;
  const own = Object.getOwnPropertyDescriptor(mem, 'grow');
  Object.defineProperty(mem, 'grow', {
    configurable: true,
    writable: true,
    value: (pages: number): number => {
      if (mem.buffer.byteLength + pages * 65536 > cap) throw new RangeError('the heap budget');
      return grow.call(mem, pages);
    },
  });
  try {
    return f();
  } finally {
    if (own !== undefined) Object.defineProperty(mem, 'grow', own);
    else delete (mem as { grow?: unknown }).grow;
  }
}

/**
 * Whether the wasm allocator can give `bytes` in one block right now (wasm only; true elsewhere).
 * The block is freed at once. Free memory that is split into smaller holes (fragmentation) or taken
 * by allocations that are not tensors (XNNPACK's packed weights) does not count, which is the point.
 * With `growUpTo` (a budget in bytes) the heap may grow for the block only up to that size, Emscripten's
 * over-growth included (a heap already larger from earlier work may be used up to its end): the budget
 * then bounds the heap's size, not only what is live. Without it the heap may grow to its maximum, as
 * the work itself would make it grow.
 */
export function wasmHeapCanHold(bytes: number, growUpTo?: number): boolean {
  const m = wasmModule();
  if (m === undefined || bytes <= 0) return true;
  installWasmHeapGuard();
  const g = guards.get(m)!;
  if (bytes > g.limit) return false;
  const probe = () => g.raw(bytes);
  const p = growUpTo === undefined ? probe() : withGrowthCap(m, Math.max(heapSize(m), growUpTo), probe);
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
      throw new MemoryBudgetError(
        what,
        live + need,
        limits.totalBytes,
        limits.backend,
        `${GiB(live)} already live + about ${GiB(need)} of intermediates; ${est.hint}`,
      );
    }
  }
  if (limits.perTensorBytes !== undefined && est.largestTensorBytes > limits.perTensorBytes) {
    throw new MemoryBudgetError(
      what,
      est.largestTensorBytes,
      limits.perTensorBytes,
      `${limits.backend} (one tensor)`,
      `its largest tensor is about ${GiB(est.largestTensorBytes)}; ${est.hint}`,
    );
  }
  if (onWasm && !wasmHeapCanHold(need, limits.heapBytes)) {
    const s = wasmHeapStats();
    const heap = s?.heapBytes ?? 0;
    throw new MemoryBudgetError(
      what,
      need,
      WASM_HEAP_BYTES - WASM_HEAP_RESERVE_BYTES,
      'the wasm heap',
      `no free block of ${GiB(need)}: the heap has grown to ${GiB(heap)} and ${GiB(tf.memory().numBytes)} of it are live tensors; the rest is split into smaller holes or held outside tensors (XNNPACK keeps a packed copy of every matMul weight); ${est.hint}`,
    );
  }
}
