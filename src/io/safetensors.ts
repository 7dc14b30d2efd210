/**
 * safetensors reader and writer (our own: the npm `safetensors` package is an empty stub).
 *
 * Files are untrusted input. Opening reads the 8-byte header length and then only the header,
 * through a file descriptor, after checking the length against a cap and the file size; the header
 * is validated completely (UTF-8, JSON object, no duplicate keys, dtypes, shapes, byte sizes, offsets
 * that tile the data area exactly) before any tensor is touched. A tensor's bytes are read only when
 * asked for, by name, with one positional read into a freshly allocated typed array. Every problem
 * with the input is a `SafetensorsError` whose message names the file and whose `code` names the rule.
 *
 * Format: u64 little-endian N, N bytes of JSON header `{"__metadata__": {str: str}?, name: {"dtype",
 * "shape", "data_offsets": [start, end]}}` (offsets relative to the data area at 8 + N), then the data.
 * Host byte order is assumed little-endian (true of every platform Node ships for).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsError, type SafetensorsErrorCode } from '../errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './float16.js';

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './float16.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element. */
export const DTYPE_SIZE: Record<DType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export const DTYPES: readonly DType[] = Object.keys(DTYPE_SIZE) as DType[];

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** [start, end) relative to the data area, as in the header. */
  dataOffsets: [number, number];
}

/** F16 and BF16 decode to Float32Array (exactly), BOOL to Uint8Array (0/1), the rest to their own typed array. */
export type TensorData = Float64Array | Float32Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** What a single file and a sharded checkpoint have in common. */
export interface TensorSource {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Tensor names, in the order their bytes lie on disk (sharded: shard by shard). */
  names(): string[];
  has(name: string): boolean;
  /** Throws SafetensorsError TENSOR_NOT_FOUND naming the tensor. */
  info(name: string): TensorInfo;
  read(name: string): Promise<TensorData>;
  readRaw(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_SIZE = 100_000_000;
/** Largest index.json accepted. */
const MAX_INDEX_SIZE = 100_000_000;
/** Largest single read or write call (Linux transfers at most 0x7ffff000 bytes per call). */
const MAX_IO_CHUNK = 1 << 30;
const METADATA_KEY = '__metadata__';

const fail = (code: SafetensorsErrorCode, file: string, detail: string): never => {
  throw new SafetensorsError(code, file, detail);
};

// Errors are duck-typed, not `instanceof Error`: under test runners with separate realms (jest's
// vm contexts) Node's fs errors are not instances of the caller's Error.
function errnoDetail(e: unknown): string {
  if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') {
    const { code, message } = e as { code?: unknown; message: string };
    return typeof code === 'string' && !message.startsWith(code) ? `${code}: ${message}` : message;
  }
  return String(e);
}

function ioError(file: string, what: string, e: unknown): SafetensorsError {
  if (e instanceof SafetensorsError) return e;
  return new SafetensorsError('IO', file, `${what}: ${errnoDetail(e)}`);
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Compares strings by Unicode code point (= UTF-8 byte order, the order the reference writer uses). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above every BMP unit, including 0xE000-0xFFFF.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** Number of elements of a shape, or undefined if it is not a safe integer. */
function numelOf(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/** Bytes of a tensor, or undefined on overflow. */
function byteSizeOf(dtype: DType, shape: readonly number[]): number | undefined {
  const n = numelOf(shape);
  if (n === undefined) return undefined;
  const bytes = n * DTYPE_SIZE[dtype];
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

// ---------------------------------------------------------------------------------------------
// Duplicate keys. JSON.parse silently keeps the last of two equal keys, so the raw text is scanned
// for every object's keys (compared after unescaping). Only called on text JSON.parse accepted, so
// the scanner may assume well-formed JSON.

/** The first duplicated key, with its path (`''` = top level), or undefined. */
export function findDuplicateKey(text: string): { path: string; key: string } | undefined {
  interface Frame {
    keys: Set<string> | undefined; // undefined: an array
    expectKey: boolean;
    path: string;
    lastKey: string;
  }
  const stack: Frame[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else if (Number.isNaN(d)) {
          return undefined; // unterminated: not JSON after all (cannot happen after JSON.parse)
        } else {
          j++;
        }
      }
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined && top.expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) return { path: top.path, key };
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const p = parent === undefined ? '' : parent.keys !== undefined ? (parent.path === '' ? parent.lastKey : `${parent.path}.${parent.lastKey}`) : `${parent.path}[]`;
      stack.push({ keys: c === 0x7b ? new Set() : undefined, expectKey: c === 0x7b, path: p, lastKey: '' });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined) top.expectKey = true;
    }
    i++;
  }
  return undefined;
}

