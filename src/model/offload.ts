/**
 * Weights as stored, widened per use: sequential block offload for models larger than the backend.
 *
 * tfjs has no bf16/f16 dtype, so a resident model holds float32 (2× a bf16 checkpoint), and the wasm
 * heap (≤ 4 GiB) cannot hold a 5B transformer or T5-XXL at all. In offload mode ('blocks') a model
 * keeps only its small non-block parameters in the backend; each block's weights stay in the
 * checkpoint file and are read synchronously (`fs.readSync` at the tensor's offset), widened to
 * float32 and, for Linear kernels, transposed to `[in, out]` in one JS pass right before the block
 * runs, then disposed right after. Same values, same kernels: the outputs equal the resident model's.
 *
 *   StoredWeights      the checkpoint's float tensors by name, read synchronously (a TensorReader)
 *   footprint()        what each mode holds: 4 B × params resident; kept part + one block offloaded
 *   chooseOffload()    'auto' | 'none' | 'blocks' against the backend budget and free RAM, with a
 *                      note saying why; refuses (MemoryBudgetError) what cannot fit even offloaded
 *   OffloadedBlocks    validates every block at load, then builds block i per use and disposes it
 *   StoredEmbedding    an embedding table never widened whole: only the rows of the ids are read
 */
import fs from 'node:fs';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { MemoryBudgetError, memoryLimits } from '../backend/memoryBudget.js';
import { Mask2DiTError, SafetensorsError, ShapeError } from '../errors.js';
import { bf16ToF32, f16ToF32 } from '../io/float16.js';
import { SafetensorsFile, ShardedSafetensors, type TensorSource } from '../io/safetensors.js';
import { M2Layer } from '../layers/layer.js';
import { WeightSource, type TensorReader } from '../layers/weightSource.js';

/** Where a model's block weights live: decided by memory ('auto'), all in the backend ('none'), or read per block ('blocks'). */
export type OffloadMode = 'auto' | 'none' | 'blocks';
export const OFFLOAD_MODES: readonly OffloadMode[] = ['auto', 'none', 'blocks'];

/** An offload mode from a flag or option value; a typed error otherwise. */
export function parseOffloadMode(value: string, what = '--offload'): OffloadMode {
  if ((OFFLOAD_MODES as readonly string[]).includes(value)) return value as OffloadMode;
  throw new Mask2DiTError(
    'OPTION',
    `${what}: expected one of ${OFFLOAD_MODES.join(', ')}, got ${JSON.stringify(value)}`,
  );
}

/** An offloaded model refused work it cannot do (training, assigning weights). */
export class OffloadError extends Mask2DiTError {
  constructor(what: string, detail: string) {
    super('OFFLOAD', `${what}: ${detail}`);
  }
}

/** Bytes for people: `3.50 GiB`, `212.0 MiB`, `96.3 kB`. */
const size = (b: number) =>
  b >= 2 ** 30
    ? `${(b / 2 ** 30).toFixed(2)} GiB`
    : b >= 2 ** 20
      ? `${(b / 2 ** 20).toFixed(1)} MiB`
      : `${(b / 1000).toFixed(1)} kB`;

// ---------------------------------------------------------------------------------------------
// Widening (pure): stored bytes → float32, optionally transposed, in one pass

type FloatDType = 'F32' | 'F16' | 'BF16' | 'F64';
const FLOAT_SIZE: Record<FloatDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const isFloat = (d: string): d is FloatDType => d in FLOAT_SIZE;

/** Tile edge of the blocked transpose (keeps both the read rows and the written columns in cache). */
const TILE = 64;

/** `out[j·rows + i] = bits(src[i·cols + j])` with bf16 widening (`shift` 16) or a plain 32-bit copy (`shift` 0). */
function transposeBits(
  src: Uint16Array | Uint32Array,
  shift: 0 | 16,
  rows: number,
  cols: number,
  out: Uint32Array,
): void {
  for (let i0 = 0; i0 < rows; i0 += TILE) {
    const i1 = Math.min(i0 + TILE, rows);
    for (let j0 = 0; j0 < cols; j0 += TILE) {
      const j1 = Math.min(j0 + TILE, cols);
      for (let i = i0; i < i1; i++) {
        const r = i * cols;
        for (let j = j0; j < j1; j++) out[j * rows + i] = src[r + j]! << shift;
      }
    }
  }
}

