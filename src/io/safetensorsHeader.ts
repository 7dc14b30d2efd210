/**
 * safetensors, part 1 of 3: the header — the dtype table, the limits, and the validation of the two
 * JSON documents a checkpoint brings (a file's header and a sharded checkpoint's index.json).
 *
 * Both are untrusted input. Every number in them is checked against the bytes actually present
 * before anything is allocated or read from it: the header length against a cap and the file size
 * (`headerLength`), every tensor's dtype × shape against its `data_offsets`, and the offsets against
 * the data area, which they must tile exactly (`parseHeader`). Nesting depth is bounded before
 * `JSON.parse` runs, and duplicate keys (which `JSON.parse` would silently collapse) are refused.
 *
 * File layout: u64 little-endian N, N bytes of JSON header `{"__metadata__": {str: str}?, name:
 * {"dtype", "shape", "data_offsets": [start, end]}}` (offsets relative to the data area at 8 + N),
 * then the data area.
 */
import path from 'node:path';
import { SafetensorsError, type SafetensorsErrorCode } from '../errors.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element. */
export const DTYPE_SIZE: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

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

// ---------------------------------------------------------------------------------------------
// Limits

/** Largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_SIZE = 100_000_000;
/** Largest index.json accepted. */
export const MAX_INDEX_SIZE = 100_000_000;
/** Largest single read or write call (Linux transfers at most 0x7ffff000 bytes per call). */
export const MAX_IO_CHUNK = 1 << 30;
/** Deepest bracket nesting accepted in a header or index (see `nestsDeeperThan`). */
const MAX_NESTING = 128;
/** The header key that holds string metadata rather than a tensor. */
export const METADATA_KEY = '__metadata__';

// ---------------------------------------------------------------------------------------------
// Errors (shared by the three parts): every problem with the input is a SafetensorsError naming the file

export const fail = (code: SafetensorsErrorCode, file: string, detail: string): never => {
  throw new SafetensorsError(code, file, detail);
};

// Errors are duck-typed, not `instanceof Error`: under test runners with separate realms (jest's
// vm contexts) Node's fs errors are not instances of the caller's Error.
export function errnoDetail(e: unknown): string {
  if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') {
    const { code, message } = e as { code?: unknown; message: string };
    return typeof code === 'string' && !message.startsWith(code) ? `${code}: ${message}` : message;
  }
  return String(e);
}

export function ioError(file: string, what: string, e: unknown): SafetensorsError {
  if (e instanceof SafetensorsError) return e;
  return new SafetensorsError('IO', file, `${what}: ${errnoDetail(e)}`);
}