/**
 * Whether brackets nest deeper than `limit` (strings skipped). Checked before JSON.parse so that a
 * header of a million '[' cannot make the parser (or the duplicate scan) build a million levels;
 * the reference implementation's JSON parser stops at 128 too.
 */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

const MAX_NESTING = 128;

// ---------------------------------------------------------------------------------------------
// Header parsing and validation

interface ParsedHeader {
  metadata: Record<string, string>;
  /** In data-offset order. */
  tensors: TensorInfo[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Validates a header (the N bytes after the length prefix) against a data area of `dataSize` bytes. */
function parseHeader(file: string, bytes: Uint8Array, dataSize: number): ParsedHeader {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return fail('INVALID_HEADER_UTF8', file, 'header is not valid UTF-8');
  }
  if (nestsDeeperThan(text, MAX_NESTING)) return fail('INVALID_HEADER_JSON', file, `header nests deeper than ${MAX_NESTING} levels`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail('INVALID_HEADER_JSON', file, `header is not valid JSON (${errnoDetail(e)})`);
  }
  if (!isPlainObject(json)) {
    return fail('HEADER_NOT_OBJECT', file, `header must be a JSON object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) {
    return fail(
      'DUPLICATE_NAME',
      file,
      dup.path === '' ? `header names ${JSON.stringify(dup.key)} more than once` : `header entry ${JSON.stringify(dup.path)} has key ${JSON.stringify(dup.key)} more than once`,
    );
  }

  const metadata: [string, string][] = [];
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    const q = JSON.stringify(name);
    if (name === METADATA_KEY) {
      if (!isPlainObject(entry)) return fail('INVALID_METADATA', file, `__metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') return fail('INVALID_METADATA', file, `__metadata__.${JSON.stringify(k)} must be a string, got ${v === null ? 'null' : typeof v}`);
        metadata.push([k, v]);
      }
      continue;
    }
    if (!isPlainObject(entry)) return fail('INVALID_ENTRY', file, `tensor ${q}: entry must be an object`);
    for (const k of Object.keys(entry)) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') return fail('INVALID_ENTRY', file, `tensor ${q}: unexpected field ${JSON.stringify(k)}`);
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') return fail('INVALID_ENTRY', file, `tensor ${q}: "dtype" must be a string`);
    if (!Array.isArray(shape)) return fail(hasOwn(entry, 'shape') ? 'INVALID_SHAPE' : 'INVALID_ENTRY', file, `tensor ${q}: "shape" must be an array`);
    if (!Array.isArray(offsets)) return fail(hasOwn(entry, 'data_offsets') ? 'INVALID_OFFSETS' : 'INVALID_ENTRY', file, `tensor ${q}: "data_offsets" must be an array`);
    if (!isDType(dtype)) return fail('UNKNOWN_DTYPE', file, `tensor ${q}: unknown dtype ${JSON.stringify(dtype.slice(0, 32))} (known: ${DTYPES.join(', ')})`);
    for (const d of shape as unknown[]) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        return fail('INVALID_SHAPE', file, `tensor ${q}: shape must hold non-negative integers, got ${JSON.stringify(shape).slice(0, 80)}`);
      }
    }
    const [start, end] = offsets as unknown[];
    if (
      offsets.length !== 2 ||
      typeof start !== 'number' ||
      typeof end !== 'number' ||
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(end) ||
      start < 0 ||
      end < start
    ) {
      return fail('INVALID_OFFSETS', file, `tensor ${q}: data_offsets must be two non-negative integers [start, end] with start <= end, got ${JSON.stringify(offsets).slice(0, 80)}`);
    }
    const dims = shape as number[];
    const bytes = byteSizeOf(dtype, dims);
    if (bytes === undefined) return fail('TENSOR_INVALID_INFO', file, `tensor ${q}: size of shape ${JSON.stringify(dims)} × ${DTYPE_SIZE[dtype]} bytes overflows`);
    if (bytes !== end - start) {
      return fail('TENSOR_INVALID_INFO', file, `tensor ${q}: ${dtype} ${JSON.stringify(dims)} needs ${bytes} bytes but data_offsets [${start}, ${end}] span ${end - start}`);
    }
    tensors.push({ name, dtype, shape: dims.slice(), dataOffsets: [start, end] });
  }

  // The tensors must tile the data area exactly: sorted by offsets, each starts where the previous
  // ended, the first at 0, the last at the end of the file.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  for (const t of tensors) {
    const [start, end] = t.dataOffsets;
    if (start !== at) {
      return fail(
        'INVALID_OFFSETS',
        file,
        start < at ? `tensor ${JSON.stringify(t.name)}: data_offsets [${start}, ${end}] overlap the previous tensor (ending at ${at})` : `tensor ${JSON.stringify(t.name)}: data_offsets [${start}, ${end}] leave a hole after byte ${at}`,
      );
    }
    if (end > dataSize) {
      return fail('TRUNCATED', file, `tensor ${JSON.stringify(t.name)}: data_offsets [${start}, ${end}] run past the end of the data area (${dataSize} bytes): file truncated?`);
    }
    at = end;
  }
  if (at !== dataSize) return fail('METADATA_INCOMPLETE_BUFFER', file, `the tensors cover ${at} bytes of a ${dataSize}-byte data area (trailing bytes)`);
  return { metadata: Object.fromEntries(metadata), tensors };
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads exactly `into.byteLength` bytes at `position` (one call unless the span exceeds 1 GiB). */
async function readExactly(fh: fs.promises.FileHandle, file: string, into: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(into.byteLength - done, MAX_IO_CHUNK);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(into, done, len, position + done));
    } catch (e) {
      throw ioError(file, `reading ${what}`, e);
    }
    if (bytesRead === 0) fail('TRUNCATED', file, `${what}: expected ${into.byteLength} bytes at offset ${position}, the file ended after ${done} (file changed or truncated?)`);
    done += bytesRead;
  }
}