/** Decode stored little-endian `dtype` values into `out` (float32, exact for F16/BF16). */
function decodeInto(dtype: FloatDType, raw: Uint8Array, out: Float32Array): Float32Array {
  const n = out.length;
  switch (dtype) {
    case 'F32':
      out.set(new Float32Array(raw.buffer, raw.byteOffset, n));
      return out;
    case 'BF16':
      return bf16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, n), out);
    case 'F16':
      return f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, n), out);
    case 'F64': {
      const d = new Float64Array(raw.buffer, raw.byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = d[i]!;
      return out;
    }
  }
}

/**
 * Stored bytes (aligned, little-endian) → float32 values; a 2-D `[rows, cols]` tensor comes out as
 * `[cols, rows]` when `transpose`. BF16 and F32 widen and transpose in one pass; F16/F64 decode first.
 */
export function widenToF32(
  dtype: FloatDType,
  raw: Uint8Array,
  shape: readonly number[],
  transpose: boolean,
  out?: Float32Array,
): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  out ??= new Float32Array(n);
  if (out.length !== n) throw new RangeError(`widenToF32: output length ${out.length} != ${n} values`);
  if (!transpose) return decodeInto(dtype, raw, out);
  if (shape.length !== 2) throw new ShapeError('transpose', `only 2-D tensors are transposed at load, got [${shape}]`);
  const [rows, cols] = shape as [number, number];
  const bits = new Uint32Array(out.buffer, out.byteOffset, n);
  if (dtype === 'BF16') transposeBits(new Uint16Array(raw.buffer, raw.byteOffset, n), 16, rows, cols, bits);
  else if (dtype === 'F32') transposeBits(new Uint32Array(raw.buffer, raw.byteOffset, n), 0, rows, cols, bits);
  else transposeBits(new Uint32Array(decodeInto(dtype, raw, new Float32Array(n)).buffer), 0, rows, cols, bits);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The checkpoint's tensors, readable synchronously

interface StoredEntry {
  dtype: FloatDType;
  shape: number[];
  file: string;
  /** Absolute byte offset in `file`. */
  position: number;
  bytes: number;
}

/** Largest single read (Linux transfers at most 0x7ffff000 bytes per call). */
const MAX_READ = 1 << 30;

/** Where each tensor of an opened checkpoint lies: file and absolute offset. */
function locate(src: TensorSource): Map<string, { file: SafetensorsFile }> {
  const out = new Map<string, { file: SafetensorsFile }>();
  if (src instanceof SafetensorsFile) {
    for (const n of src.names()) out.set(n, { file: src });
    return out;
  }
  if (!(src instanceof ShardedSafetensors))
    throw new SafetensorsError('IO', src.path, 'offloading needs a safetensors file or a sharded index on disk');
  const shards = [...src.shards.values()];
  for (const n of src.names()) {
    const want = src.info(n);
    // the index maps each name to one shard; a shard holding the same name with another entry is not it
    const file = shards.find((f) => f.has(n) && JSON.stringify(f.info(n)) === JSON.stringify(want));
    if (file === undefined)
      throw new SafetensorsError(
        'TENSOR_NOT_FOUND',
        src.path,
        `tensor ${JSON.stringify(n)}: no shard holds it as the index says`,
      );
    out.set(n, { file });
  }
  return out;
}

/**
 * The float tensors of a checkpoint (F32/F16/BF16/F64), by name (minus `prefix`), read synchronously
 * tensor by tensor. Holds one read-only file descriptor per shard until `close()`.
 */
export class StoredWeights implements TensorReader {
  private readonly fds = new Map<string, number>();
  private closed = false;
  /**
   * Buffers reused from read to read (a 5B block is ~0.8 GB of reads: fresh buffers cost page faults
   * and GC, measured 3× slower widening): the stored bytes always, the float32 values on request.
   */
  private scratchRaw = new ArrayBuffer(0);
  private scratchF32 = new ArrayBuffer(0);

