/**
 * safetensors, part 2 of 3: reading. Opening a file reads the 8-byte header length and then only
 * the header, through a file descriptor; the header is validated completely (safetensorsHeader.ts)
 * before any tensor is touched. A tensor's bytes are read only when asked for, by name, with one
 * positional read (1 GiB at a time) into a freshly allocated typed array; F16/BF16 are widened to
 * Float32Array and BOOL is normalised to 0/1. A sharded checkpoint opens every shard its
 * index.json names, and answers as one source.
 *
 * Host byte order is assumed little-endian (true of every platform Node ships for), so the stored
 * bytes are the typed array's bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bf16ToF32, f16ToF32 } from './float16.js';
import {
  DTYPE_SIZE,
  MAX_INDEX_SIZE,
  MAX_IO_CHUNK,
  compareCodePoints,
  errnoDetail,
  fail,
  headerLength,
  ioError,
  parseHeader,
  parseIndex,
  type DType,
  type TensorData,
  type TensorInfo,
} from './safetensorsHeader.js';

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

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

/** Reads exactly `into.byteLength` bytes at `position` (one call unless the span exceeds 1 GiB). */
async function readExactly(
  fh: fs.promises.FileHandle,
  file: string,
  into: Uint8Array,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(into.byteLength - done, MAX_IO_CHUNK);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(into, done, len, position + done));
    } catch (e) {
      throw ioError(file, `reading ${what}`, e);
    }
    if (bytesRead === 0)
      fail(
        'TRUNCATED',
        file,
        `${what}: expected ${into.byteLength} bytes at offset ${position}, the file ended after ${done} (file changed or truncated?)`,
      );
    done += bytesRead;
  }
}

/** A fresh array for `n` elements of `dtype` (F16/BF16 as their raw 16 bits) and a byte view for the read to fill. */
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
      const headerLen = headerLength(file, prefix, size);
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
    await readExactly(
      this.handle(),
      this.path,
      out,
      this.dataStart + t.dataOffsets[0],
      `tensor ${JSON.stringify(name)}`,
    );
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
    await readExactly(
      this.handle(),
      this.path,
      bytes,
      this.dataStart + t.dataOffsets[0],
      `tensor ${JSON.stringify(name)}`,
    );
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
    for (const s of shardNames)
      for (const n of shards.get(s)!.names()) if (shardOf.get(n) === shards.get(s)) this.order.push(n);
  }

  static async open(indexPath: string): Promise<ShardedSafetensors> {
    let raw: Buffer;
    try {
      const st = await fs.promises.stat(indexPath);
      if (!st.isFile()) fail('IO', indexPath, 'not a regular file');
      if (st.size > MAX_INDEX_SIZE)
        fail('INVALID_INDEX', indexPath, `index is ${st.size} bytes, over the ${MAX_INDEX_SIZE}-byte limit`);
      raw = await fs.promises.readFile(indexPath);
    } catch (e) {
      throw ioError(indexPath, 'cannot read index', e);
    }
    const { metadata, byShard } = parseIndex(indexPath, raw);

    const dir = path.dirname(indexPath);
    const shards = new Map<string, SafetensorsFile>();
    const shardOf = new Map<string, SafetensorsFile>();
    try {
      for (const [shard, tensors] of byShard) {
        const shardPath = path.join(dir, shard);
        try {
          await fs.promises.stat(shardPath);
        } catch (e) {
          if (isErrno(e, 'ENOENT'))
            fail(
              'MISSING_SHARD',
              indexPath,
              `shard ${JSON.stringify(shard)} listed in the index does not exist (${shardPath})`,
            );
          throw ioError(shardPath, 'cannot open shard', e);
        }
        const f = await SafetensorsFile.open(shardPath);
        shards.set(shard, f);
        for (const t of tensors) {
          if (!f.has(t))
            fail(
              'TENSOR_NOT_FOUND',
              indexPath,
              `tensor ${JSON.stringify(t)} is mapped to shard ${JSON.stringify(shard)} (${shardPath}), which does not contain it`,
            );
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
    if (s === undefined)
      return fail('TENSOR_NOT_FOUND', this.path, `no tensor named ${JSON.stringify(name)} in the weight_map`);
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
    const files = entries
      .filter((e) => e.isFile() || e.isSymbolicLink())
      .map((e) => e.name)
      .sort(compareCodePoints);
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