function allocate(dtype: DType, n: number): { data: TensorData | Uint16Array; bytes: Uint8Array } {
  let data: TensorData | Uint16Array;
  switch (dtype) {
    case 'F64':
      data = new Float64Array(n);
      break;
    case 'F32':
      data = new Float32Array(n);
      break;
    case 'F16':
    case 'BF16':
      data = new Uint16Array(n);
      break;
    case 'I64':
      data = new BigInt64Array(n);
      break;
    case 'I32':
      data = new Int32Array(n);
      break;
    case 'I16':
      data = new Int16Array(n);
      break;
    case 'I8':
      data = new Int8Array(n);
      break;
    case 'U8':
    case 'BOOL':
      data = new Uint8Array(n);
      break;
  }
  return { data, bytes: new Uint8Array(data.buffer, 0, data.byteLength) };
}

/** One safetensors file, opened lazily: only the header is in memory. */
export class SafetensorsFile implements TensorSource {
  private fh: fs.promises.FileHandle | undefined;
  private readonly byName: Map<string, TensorInfo>;

  private constructor(
    readonly path: string,
    fh: fs.promises.FileHandle,
    /** Size of the file when it was opened. */
    readonly fileSize: number,
    /** Where the data area starts: 8 + header length. */
    readonly dataStart: number,
    readonly metadata: Record<string, string>,
    private readonly tensors: TensorInfo[],
  ) {
    this.fh = fh;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  static async open(file: string): Promise<SafetensorsFile> {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch (e) {
      throw ioError(file, 'cannot open', e);
    }
    try {
      let size: number;
      try {
        const st = await fh.stat();
        if (!st.isFile()) fail('IO', file, 'not a regular file');
        size = st.size;
      } catch (e) {
        throw ioError(file, 'cannot stat', e);
      }
      if (size < 8) fail('HEADER_TOO_SMALL', file, `file is ${size} bytes, shorter than the 8-byte header length`);
      const prefix = new Uint8Array(8);
      await readExactly(fh, file, prefix, 0, 'header length');
      const n = Buffer.from(prefix.buffer).readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_SIZE)) fail('HEADER_TOO_LARGE', file, `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit`);
      if (8n + n > BigInt(size)) fail('INVALID_HEADER_LENGTH', file, `header length ${n} runs past the end of the ${size}-byte file`);
      const headerLen = Number(n);
      const header = new Uint8Array(headerLen);
      await readExactly(fh, file, header, 8, 'header');
      const parsed = parseHeader(file, header, size - 8 - headerLen);
      return new SafetensorsFile(file, fh, size, 8 + headerLen, parsed.metadata, parsed.tensors);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e; // already a SafetensorsError (fs failures are wrapped where they happen); anything else is a bug
    }
  }

  names(): string[] {
    return this.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (t === undefined) return fail('TENSOR_NOT_FOUND', this.path, `no tensor named ${JSON.stringify(name)}`);
    return { name: t.name, dtype: t.dtype, shape: t.shape.slice(), dataOffsets: [t.dataOffsets[0], t.dataOffsets[1]] };
  }

  private handle(): fs.promises.FileHandle {
    if (this.fh === undefined) return fail('IO', this.path, 'file is closed');
    return this.fh;
  }

  /** The tensor's bytes as stored (little-endian), in a fresh buffer. */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const size = t.dataOffsets[1] - t.dataOffsets[0];
    let out: Uint8Array;
    try {
      out = new Uint8Array(size);
    } catch (e) {
      return fail('IO', this.path, `tensor ${JSON.stringify(name)}: cannot allocate ${size} bytes (${errnoDetail(e)})`);
    }
    await readExactly(this.handle(), this.path, out, this.dataStart + t.dataOffsets[0], `tensor ${JSON.stringify(name)}`);
    return out;
  }

  /** The tensor decoded into a fresh, aligned typed array (F16/BF16 → Float32Array, BOOL → 0/1 Uint8Array). */
  async read(name: string): Promise<TensorData> {
    const t = this.info(name);
    const size = t.dataOffsets[1] - t.dataOffsets[0];
    let data: TensorData | Uint16Array;
    let bytes: Uint8Array;
    try {
      ({ data, bytes } = allocate(t.dtype, size / DTYPE_SIZE[t.dtype]));
    } catch (e) {
      return fail('IO', this.path, `tensor ${JSON.stringify(name)}: cannot allocate ${size} bytes (${errnoDetail(e)})`);
    }
    await readExactly(this.handle(), this.path, bytes, this.dataStart + t.dataOffsets[0], `tensor ${JSON.stringify(name)}`);
    if (t.dtype === 'F16') return f16ToF32(data as Uint16Array);
    if (t.dtype === 'BF16') return bf16ToF32(data as Uint16Array);
    if (t.dtype === 'BOOL') {
      const b = data as Uint8Array;
      for (let i = 0; i < b.length; i++) if (b[i]! > 1) b[i] = 1;
    }
    return data as TensorData;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh !== undefined) await fh.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints: `*.safetensors.index.json` = {"metadata": {...}, "weight_map": {tensor: shard}}