// ---------------------------------------------------------------------------------------------
// Small checks shared by the parser and the writer

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Compares strings by Unicode code point (= UTF-8 byte order, the order the reference writer uses). */
export function compareCodePoints(a: string, b: string): number {
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
export function byteSizeOf(dtype: DType, shape: readonly number[]): number | undefined {
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
      const p =
        parent === undefined
          ? ''
          : parent.keys !== undefined
            ? parent.path === ''
              ? parent.lastKey
              : `${parent.path}.${parent.lastKey}`
            : `${parent.path}[]`;
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

// ---------------------------------------------------------------------------------------------
// Header parsing and validation

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The header length N from the 8-byte prefix of a `fileSize`-byte file. N is read from the file, so
 * it is bounded by the cap and by the bytes actually present before the caller allocates N bytes.
 */
export function headerLength(file: string, prefix: Uint8Array, fileSize: number): number {
  const n = Buffer.from(prefix.buffer, prefix.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_SIZE))
    fail('HEADER_TOO_LARGE', file, `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit`);
  if (8n + n > BigInt(fileSize))
    fail('INVALID_HEADER_LENGTH', file, `header length ${n} runs past the end of the ${fileSize}-byte file`);
  return Number(n);
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In data-offset order. */
  tensors: TensorInfo[];
}

/** Validates a header (the N bytes after the length prefix) against a data area of `dataSize` bytes. */
export function parseHeader(file: string, bytes: Uint8Array, dataSize: number): ParsedHeader {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return fail('INVALID_HEADER_UTF8', file, 'header is not valid UTF-8');
  }
  if (nestsDeeperThan(text, MAX_NESTING))
    return fail('INVALID_HEADER_JSON', file, `header nests deeper than ${MAX_NESTING} levels`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail('INVALID_HEADER_JSON', file, `header is not valid JSON (${errnoDetail(e)})`);
  }
  if (!isPlainObject(json)) {
    return fail(
      'HEADER_NOT_OBJECT',
      file,
      `header must be a JSON object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`,
    );
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) {
    return fail(
      'DUPLICATE_NAME',
      file,
      dup.path === ''
        ? `header names ${JSON.stringify(dup.key)} more than once`
        : `header entry ${JSON.stringify(dup.path)} has key ${JSON.stringify(dup.key)} more than once`,
    );
  }

  const metadata: [string, string][] = [];
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    const q = JSON.stringify(name);
    if (name === METADATA_KEY) {
      if (!isPlainObject(entry)) return fail('INVALID_METADATA', file, `__metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string')
          return fail(
            'INVALID_METADATA',
            file,
            `__metadata__.${JSON.stringify(k)} must be a string, got ${v === null ? 'null' : typeof v}`,
          );
        metadata.push([k, v]);
      }
      continue;
    }
    if (!isPlainObject(entry)) return fail('INVALID_ENTRY', file, `tensor ${q}: entry must be an object`);
    for (const k of Object.keys(entry)) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets')
        return fail('INVALID_ENTRY', file, `tensor ${q}: unexpected field ${JSON.stringify(k)}`);
    }
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') return fail('INVALID_ENTRY', file, `tensor ${q}: "dtype" must be a string`);
    if (!Array.isArray(shape))
      return fail(
        hasOwn(entry, 'shape') ? 'INVALID_SHAPE' : 'INVALID_ENTRY',
        file,
        `tensor ${q}: "shape" must be an array`,
      );
    if (!Array.isArray(offsets))
      return fail(
        hasOwn(entry, 'data_offsets') ? 'INVALID_OFFSETS' : 'INVALID_ENTRY',
        file,
        `tensor ${q}: "data_offsets" must be an array`,
      );
    if (!isDType(dtype))
      return fail(
        'UNKNOWN_DTYPE',
        file,
        `tensor ${q}: unknown dtype ${JSON.stringify(dtype.slice(0, 32))} (known: ${DTYPES.join(', ')})`,
      );
    for (const d of shape as unknown[]) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        return fail(
          'INVALID_SHAPE',
          file,
          `tensor ${q}: shape must hold non-negative integers, got ${JSON.stringify(shape).slice(0, 80)}`,
        );
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
      return fail(
        'INVALID_OFFSETS',
        file,
        `tensor ${q}: data_offsets must be two non-negative integers [start, end] with start <= end, got ${JSON.stringify(offsets).slice(0, 80)}`,
      );
    }
    const dims = shape as number[];
    const bytes = byteSizeOf(dtype, dims);
    if (bytes === undefined)
      return fail(
        'TENSOR_INVALID_INFO',
        file,
        `tensor ${q}: size of shape ${JSON.stringify(dims)} × ${DTYPE_SIZE[dtype]} bytes overflows`,
      );
    if (bytes !== end - start) {
      return fail(
        'TENSOR_INVALID_INFO',
        file,
        `tensor ${q}: ${dtype} ${JSON.stringify(dims)} needs ${bytes} bytes but data_offsets [${start}, ${end}] span ${end - start}`,
      );
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
        start < at
          ? `tensor ${JSON.stringify(t.name)}: data_offsets [${start}, ${end}] overlap the previous tensor (ending at ${at})`
          : `tensor ${JSON.stringify(t.name)}: data_offsets [${start}, ${end}] leave a hole after byte ${at}`,
      );
    }
    if (end > dataSize) {
      return fail(
        'TRUNCATED',
        file,
        `tensor ${JSON.stringify(t.name)}: data_offsets [${start}, ${end}] run past the end of the data area (${dataSize} bytes): file truncated?`,
      );
    }
    at = end;
  }
  if (at !== dataSize)
    return fail(
      'METADATA_INCOMPLETE_BUFFER',
      file,
      `the tensors cover ${at} bytes of a ${dataSize}-byte data area (trailing bytes)`,
    );
  return { metadata: Object.fromEntries(metadata), tensors };
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints: `*.safetensors.index.json` = {"metadata": {...}, "weight_map": {tensor: shard}}

export interface ParsedIndex {
  /** The index's "metadata", values as strings (numbers kept as their JSON text). */
  metadata: Record<string, string>;
  /** Shard file name → the tensors the weight_map puts in it, in index order. */
  byShard: Map<string, string[]>;
}

/** Validates an index.json (its bytes, already bounded by MAX_INDEX_SIZE). Shard names must be plain file names. */
export function parseIndex(indexPath: string, raw: Uint8Array): ParsedIndex {
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
  if (dup !== undefined)
    return fail(
      'INVALID_INDEX',
      indexPath,
      `key ${JSON.stringify(dup.key)} appears more than once${dup.path === '' ? '' : ` in ${JSON.stringify(dup.path)}`}`,
    );
  const weightMap = json['weight_map'];
  if (!isPlainObject(weightMap))
    return fail('INVALID_INDEX', indexPath, '"weight_map" must be an object of tensor name → shard file name');
  const meta = json['metadata'];
  if (meta !== undefined && meta !== null && !isPlainObject(meta))
    return fail('INVALID_INDEX', indexPath, '"metadata" must be an object');
  // index metadata holds numbers (diffusers writes {"total_size": N}): kept as their JSON text
  const metadata = Object.fromEntries(
    Object.entries(meta ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );

  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string')
      return fail(
        'INVALID_INDEX',
        indexPath,
        `weight_map[${JSON.stringify(tensor)}] must be a shard file name (a string)`,
      );
    if (shard === '' || shard === '.' || shard === '..' || /[/\\\0]/.test(shard) || path.basename(shard) !== shard) {
      return fail(
        'INVALID_INDEX',
        indexPath,
        `weight_map[${JSON.stringify(tensor)}] = ${JSON.stringify(shard)}: a shard must be a plain file name next to the index`,
      );
    }
    let list = byShard.get(shard);
    if (list === undefined) byShard.set(shard, (list = []));
    list.push(tensor);
  }
  return { metadata, byShard };
}