  private constructor(
    readonly label: string,
    private readonly entries: Map<string, StoredEntry>,
  ) {}

  /**
   * @param prefix take only names starting with it, without it (a combined pipeline checkpoint)
   * @param ignore names (after the prefix is dropped) to leave out, e.g. a tied embedding
   */
  static fromSource(src: TensorSource, options: { prefix?: string; ignore?: readonly string[] } = {}): StoredWeights {
    const prefix = options.prefix ?? '';
    const ignore = new Set(options.ignore ?? []);
    const entries = new Map<string, StoredEntry>();
    for (const [name, { file }] of locate(src)) {
      const info = file.info(name);
      const short = name.slice(prefix.length);
      if (!name.startsWith(prefix) || !isFloat(info.dtype) || ignore.has(short)) continue;
      const [start, end] = info.dataOffsets;
      entries.set(short, {
        dtype: info.dtype,
        shape: info.shape,
        file: file.path,
        position: file.dataStart + start,
        bytes: end - start,
      });
    }
    return new StoredWeights(src.path, entries);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  shape(name: string): readonly number[] | undefined {
    return this.entries.get(name)?.shape;
  }

  /** Number of values of `name` (0 when absent). */
  numel(name: string): number {
    return this.entries.get(name)?.shape.reduce((a, b) => a * b, 1) ?? 0;
  }

  private entry(name: string): StoredEntry {
    const e = this.entries.get(name);
    if (e === undefined)
      throw new SafetensorsError('TENSOR_NOT_FOUND', this.label, `no float tensor named ${JSON.stringify(name)}`);
    return e;
  }

  private fd(file: string): number {
    if (this.closed)
      throw new SafetensorsError('IO', file, 'the offloaded model was disposed: its checkpoint is closed');
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = fs.openSync(file, 'r');
      } catch (e) {
        throw new SafetensorsError('IO', file, `cannot open: ${(e as Error).message}`);
      }
      this.fds.set(file, fd);
    }
    return fd;
  }

  /** `into.byteLength` bytes of `file` at `position` (synchronously). */
  private readAt(file: string, into: Uint8Array, position: number, what: string): void {
    const fd = this.fd(file);
    let done = 0;
    while (done < into.byteLength) {
      const len = Math.min(into.byteLength - done, MAX_READ);
      let n: number;
      try {
        n = fs.readSync(fd, into, done, len, position + done);
      } catch (e) {
        throw new SafetensorsError('IO', file, `reading ${what}: ${(e as Error).message}`);
      }
      if (n === 0)
        throw new SafetensorsError(
          'TRUNCATED',
          file,
          `${what}: expected ${into.byteLength} bytes at offset ${position}, the file ended after ${done} (file changed or truncated?)`,
        );
      done += n;
    }
  }

  /** The stored bytes of `name` in a fresh, aligned buffer. */
  readRaw(name: string): Uint8Array {
    const e = this.entry(name);
    const out = new Uint8Array(e.bytes);
    this.readAt(e.file, out, e.position, `tensor ${JSON.stringify(name)}`);
    return out;
  }

  /**
   * `name` widened to float32; a 2-D `[out, in]` tensor as `[in, out]` when `transpose`. With
   * `transient` the result is a view of a buffer the next `transient` read overwrites: only for a
   * caller that copies it at once (e.g. `tf.tensor` on wasm, which copies into its heap).
   */
  readF32(name: string, transpose: boolean, transient = false): Float32Array {
    const e = this.entry(name);
    const raw = new Uint8Array(this.scratch('scratchRaw', e.bytes), 0, e.bytes);
    this.readAt(e.file, raw, e.position, `tensor ${JSON.stringify(name)}`);
    const n = e.bytes / FLOAT_SIZE[e.dtype];
    return widenToF32(
      e.dtype,
      raw,
      e.shape,
      transpose,
      transient ? new Float32Array(this.scratch('scratchF32', 4 * n), 0, n) : undefined,
    );
  }

  /** A reused buffer of at least `bytes` (grown when needed). */
  private scratch(which: 'scratchRaw' | 'scratchF32', bytes: number): ArrayBuffer {
    if (this[which].byteLength < bytes) this[which] = new ArrayBuffer(bytes);
    return this[which];
  }

  /** Rows of the 2-D tensor `name` `[R, C]` as float32 `[rows.length, C]`, each distinct row read once. */
  readRows(name: string, rows: ArrayLike<number>): Float32Array {
    const e = this.entry(name);
    if (e.shape.length !== 2) throw new ShapeError(name, `expected a 2-D table, got [${e.shape}]`);
    const [R, C] = e.shape as [number, number];
    const rowBytes = C * FLOAT_SIZE[e.dtype];
    const out = new Float32Array(rows.length * C);
    const firstAt = new Map<number, number>();
    const raw = new Uint8Array(rowBytes);
    for (let k = 0; k < rows.length; k++) {
      const r = rows[k]!;
      if (!Number.isInteger(r) || r < 0 || r >= R)
        throw new ShapeError('input_ids', `id ${r} is outside the ${R}-row table ${name}`);
      const seen = firstAt.get(r);
      if (seen !== undefined) {
        out.copyWithin(k * C, seen * C, (seen + 1) * C);
        continue;
      }
      this.readAt(e.file, raw, e.position + r * rowBytes, `row ${r} of ${JSON.stringify(name)}`);
      decodeInto(e.dtype, raw, out.subarray(k * C, (k + 1) * C));
      firstAt.set(r, k);
    }
    return out;
  }

  /** Close the file descriptors; later reads throw. */
  close(): void {
    this.closed = true;
    this.scratchRaw = new ArrayBuffer(0);
    this.scratchF32 = new ArrayBuffer(0);
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// What each mode holds, and the choice

/** How a model's parameters split into blocks (what offload reads per use) and the rest. */
export interface BlockLayout {
  /** Block i's parameters are named `${prefix}.${i}.…`. */
  prefix: string;
  count: number;
  /** Parameters under a block's prefix that stay resident anyway (T5's relative position table). */
  resident?: (name: string) => boolean;
  /** Tables that offload never widens whole: only the rows of the ids are read (T5's `shared.weight`). */
  rowsOnly?: readonly string[];
  /**
   * Matrices read by row lookup (gather), not by matMul (T5's tables). Every other matrix or kernel
   * (rank ≥ 2) is a matMul/conv operand, and on wasm XNNPACK keeps a packed copy of it, as large,
   * for as long as the tensor lives (measured: a resident D-1024 model of 219 MiB grows the heap by
   * 200 MiB on its first forward): the footprint counts those copies.
   */
  gathered?: (name: string) => boolean;
}

/** Bytes (float32 in the backend) each mode holds; `params` counts every stored float value. */
export interface WeightFootprint {
  params: number;
  /** 'none': 4 B × params. */
  residentBytes: number;
  /** 'blocks': what stays in the backend (non-block parameters). */
  keptBytes: number;
  /**
   * 'blocks': what block i holds in the backend while it runs — its small parameters and one matrix,
   * the largest (an offloaded block's Linears read their kernel per forward: `OffloadedBlocks`).
   */
  blockBytes: number[];
  /**
   * wasm: XNNPACK's packed copies of the matMul/conv operands — of all of them (resident), of the kept
   * ones, of a running block's (one matrix at a time: its largest).
   */
  packedBytes: number;
  keptPackedBytes: number;
  blockPackedBytes: number[];
  /** The largest single float32 tensor resident mode creates. */
  largestTensorBytes: number;
  /** The largest single float32 tensor offload mode creates (tables read by rows excluded). */
  largestOffloadTensorBytes: number;
}

/** Which block (index) a parameter name belongs to in offload mode, or undefined (kept / rows only). */
export function blockOf(name: string, layout: BlockLayout): number | undefined {
  if (!name.startsWith(`${layout.prefix}.`) || layout.resident?.(name) === true) return undefined;
  const i = Number(name.slice(layout.prefix.length + 1).split('.')[0]);
  return Number.isInteger(i) && i >= 0 && i < layout.count ? i : undefined;
}

export function footprint(store: StoredWeights, layout?: BlockLayout): WeightFootprint {
  const n = layout?.count ?? 0;
  const fp: WeightFootprint = {
    params: 0,
    residentBytes: 0,
    keptBytes: 0,
    blockBytes: Array(n).fill(0),
    packedBytes: 0,
    keptPackedBytes: 0,
    blockPackedBytes: Array(n).fill(0),
    largestTensorBytes: 0,
    largestOffloadTensorBytes: 0,
  };
  const largestMatrix: number[] = Array(n).fill(0);
  for (const name of store.names()) {
    const bytes = 4 * store.numel(name);
    // models without a layout (the VAE) are not modelled: no packed copies counted
    const packed =
      layout !== undefined && store.shape(name)!.length >= 2 && layout.gathered?.(name) !== true ? bytes : 0;
    fp.params += bytes / 4;
    fp.residentBytes += bytes;
    fp.packedBytes += packed;
    fp.largestTensorBytes = Math.max(fp.largestTensorBytes, bytes);
    if (layout?.rowsOnly?.includes(name) === true) continue;
    fp.largestOffloadTensorBytes = Math.max(fp.largestOffloadTensorBytes, bytes);
    const b = layout !== undefined ? blockOf(name, layout) : undefined;
    if (b !== undefined) {
      if (packed > 0)
        largestMatrix[b] = Math.max(largestMatrix[b]!, bytes); // streamed: one at a time
      else fp.blockBytes[b]! += bytes;
    } else {
      fp.keptBytes += bytes;
      fp.keptPackedBytes += packed;
    }
  }
  for (let b = 0; b < n; b++) {
    fp.blockBytes[b]! += largestMatrix[b]!;
    fp.blockPackedBytes[b] = largestMatrix[b]!;
  }
  return fp;
}

/** Memory a load may plan for. */
export interface MemoryAvailable {
  backend: string;
  /** Bytes the backend can still take (undefined: unknown, e.g. a GPU's memory; not checked). */
  backendBytes?: number;
  /** Bytes one tensor may take. */
  perTensorBytes?: number;
  /** Free RAM for JS-side buffers (and, `backendInJs`, for the backend's tensors too). */
  jsBytes: number;
  /** The backend's tensors are JS arrays (cpu): they count against `jsBytes`. */
  backendInJs: boolean;
}

/** What the current backend and machine allow now: the backend budget minus live tensors, and free RAM. */
export function memoryAvailable(): MemoryAvailable {
  const limits = memoryLimits();
  const free = os.freemem();
  const backendInJs = limits.backend === 'cpu';
  return {
    backend: limits.backend,
    ...(limits.totalBytes !== undefined ? { backendBytes: Math.max(0, limits.totalBytes - tf.memory().numBytes) } : {}),
    ...(limits.perTensorBytes !== undefined ? { perTensorBytes: limits.perTensorBytes } : {}),
    jsBytes: free,
    backendInJs,
  };
}

/** 'auto' keeps a model resident only if it leaves this share of the budget to a forward's activations. */
export const AUTO_ACTIVATION_SHARE = 0.25;

export interface Need {
  backend: number;
  perTensor: number;
  js: number;
}

/**
 * What a mode needs: backend bytes (on wasm with XNNPACK's packed copies), the largest tensor, and JS
 * memory (one tensor widened plus its stored bytes while it is read; on cpu the backend's too).
 */
export function memoryNeeded(mode: 'none' | 'blocks', fp: WeightFootprint, avail: MemoryAvailable): Need {
  const wasm = avail.backend === 'wasm';
  const block = (i: number) => fp.blockBytes[i]! + (wasm ? fp.blockPackedBytes[i]! : 0);
  const backend =
    mode === 'none'
      ? fp.residentBytes + (wasm ? fp.packedBytes : 0)
      : fp.keptBytes + (wasm ? fp.keptPackedBytes : 0) + Math.max(0, ...fp.blockBytes.map((_, i) => block(i)));
  const perTensor = mode === 'none' ? fp.largestTensorBytes : fp.largestOffloadTensorBytes;
  return { backend, perTensor, js: 2 * perTensor + (avail.backendInJs ? backend : 0) };
}

/** The first limit `need` exceeds (with `share` of the backend/JS budget), or undefined when it fits. */
function shortfall(
  need: Need,
  avail: MemoryAvailable,
  share = 1,
): { needed: number; limit: number; where: string } | undefined {
  if (avail.backendBytes !== undefined && need.backend > share * avail.backendBytes)
    return { needed: need.backend, limit: share * avail.backendBytes, where: avail.backend };
  if (avail.perTensorBytes !== undefined && need.perTensor > avail.perTensorBytes)
    return { needed: need.perTensor, limit: avail.perTensorBytes, where: `${avail.backend} (one tensor)` };
  const jsShare = avail.backendInJs ? share : 1;
  if (need.js > jsShare * avail.jsBytes) return { needed: need.js, limit: jsShare * avail.jsBytes, where: 'free RAM' };
  return undefined;
}

export interface OffloadDecision {
  mode: 'none' | 'blocks';
  /** One sentence for logs and load notes: the mode and why. */
  note: string;
  footprint: WeightFootprint;
}

/**
 * Pick the mode for a load (before any tensor is read) or refuse it.
 * @param what names the component and its folder, e.g. `transformer (/models/cogvideox-5b/transformer)`
 * @param canOffload false for models without blocks (only 'none' applies)
 * @throws MemoryBudgetError when the requested mode (for 'auto': even offload) does not fit
 */
export function chooseOffload(
  what: string,
  requested: OffloadMode,
  fp: WeightFootprint,
  avail: MemoryAvailable,
  canOffload: boolean,
): OffloadDecision {
  const blocks = fp.blockBytes.length;
  const resident = memoryNeeded('none', fp, avail);
  const offload = memoryNeeded('blocks', fp, avail);
  const canBlocks = canOffload && blocks > 0;
  const residentMiss = shortfall(resident, avail);
  const offloadMiss = canBlocks ? shortfall(offload, avail) : undefined;
  const largestBlock = Math.max(0, ...fp.blockBytes);
  const residentNote = `${what}: resident, ${size(fp.residentBytes)} of float32 weights (${fp.params} parameters)`;
  const offloadNote = (why: string) =>
    `${what}: offloading ${blocks} blocks (read from the checkpoint one block at a time, a block's matrices one at a time; ${size(fp.keptBytes)} kept + ${size(largestBlock)} for the running block) — ${why}`;
  const refuse = (miss: { needed: number; limit: number; where: string }, detail: string): never => {
    throw new MemoryBudgetError(`loading ${what}`, miss.needed, miss.limit, miss.where, detail);
  };
  const packed =
    avail.backend === 'wasm' && fp.packedBytes > 0
      ? ` + ${size(fp.packedBytes)} for XNNPACK's packed copies of the matrices`
      : '';
  const residentDetail = `its ${fp.params} parameters as float32 take ${size(fp.residentBytes)}${packed}`;
  const offloadDetail = `too large even for offload: the kept part (${size(fp.keptBytes)}) + a running block (${size(largestBlock)}) do not fit; use a backend with more memory (webgpu on a GPU)`;

  if (requested === 'none' || !canBlocks) {
    if (residentMiss !== undefined) {
      const hint =
        canBlocks && offloadMiss === undefined
          ? `; load with offload 'blocks' (--offload blocks) to read one block at a time`
          : '';
      refuse(residentMiss, `${residentDetail}${hint}`);
    }
    return { mode: 'none', note: residentNote, footprint: fp };
  }
  if (requested === 'blocks') {
    if (offloadMiss !== undefined) refuse(offloadMiss, offloadDetail);
    return { mode: 'blocks', note: offloadNote('requested'), footprint: fp };
  }
  // auto: resident when it fits with room for activations
  const tight = shortfall(resident, avail, 1 - AUTO_ACTIVATION_SHARE);
  if (tight === undefined) return { mode: 'none', note: residentNote, footprint: fp };
  if (offloadMiss !== undefined) refuse(offloadMiss, offloadDetail);
  return {
    mode: 'blocks',
    note: offloadNote(
      `resident would need ${size(tight.needed)}, ${tight.where} allows ${size(tight.limit)} with room for activations`,
    ),
    footprint: fp,
  };
}

// ---------------------------------------------------------------------------------------------
// Blocks built per use

/**
 * A model's blocks kept out of the backend. At construction every block is built once from
 * `ws.checkOnly()` (names and shapes checked and marked used, nothing read); `run(i, fn)` builds
 * block i from the stored bytes, runs `fn` and disposes the block, also when `fn` throws. The block is
 * built from a `streaming()` source: its small parameters are read at build, each Linear's kernel at
 * each of its forwards (and freed after it), so a running block holds one matrix at a time.
 */
export class OffloadedBlocks<T extends M2Layer> {
  constructor(
    readonly store: StoredWeights,
    readonly layout: BlockLayout,
    private readonly build: (ws: WeightSource, i: number) => T,
    ws: WeightSource,
  ) {
    const check = ws.checkOnly().pp(layout.prefix);
    for (let i = 0; i < layout.count; i++) build(check.pp(i), i).dispose();
    this.blockNames = store.names().filter((n) => blockOf(n, layout) !== undefined);
    this.blockBytes = footprint(store, layout).blockBytes;
  }

  private readonly blockNames: string[];
  private readonly blockBytes: number[];

  get count(): number {
    return this.layout.count;
  }

  /** Build block i (widened, kernels transposed), run `fn` on it, dispose it. */
  run<R>(i: number, fn: (block: T) => R): R {
    const ws = WeightSource.fromReader(this.store).streaming(); // Linears read their kernel per forward
    const block = this.build(ws.pp(this.layout.prefix).pp(i), i);
    try {
      ws.finish(false);
      return fn(block);
    } finally {
      block.dispose();
    }
  }

  /** Stored names of the blocks' parameters. */
  names(): string[] {
    return this.blockNames.slice();
  }

  /** Values of all blocks (what `countParams` adds for them). */
  paramCount(): number {
    return this.blockNames.reduce((s, n) => s + this.store.numel(n), 0);
  }

  /** Bytes a running block holds at most (its small parameters and its largest matrix: `footprint`). */
  largestBlockBytes(): number {
    return Math.max(0, ...this.blockBytes);
  }

  /**
   * The blocks' parameters as reference-layout float32 tensors, one at a time: each is disposed when
   * the next is taken (or the loop ends), so consume it before advancing (e.g. `await t.data()`).
   */
  *tensors(): Generator<[string, tf.Tensor]> {
    for (const n of this.blockNames) {
      const t = tf.tensor(this.store.readF32(n, false), [...this.store.shape(n)!], 'float32');
      try {
        yield [n, t];
      } finally {
        t.dispose();
      }
    }
  }

  close(): void {
    this.store.close();
  }
}

/**
 * An embedding table `[rows, dim]` left in the checkpoint: a forward reads only the rows of its ids
 * (T5-XXL's 32128 × 4096 table is 0.5 GiB as float32; a prompt needs 226 rows of it).
 */
export class StoredEmbedding extends M2Layer {
  static readonly className = 'M2StoredEmbedding';
  constructor(
    readonly config: { rows: number; dim: number },
    private readonly store: StoredWeights,
    /** The table's stored name (e.g. `shared.weight`). */
    readonly tableName: string,
  ) {
    super(tableName.replace(/\.weight$/, ''));
  }

  /** @param ids int32 `[...]` → `[..., dim]` */
  forward(ids: tf.Tensor): tf.Tensor {
    const rows = this.store.readRows(this.tableName, ids.dataSync() as Int32Array); // [N, dim]
    return tf.tensor(rows, [...ids.shape, this.config.dim], 'float32');
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return [...((Array.isArray(s[0]) ? s[0] : s) as tfl.Shape), this.config.dim];
  }
}
tf.serialization.registerClass(StoredEmbedding, 'Mask2DiT');