/** A checkpoint split over several files, as described by its index.json. All shards open at `open`. */
export class ShardedSafetensors implements TensorSource {
  private readonly shardOf: Map<string, SafetensorsFile>;
  private readonly order: string[];

  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    /** Shard file name → the opened shard. */
    readonly shards: ReadonlyMap<string, SafetensorsFile>,
    shardOf: Map<string, SafetensorsFile>,
  ) {
    this.shardOf = shardOf;
    // on-disk order: shard by shard (by file name), then by offset
    const shardNames = [...shards.keys()].sort(compareCodePoints);
    this.order = [];
    for (const s of shardNames) for (const n of shards.get(s)!.names()) if (shardOf.get(n) === shards.get(s)) this.order.push(n);
  }

  static async open(indexPath: string): Promise<ShardedSafetensors> {
    let raw: Buffer;
    try {
      const st = await fs.promises.stat(indexPath);
      if (!st.isFile()) fail('IO', indexPath, 'not a regular file');
      if (st.size > MAX_INDEX_SIZE) fail('INVALID_INDEX', indexPath, `index is ${st.size} bytes, over the ${MAX_INDEX_SIZE}-byte limit`);
      raw = await fs.promises.readFile(indexPath);
    } catch (e) {
      throw ioError(indexPath, 'cannot read index', e);
    }
    let text: string;
    let json: unknown;
    try {
      text = utf8.decode(raw);
      if (nestsDeeperThan(text, MAX_NESTING)) throw new Error(`nests deeper than ${MAX_NESTING} levels`);
      json = JSON.parse(text);
    } catch (e) {
      return fail('INVALID_INDEX', indexPath, `not valid UTF-8 JSON (${errnoDetail(e)})`);
    }
    if (!isPlainObject(json)) return fail('INVALID_INDEX', indexPath, 'index must be a JSON object with a "weight_map"');
    const dup = findDuplicateKey(text);
    if (dup !== undefined) return fail('INVALID_INDEX', indexPath, `key ${JSON.stringify(dup.key)} appears more than once${dup.path === '' ? '' : ` in ${JSON.stringify(dup.path)}`}`);
    const weightMap = json['weight_map'];
    if (!isPlainObject(weightMap)) return fail('INVALID_INDEX', indexPath, '"weight_map" must be an object of tensor name → shard file name');
    const meta = json['metadata'];
    if (meta !== undefined && meta !== null && !isPlainObject(meta)) return fail('INVALID_INDEX', indexPath, '"metadata" must be an object');
    // index metadata holds numbers (diffusers writes {"total_size": N}): kept as their JSON text
    const metadata = Object.fromEntries(Object.entries(meta ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));

    const byShard = new Map<string, string[]>();
    for (const [tensor, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string') return fail('INVALID_INDEX', indexPath, `weight_map[${JSON.stringify(tensor)}] must be a shard file name (a string)`);
      if (shard === '' || shard === '.' || shard === '..' || /[/\\\0]/.test(shard) || path.basename(shard) !== shard) {
        return fail('INVALID_INDEX', indexPath, `weight_map[${JSON.stringify(tensor)}] = ${JSON.stringify(shard)}: a shard must be a plain file name next to the index`);
      }
      let list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, (list = []));
      list.push(tensor);
    }

    const dir = path.dirname(indexPath);
    const shards = new Map<string, SafetensorsFile>();
    const shardOf = new Map<string, SafetensorsFile>();
    try {
      for (const [shard, tensors] of byShard) {
        const shardPath = path.join(dir, shard);
        try {
          await fs.promises.stat(shardPath);
        } catch (e) {
          if (isErrno(e, 'ENOENT')) fail('MISSING_SHARD', indexPath, `shard ${JSON.stringify(shard)} listed in the index does not exist (${shardPath})`);
          throw ioError(shardPath, 'cannot open shard', e);
        }
        const f = await SafetensorsFile.open(shardPath);
        shards.set(shard, f);
        for (const t of tensors) {
          if (!f.has(t)) fail('TENSOR_NOT_FOUND', indexPath, `tensor ${JSON.stringify(t)} is mapped to shard ${JSON.stringify(shard)} (${shardPath}), which does not contain it`);
          shardOf.set(t, f);
        }
      }
    } catch (e) {
      await Promise.all([...shards.values()].map((s) => s.close()));
      throw e;
    }
    return new ShardedSafetensors(indexPath, metadata, shards, shardOf);
  }

  names(): string[] {
    return this.order.slice();
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  private shard(name: string): SafetensorsFile {
    const s = this.shardOf.get(name);
    if (s === undefined) return fail('TENSOR_NOT_FOUND', this.path, `no tensor named ${JSON.stringify(name)} in the weight_map`);
    return s;
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  read(name: string): Promise<TensorData> {
    try {
      return this.shard(name).read(name);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  readRaw(name: string): Promise<Uint8Array> {
    try {
      return this.shard(name).readRaw(name);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map((s) => s.close()));
  }
}

/**
 * Opens a `.safetensors` file, a `*.safetensors.index.json`, or a folder holding exactly one
 * `*.safetensors.index.json` or (without an index) exactly one `.safetensors` file.
 */
export async function openSafetensors(target: string): Promise<TensorSource> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(target);
  } catch (e) {
    throw ioError(target, 'cannot open', e);
  }
  if (st.isDirectory()) {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(target, { withFileTypes: true });
    } catch (e) {
      throw ioError(target, 'cannot list folder', e);
    }
    const files = entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name).sort(compareCodePoints);
    const indexes = files.filter((f) => f.endsWith('.safetensors.index.json'));
    const singles = files.filter((f) => f.endsWith('.safetensors'));
    if (indexes.length === 1) return ShardedSafetensors.open(path.join(target, indexes[0]!));
    if (indexes.length === 0 && singles.length === 1) return SafetensorsFile.open(path.join(target, singles[0]!));
    const found = [...indexes, ...singles];
    return fail(
      'NO_CHECKPOINT',
      target,
      `expected exactly one *.safetensors.index.json or exactly one .safetensors file in this folder, found ${found.length === 0 ? 'none' : `${found.length}: ${found.map((f) => JSON.stringify(f)).join(', ')}`}`,
    );
  }
  if (target.endsWith('.json')) return ShardedSafetensors.open(target);
  return SafetensorsFile.open(target);
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  /** Values (typed array matching the dtype; Float32Array for F16/BF16) or the raw little-endian bytes. */
  data: TensorData | Uint8Array;
}

