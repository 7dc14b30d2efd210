/**
 * safetensors, part 3 of 3: writing. `writeSafetensors` validates every tensor against its dtype and
 * shape, lays the header out the way the reference writer does (`__metadata__` first, tensors by
 * descending element size then name, so each starts aligned to its element size; padded with spaces
 * to a multiple of 8), and writes atomically: a temp file next to the target, fsynced, renamed over
 * it. `encodeTensorData` turns plain values into a dtype's little-endian bytes. The streaming,
 * sharded writer lives in safetensorsShards.ts.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { f32ToBf16, f32ToF16 } from './float16.js';
import {
  DTYPE_SIZE,
  DTYPES,
  MAX_HEADER_SIZE,
  MAX_IO_CHUNK,
  METADATA_KEY,
  byteSizeOf,
  compareCodePoints,
  fail,
  ioError,
  isDType,
  isPlainObject,
  type DType,
  type TensorData,
} from './safetensorsHeader.js';

export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  /** Values (typed array matching the dtype; Float32Array for F16/BF16) or the raw little-endian bytes. */
  data: TensorData | Uint8Array;
}

function checkInt(file: string, dtype: DType, v: number, i: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi)
    fail('INVALID_TENSOR_DATA', file, `${dtype} value #${i} = ${v} is not an integer in [${lo}, ${hi}]`);
  return v;
}

function asNumber(v: number | bigint): number {
  return typeof v === 'bigint'
    ? v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v > 0n
        ? Infinity
        : -Infinity
    : v;
}

/**
 * Values → the little-endian bytes of `dtype`. Floats go through float32 first (F16/BF16 then round
 * to nearest even, as PyTorch does); integers must be integers in range (I64 accepts bigints or safe
 * integers); BOOL takes 0/1. Out-of-range input is an INVALID_TENSOR_DATA error, never wrapped.
 */
export function encodeTensorData(
  dtype: DType,
  values: ArrayLike<number> | ArrayLike<bigint>,
  what = '(values)',
): Uint8Array {
  const n = values.length;
  const get = (i: number): number | bigint => values[i]!;
  const bytesOf = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
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
          if (v < -(2n ** 63n) || v >= 2n ** 63n)
            fail('INVALID_TENSOR_DATA', what, `I64 value #${i} = ${v} is out of range`);
          out[i] = v;
        } else {
          if (!Number.isSafeInteger(v))
            fail(
              'INVALID_TENSOR_DATA',
              what,
              `I64 value #${i} = ${v} is not a safe integer (pass bigints for larger values)`,
            );
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
function planFile(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): { header: Buffer; order: PlannedTensor[] } {
  if (!isPlainObject(tensors))
    fail('INVALID_TENSOR_DATA', file, 'tensors must be an object of name → {dtype, shape, data}');
  const planned: PlannedTensor[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const q = JSON.stringify(name);
    if (name === METADATA_KEY) fail('INVALID_ENTRY', file, `tensor name ${q} is reserved`);
    if (!isPlainObject(t)) fail('INVALID_TENSOR_DATA', file, `tensor ${q}: expected {dtype, shape, data}`);
    const { dtype, shape, data } = t;
    if (typeof dtype !== 'string' || !isDType(dtype))
      fail('UNKNOWN_DTYPE', file, `tensor ${q}: unknown dtype ${JSON.stringify(dtype)} (known: ${DTYPES.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      fail(
        'INVALID_SHAPE',
        file,
        `tensor ${q}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      );
    }
    const bytes = byteSizeOf(dtype, shape);
    if (bytes === undefined)
      return fail('INVALID_SHAPE', file, `tensor ${q}: shape ${JSON.stringify(shape)} is too large`);
    const numel = bytes / DTYPE_SIZE[dtype];
    if (!ArrayBuffer.isView(data)) return fail('INVALID_TENSOR_DATA', file, `tensor ${q}: data must be a typed array`);
    const isRaw = data instanceof Uint8Array;
    if (isRaw) {
      if (data.byteLength !== bytes)
        fail(
          'INVALID_TENSOR_DATA',
          file,
          `tensor ${q}: ${dtype} ${JSON.stringify(shape)} needs ${bytes} bytes, got ${data.byteLength}`,
        );
      if (dtype === 'BOOL') {
        for (let i = 0; i < data.length; i++)
          if (data[i]! > 1) fail('INVALID_TENSOR_DATA', file, `tensor ${q}: BOOL byte #${i} is ${data[i]}, not 0 or 1`);
      }
    } else {
      if (!typedMatches(dtype, data as TensorData)) {
        fail(
          'INVALID_TENSOR_DATA',
          file,
          `tensor ${q}: ${dtype} data must be a ${TYPED_FOR[dtype]} (or raw bytes in a Uint8Array), got ${data.constructor.name}`,
        );
      }
      if ((data as TensorData).length !== numel)
        fail(
          'INVALID_TENSOR_DATA',
          file,
          `tensor ${q}: shape ${JSON.stringify(shape)} has ${numel} elements, data has ${(data as TensorData).length}`,
        );
    }
    planned.push({ name, dtype, shape: shape.slice(), data: data as TensorData, bytes });
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail('INVALID_METADATA', file, 'metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        fail('INVALID_METADATA', file, `metadata ${JSON.stringify(k)} must be a string, got ${typeof v}`);
    }
  }
  // Largest alignment first, then by name: every tensor starts aligned to its element size.
  planned.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || compareCodePoints(a.name, b.name));
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  let at = 0;
  for (const t of planned) {
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${at},${at + t.bytes}]}`,
    );
    at += t.bytes;
    if (!Number.isSafeInteger(at)) fail('INVALID_TENSOR_DATA', file, 'total size is too large');
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  if (json.length > MAX_HEADER_SIZE)
    fail('HEADER_TOO_LARGE', file, `header would be ${json.length} bytes, over the ${MAX_HEADER_SIZE}-byte limit`);
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
export async function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
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
