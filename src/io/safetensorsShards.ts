/**
 * Streaming writer for sharded safetensors checkpoints in the layout Hugging Face's `save_pretrained`
 * writes (diffusers and transformers alike, through huggingface_hub's `split_state_dict_into_shards`):
 *
 *   <stem>-00001-of-0000n.safetensors … <stem>-0000n-of-0000n.safetensors
 *   <stem>.safetensors.index.json        {"metadata": {"total_size": N}, "weight_map": {name: shard}}
 *
 * or one `<stem>.safetensors` (no index) when everything fits in one shard. Tensors are assigned to
 * shards in the order given (a shard is closed when the next tensor would push it past
 * `maxShardSize`; a tensor larger than that gets a shard of its own, as the hub does); inside a
 * file they lie in the order the safetensors writer uses (larger element size first, then name),
 * which is also the header's order — the same header `writeSafetensors` (src/io/safetensorsWrite.ts)
 * writes. Only names, dtypes and shapes are held up front: each tensor's bytes are produced by its
 * `fill` callback, chunk by chunk, into one of two reused buffers (generation overlaps the previous
 * chunk's write), so memory stays at two chunks whatever the checkpoint's size.
 *
 * Each shard is written to a temp file next to it, fsynced and renamed; the index is written last.
 * On any error the temp file and the shards already written by this call are removed.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Mask2DiTError, SafetensorsError } from '../errors.js';
import { OutputExistsError, registerCleanup, writeFileAtomic } from './atomic.js';
import { DTYPE_SIZE, DTYPES, MAX_HEADER_SIZE, type DType } from './safetensorsHeader.js';

export interface StreamedTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  /**
   * Write bytes `[start, start + chunk.byteLength)` of the tensor (little-endian) into `chunk`.
   * Called in order, from `start = 0` to the end, each chunk but the last a multiple of 8 bytes.
   */
  fill(chunk: Uint8Array, start: number): void;
}

export interface ShardOptions {
  /** File name stem: `diffusion_pytorch_model` (diffusers) or `model` (transformers). */
  stem: string;
  /** Most data bytes per shard (Hugging Face's `max_shard_size`: "5GB" = 5e9, see `parseSize`). */
  maxShardSize: number;
  /** `__metadata__` of every file (default `{"format": "pt"}`, what both libraries write). */
  metadata?: Record<string, string>;
  /** Replace existing files (default false: OutputExistsError). */
  force?: boolean;
  /** Bytes per `fill` call, a multiple of 8 (default 16 MiB). */
  chunkSize?: number;
  /** Called after each chunk with the data bytes written so far and the total. */
  onProgress?: (written: number, total: number) => void;
}

export interface ShardFile {
  /** File name inside the folder. */
  file: string;
  /** In on-disk order. */
  tensors: StreamedTensor[];
  /** Data bytes (header excluded). */
  bytes: number;
}

export interface ShardPlan {
  files: ShardFile[];
  /** Data bytes of all shards: the index's `metadata.total_size`. */
  totalSize: number;
  /** The index file name, or undefined for a single file. */
  index: string | undefined;
}

const DEFAULT_CHUNK = 16 << 20;
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** A size as `save_pretrained` takes it: `"5GB"` = 5·10⁹, `"5GiB"` = 5·2³⁰, or a plain byte count. */
export function parseSize(s: string | number): number {
  if (typeof s === 'number') return s;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(s);
  const unit = SIZE_UNITS[(m?.[2] ?? '').toUpperCase() || 'B'];
  if (m === null || unit === undefined)
    throw new Mask2DiTError(
      'CONFIG',
      `not a size: ${JSON.stringify(s)} (expected e.g. "5GB", "500MiB" or a byte count)`,
    );
  return Math.floor(Number(m[1]) * unit);
}

/** Bytes of one tensor. */
export function tensorBytes(t: Pick<StreamedTensor, 'dtype' | 'shape'>): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
}