function checkInt(file: string, dtype: DType, v: number, i: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) fail('INVALID_TENSOR_DATA', file, `${dtype} value #${i} = ${v} is not an integer in [${lo}, ${hi}]`);
  return v;
}

function asNumber(v: number | bigint): number {
  return typeof v === 'bigint' ? (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v > 0n ? Infinity : -Infinity) : v;
}

/**
 * Values → the little-endian bytes of `dtype`. Floats go through float32 first (F16/BF16 then round
 * to nearest even, as PyTorch does); integers must be integers in range (I64 accepts bigints or safe
 * integers); BOOL takes 0/1. Out-of-range input is an INVALID_TENSOR_DATA error, never wrapped.
 */
export function encodeTensorData(dtype: DType, values: ArrayLike<number> | ArrayLike<bigint>, what = '(values)'): Uint8Array {
  const n = values.length;
  const get = (i: number): number | bigint => values[i]!;
  const bytesOf = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const floats = (): Float32Array => {
    if (values instanceof Float32Array) return values;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = asNumber(get(i));
    return out;
  };
  switch (dtype) {
    case 'F64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = asNumber(get(i));
      return bytesOf(out);
    }
    case 'F32':
      return bytesOf(values instanceof Float32Array ? values.slice() : floats());
    case 'F16':
      return bytesOf(f32ToF16(floats()));
    case 'BF16':
      return bytesOf(f32ToBf16(floats()));
    case 'I64': {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = get(i);
        if (typeof v === 'bigint') {
          if (v < -(2n ** 63n) || v >= 2n ** 63n) fail('INVALID_TENSOR_DATA', what, `I64 value #${i} = ${v} is out of range`);
          out[i] = v;
        } else {
          if (!Number.isSafeInteger(v)) fail('INVALID_TENSOR_DATA', what, `I64 value #${i} = ${v} is not a safe integer (pass bigints for larger values)`);
          out[i] = BigInt(v);
        }
      }
      return bytesOf(out);
    }
    case 'I32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = checkInt(what, dtype, asNumber(get(i)), i, -(2 ** 31), 2 ** 31 - 1);
      return bytesOf(out);
    }
    case 'I16': {
      const out = new Int16Array(n);
      for (let i = 0; i < n; i++) out[i] = checkInt(what, dtype, asNumber(get(i)), i, -32768, 32767);
      return bytesOf(out);
    }
    case 'I8': {
      const out = new Int8Array(n);
      for (let i = 0; i < n; i++) out[i] = checkInt(what, dtype, asNumber(get(i)), i, -128, 127);
      return bytesOf(out);
    }
    case 'U8':
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = checkInt(what, dtype, asNumber(get(i)), i, 0, dtype === 'BOOL' ? 1 : 255);
      return out;
    }
  }
}

const TYPED_FOR: Record<DType, string> = {
  F64: 'Float64Array',
  F32: 'Float32Array',
  F16: 'Float32Array',
  BF16: 'Float32Array',
  I64: 'BigInt64Array',
  I32: 'Int32Array',
  I16: 'Int16Array',
  I8: 'Int8Array',
  U8: 'Uint8Array',
  BOOL: 'Uint8Array',
};

function typedMatches(dtype: DType, data: TensorData): boolean {
  switch (dtype) {
    case 'F64':
      return data instanceof Float64Array;
    case 'F32':
    case 'F16':
    case 'BF16':
      return data instanceof Float32Array;
    case 'I64':
      return data instanceof BigInt64Array;
    case 'I32':
      return data instanceof Int32Array;
    case 'I16':
      return data instanceof Int16Array;
    case 'I8':
      return data instanceof Int8Array;
    case 'U8':
    case 'BOOL':
      return data instanceof Uint8Array;
  }
}

interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: TensorData | Uint8Array;
  bytes: number;
}

/** The header bytes (length prefix excluded, padded with spaces to a multiple of 8) and the data layout. */
function planFile(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): { header: Buffer; order: PlannedTensor[] } {
  if (!isPlainObject(tensors)) fail('INVALID_TENSOR_DATA', file, 'tensors must be an object of name → {dtype, shape, data}');
  const planned: PlannedTensor[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const q = JSON.stringify(name);
    if (name === METADATA_KEY) fail('INVALID_ENTRY', file, `tensor name ${q} is reserved`);
    if (!isPlainObject(t)) fail('INVALID_TENSOR_DATA', file, `tensor ${q}: expected {dtype, shape, data}`);
    const { dtype, shape, data } = t;
    if (typeof dtype !== 'string' || !isDType(dtype)) fail('UNKNOWN_DTYPE', file, `tensor ${q}: unknown dtype ${JSON.stringify(dtype)} (known: ${DTYPES.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      fail('INVALID_SHAPE', file, `tensor ${q}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    const bytes = byteSizeOf(dtype, shape);
    if (bytes === undefined) return fail('INVALID_SHAPE', file, `tensor ${q}: shape ${JSON.stringify(shape)} is too large`);
    const numel = bytes / DTYPE_SIZE[dtype];
    if (!ArrayBuffer.isView(data)) return fail('INVALID_TENSOR_DATA', file, `tensor ${q}: data must be a typed array`);
    const isRaw = data instanceof Uint8Array;
    if (isRaw) {
      if (data.byteLength !== bytes) fail('INVALID_TENSOR_DATA', file, `tensor ${q}: ${dtype} ${JSON.stringify(shape)} needs ${bytes} bytes, got ${data.byteLength}`);
      if (dtype === 'BOOL') {
        for (let i = 0; i < data.length; i++) if (data[i]! > 1) fail('INVALID_TENSOR_DATA', file, `tensor ${q}: BOOL byte #${i} is ${data[i]}, not 0 or 1`);
      }
    } else {
      if (!typedMatches(dtype, data as TensorData)) {
        fail('INVALID_TENSOR_DATA', file, `tensor ${q}: ${dtype} data must be a ${TYPED_FOR[dtype]} (or raw bytes in a Uint8Array), got ${data.constructor.name}`);
      }
      if ((data as TensorData).length !== numel) fail('INVALID_TENSOR_DATA', file, `tensor ${q}: shape ${JSON.stringify(shape)} has ${numel} elements, data has ${(data as TensorData).length}`);
    }
    planned.push({ name, dtype, shape: shape.slice(), data: data as TensorData, bytes });
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail('INVALID_METADATA', file, 'metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail('INVALID_METADATA', file, `metadata ${JSON.stringify(k)} must be a string, got ${typeof v}`);
    }
  }
  // Largest alignment first, then by name: every tensor starts aligned to its element size.
  planned.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || compareCodePoints(a.name, b.name));
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  let at = 0;
  for (const t of planned) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${at},${at + t.bytes}]}`);
    at += t.bytes;
    if (!Number.isSafeInteger(at)) fail('INVALID_TENSOR_DATA', file, 'total size is too large');
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  if (json.length > MAX_HEADER_SIZE) fail('HEADER_TOO_LARGE', file, `header would be ${json.length} bytes, over the ${MAX_HEADER_SIZE}-byte limit`);
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, 0x20);
  json.copy(padded);
  return { header: padded, order: planned };
}

/** The bytes to write for one tensor (a view of the input where possible, converted for F16/BF16). */
function tensorBytes(t: PlannedTensor): Uint8Array {
  const d = t.data;
  if (d instanceof Uint8Array) return d;
  if (t.dtype === 'F16' || t.dtype === 'BF16') {
    const h = t.dtype === 'F16' ? f32ToF16(d as Float32Array) : f32ToBf16(d as Float32Array);
    return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  }
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

async function writeAll(fh: fs.promises.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const len = Math.min(bytes.byteLength - done, MAX_IO_CHUNK);
    const { bytesWritten } = await fh.write(bytes, done, len, position + done);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

/**
 * Writes a safetensors file atomically: to `path.tmp-<pid>-<random>`, fsynced, then renamed over
 * `path`. Tensors are written one by one (F16/BF16 converted per tensor), so a large file is never
 * held twice. Header: `__metadata__` first if given, tensors by descending element size then name,
 * padded with spaces to a multiple of 8. On any error nothing is left behind and `path` is untouched.
 */
export async function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Promise<void> {
  const { header, order } = planFile(file, tensors, metadata);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'wx');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    await writeAll(fh, prefix, 0);
    await writeAll(fh, header, 8);
    let at = 8 + header.length;
    for (const t of order) {
      const bytes = tensorBytes(t);
      await writeAll(fh, bytes, at);
      at += bytes.byteLength;
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.promises.rename(tmp, file);
  } catch (e) {
    if (fh !== undefined) await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(file, 'writing', e);
  }
  // Make the rename itself durable where the platform allows fsync on a directory.
  try {
    const dh = await fs.promises.open(path.dirname(file), 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* not supported here (e.g. Windows): the data itself is already synced */
  }
}