/** Compares names by UTF-8 bytes (= code points), the order the reference writer sorts by. */
const byName = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** The on-disk order inside one file: larger element size first (alignment), then name. */
function fileOrder(tensors: StreamedTensor[]): StreamedTensor[] {
  return [...tensors].sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || byName(a.name, b.name));
}

function check(tensors: readonly StreamedTensor[], where: string): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    const q = JSON.stringify(t.name);
    if (t.name === '' || t.name === '__metadata__')
      throw new SafetensorsError('INVALID_ENTRY', where, `invalid tensor name ${q}`);
    if (seen.has(t.name)) throw new SafetensorsError('DUPLICATE_NAME', where, `tensor ${q} is given twice`);
    seen.add(t.name);
    if (!DTYPES.includes(t.dtype))
      throw new SafetensorsError('UNKNOWN_DTYPE', where, `tensor ${q}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Number.isSafeInteger(tensorBytes(t))) {
      throw new SafetensorsError('INVALID_SHAPE', where, `tensor ${q}: bad shape ${JSON.stringify(t.shape)}`);
    }
  }
}

/** Which tensors go to which file (huggingface_hub's greedy split, in the order given). */
export function planShards(
  tensors: readonly StreamedTensor[],
  options: Pick<ShardOptions, 'stem' | 'maxShardSize'>,
): ShardPlan {
  check(tensors, options.stem);
  const groups: StreamedTensor[][] = [];
  let current: StreamedTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = tensorBytes(t);
    if (bytes > options.maxShardSize) {
      groups.push([t]); // the hub emits an oversized tensor as its own shard right away
      continue;
    }
    if (size + bytes > options.maxShardSize && current.length > 0) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const n = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const files = groups.map((g, i) => ({
    file: n === 1 ? `${options.stem}.safetensors` : `${options.stem}-${pad(i + 1)}-of-${pad(n)}.safetensors`,
    tensors: fileOrder(g),
    bytes: g.reduce((a, t) => a + tensorBytes(t), 0),
  }));
  return {
    files,
    totalSize: files.reduce((a, f) => a + f.bytes, 0),
    index: n === 1 ? undefined : `${options.stem}.safetensors.index.json`,
  };
}

/**
 * The header of a file holding `tensors` in this order, as `writeSafetensors` writes it: the 8-byte
 * little-endian length, then compact JSON (`__metadata__` first), padded with spaces to 8 bytes.
 */
export function safetensorsHeader(
  tensors: readonly StreamedTensor[],
  metadata: Record<string, string>,
  where = '(header)',
): Buffer {
  const parts = [`"__metadata__":${JSON.stringify(metadata)}`];
  let at = 0;
  for (const t of tensors) {
    const end = at + tensorBytes(t);
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${at},${end}]}`,
    );
    at = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_SIZE)
    throw new SafetensorsError(
      'HEADER_TOO_LARGE',
      where,
      `header would be ${padded} bytes, over the ${MAX_HEADER_SIZE}-byte limit`,
    );
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/** The index.json text, as the libraries write it (`json.dumps(index, indent=2, sort_keys=True)`). */
export function shardIndexJson(plan: ShardPlan): string {
  const pairs = plan.files.flatMap((f) => f.tensors.map((t): [string, string] => [t.name, f.file]));
  pairs.sort((a, b) => byName(a[0], b[0]));
  return `${JSON.stringify({ metadata: { total_size: plan.totalSize }, weight_map: Object.fromEntries(pairs) }, null, 2)}\n`;
}

async function writeAll(fh: fs.promises.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength;) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}

/** Writes tensor data chunk by chunk through two buffers: one is filled while the other is written. */
class ChunkPump {
  private readonly buffers: [Uint8Array, Uint8Array];
  private next = 0;
  private pending: Promise<void> | undefined;
  written = 0;

  constructor(
    chunkSize: number,
    private readonly total: number,
    private readonly onProgress?: (written: number, total: number) => void,
  ) {
    this.buffers = [new Uint8Array(chunkSize), new Uint8Array(chunkSize)];
  }

  async tensor(fh: fs.promises.FileHandle, t: StreamedTensor, position: number): Promise<void> {
    const n = tensorBytes(t);
    const size = this.buffers[0].byteLength;
    for (let start = 0; start < n; start += size) {
      const chunk = this.buffers[this.next]!.subarray(0, Math.min(size, n - start));
      this.next ^= 1;
      t.fill(chunk, start); // the other buffer may still be on its way to disk
      await this.flush();
      this.pending = writeAll(fh, chunk, position + start);
      this.written += chunk.byteLength;
      this.onProgress?.(this.written, this.total);
    }
  }

  async flush(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    await p;
  }
}

async function syncDir(dir: string): Promise<void> {
  try {
    const dh = await fs.promises.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* not supported here (e.g. Windows) */
  }
}

/** Writes one shard to a temp file and renames it into place. */
async function writeShard(
  dir: string,
  shard: ShardFile,
  metadata: Record<string, string>,
  pump: ChunkPump,
): Promise<void> {
  const file = path.join(dir, shard.file);
  const tmp = path.join(dir, `.${shard.file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const unregister = registerCleanup(() => fs.rmSync(tmp, { force: true }));
  let fh: fs.promises.FileHandle | undefined;
  try {
    const header = safetensorsHeader(shard.tensors, metadata, file);
    fh = await fs.promises.open(tmp, 'wx');
    await writeAll(fh, header, 0);
    let at = header.byteLength;
    for (const t of shard.tensors) {
      await pump.tensor(fh, t, at);
      at += tensorBytes(t);
    }
    await pump.flush();
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await pump.flush().catch(() => undefined);
    if (fh !== undefined) await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    if (e instanceof Mask2DiTError) throw e;
    throw new SafetensorsError('IO', file, `writing: ${(e as Error).message ?? String(e)}`);
  } finally {
    unregister();
  }
}

/** Removes `<stem>.safetensors`, `<stem>-0000k-of-0000n.safetensors` and `<stem>.safetensors.index.json` not in `keep`. */
function removeStale(dir: string, stem: string, keep: string[]): void {
  const esc = stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const ours = new RegExp(`^${esc}(-\\d{5}-of-\\d{5})?\\.safetensors(\\.index\\.json)?$`);
  for (const f of fs.readdirSync(dir))
    if (ours.test(f) && !keep.includes(f)) fs.rmSync(path.join(dir, f), { force: true });
}

/**
 * Write `tensors` into `dir` (created if missing) as a sharded checkpoint (see the file comment).
 * Returns the plan that was written. Existing outputs are refused unless `force`; with `force`, the
 * other files of the same stem (shards and index of an earlier layout) are removed afterwards.
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: readonly StreamedTensor[],
  options: ShardOptions,
): Promise<ShardPlan> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize % 8 !== 0)
    throw new Mask2DiTError('CONFIG', `chunkSize must be a positive multiple of 8, got ${chunkSize}`);
  const plan = planShards(tensors, options);
  const outputs = [...plan.files.map((f) => f.file), ...(plan.index !== undefined ? [plan.index] : [])];
  const force = options.force ?? false;
  fs.mkdirSync(dir, { recursive: true });
  for (const f of outputs)
    if (!force && fs.existsSync(path.join(dir, f))) throw new OutputExistsError(path.join(dir, f));
  const metadata = options.metadata ?? { format: 'pt' };
  const pump = new ChunkPump(chunkSize, plan.totalSize, options.onProgress);
  const done: string[] = [];
  try {
    for (const shard of plan.files) {
      await writeShard(dir, shard, metadata, pump);
      done.push(path.join(dir, shard.file));
    }
    if (plan.index !== undefined) await writeFileAtomic(path.join(dir, plan.index), shardIndexJson(plan), { force });
    if (force) removeStale(dir, options.stem, outputs);
  } catch (e) {
    for (const f of done) fs.rmSync(f, { force: true });
    throw e;
  }
  await syncDir(dir);
  return plan;
}
