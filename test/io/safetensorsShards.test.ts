/**
 * The streaming sharded writer: what it writes reads back through the project's own reader
 * (`openSafetensors(dir)`, index.json included) bit for bit, shards split as huggingface_hub splits
 * them, headers byte-identical to `writeSafetensors`, and nothing left behind on failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { OutputExistsError } from '../../src/io/atomic.js';
import { openSafetensors, writeSafetensors, type DType } from '../../src/io/safetensors.js';
import {
  parseSize,
  planShards,
  tensorBytes,
  writeShardedSafetensors,
  type StreamedTensor,
} from '../../src/io/safetensorsShards.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-shards-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Byte i of tensor k is a function of (k, i): any chunking must reproduce it. */
const byteAt = (k: number, i: number) => (k * 131 + i * 7 + (i >>> 8)) & 0xff;

function tensor(k: number, name: string, dtype: DType, shape: number[], calls?: [number, number][]): StreamedTensor {
  return {
    name,
    dtype,
    shape,
    fill(chunk, start) {
      calls?.push([start, chunk.byteLength]);
      for (let i = 0; i < chunk.byteLength; i++) chunk[i] = byteAt(k, start + i);
    },
  };
}

const expected = (k: number, t: StreamedTensor) => Uint8Array.from({ length: tensorBytes(t) }, (_, i) => byteAt(k, i));

/** A small model-like list: BF16 matrices and vectors, one F32 tensor, one I64. */
function sample(): StreamedTensor[] {
  return [
    tensor(0, 'embed.weight', 'BF16', [40, 8]), // 640 B
    tensor(1, 'blocks.0.norm.weight', 'BF16', [8]),
    tensor(2, 'blocks.0.proj.weight', 'BF16', [16, 8]), // 256 B
    tensor(3, 'blocks.0.proj.bias', 'BF16', [16]),
    tensor(4, 'blocks.1.scale', 'F32', [3, 5]),
    tensor(5, 'blocks.1.proj.weight', 'BF16', [16, 8]),
    tensor(6, 'steps', 'I64', [3]),
    tensor(7, 'out.weight', 'BF16', [3]), // odd element count
  ];
}

describe('planShards', () => {
  test('greedy in the given order, a new shard when the next tensor would overflow, an oversized tensor alone', () => {
    const list = sample();
    const plan = planShards(list, { stem: 'model', maxShardSize: 300 });
    // sizes 640 | 16 + 256 (+32 would be 304) | 32 + 60 (+256) | 256 + 24 + 6; inside a file: element size, then name
    expect(plan.files.map((f) => f.tensors.map((t) => t.name))).toEqual([
      ['embed.weight'], // over the limit: a shard of its own, emitted at once
      ['blocks.0.norm.weight', 'blocks.0.proj.weight'],
      ['blocks.1.scale', 'blocks.0.proj.bias'],
      ['steps', 'blocks.1.proj.weight', 'out.weight'],
    ]);
    expect(plan.files.map((f) => f.file)).toEqual([1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
    expect(plan.totalSize).toBe(list.reduce((a, t) => a + tensorBytes(t), 0));
    for (const f of plan.files) if (f.tensors.length > 1) expect(f.bytes).toBeLessThanOrEqual(300);
    expect(plan.index).toBe('model.safetensors.index.json');
  });

  test('inside a file: larger element size first, then by name', () => {
    const plan = planShards(sample(), { stem: 'm', maxShardSize: 1e9 });
    expect(plan.files).toHaveLength(1);
    expect(plan.files[0]!.file).toBe('m.safetensors');
    expect(plan.index).toBeUndefined();
    expect(plan.files[0]!.tensors.map((t) => t.name)).toEqual([
      'steps',
      'blocks.1.scale',
      'blocks.0.norm.weight',
      'blocks.0.proj.bias',
      'blocks.0.proj.weight',
      'blocks.1.proj.weight',
      'embed.weight',
      'out.weight',
    ]);
  });

  test('rejects duplicate names, bad shapes and reserved names', () => {
    const t = sample()[1]!;
    expect(() => planShards([t, t], { stem: 'm', maxShardSize: 100 })).toThrow(/DUPLICATE_NAME/);
    expect(() => planShards([{ ...t, shape: [-1] }], { stem: 'm', maxShardSize: 100 })).toThrow(/INVALID_SHAPE/);
    expect(() => planShards([{ ...t, name: '__metadata__' }], { stem: 'm', maxShardSize: 100 })).toThrow(
      /INVALID_ENTRY/,
    );
  });

  test('parseSize reads sizes as save_pretrained does', () => {
    expect(parseSize('5GB')).toBe(5e9);
    expect(parseSize('10GB')).toBe(1e10);
    expect(parseSize('2GiB')).toBe(2 * 2 ** 30);
    expect(parseSize('500MB')).toBe(5e8);
    expect(parseSize('1234')).toBe(1234);
    expect(parseSize(77)).toBe(77);
    expect(() => parseSize('5 parsecs')).toThrow(/not a size/);
  });
});

describe('writeShardedSafetensors', () => {
  test('round trip through openSafetensors(dir): every byte, the index, shard sizes', async () => {
    const dir = path.join(tmp, 'sharded');
    const list = sample();
    const plan = await writeShardedSafetensors(dir, list, {
      stem: 'diffusion_pytorch_model',
      maxShardSize: 300,
      chunkSize: 64,
    });
    expect(plan.files.length).toBeGreaterThan(2);
    expect(fs.readdirSync(dir).sort()).toEqual(
      [...plan.files.map((f) => f.file), 'diffusion_pytorch_model.safetensors.index.json'].sort(),
    );

    const index = JSON.parse(fs.readFileSync(path.join(dir, plan.index!), 'utf8')) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    expect(index.metadata).toEqual({ total_size: list.reduce((a, t) => a + tensorBytes(t), 0) });
    expect(Object.keys(index.weight_map)).toEqual(list.map((t) => t.name).sort());
    for (const f of plan.files) for (const t of f.tensors) expect(index.weight_map[t.name]).toBe(f.file);
    expect(fs.readFileSync(path.join(dir, plan.index!), 'utf8')).toMatch(
      /^\{\n {2}"metadata": \{\n {4}"total_size": \d+\n {2}\},\n {2}"weight_map": \{\n/,
    );

    for (const f of plan.files) {
      const size = fs.statSync(path.join(dir, f.file)).size;
      const header = Number(fs.readFileSync(path.join(dir, f.file)).readBigUInt64LE(0));
      expect(header % 8).toBe(0);
      expect(size).toBe(8 + header + f.bytes);
    }

    const src = await openSafetensors(dir);
    try {
      expect([...src.names()].sort()).toEqual(list.map((t) => t.name).sort());
      expect(src.metadata['total_size']).toBe(String(plan.totalSize));
      for (const [k, t] of list.entries()) {
        expect(src.info(t.name)).toMatchObject({ dtype: t.dtype, shape: t.shape });
        expect(await src.readRaw(t.name)).toEqual(expected(k, t));
      }
      // bf16 decodes from exactly the bits written: u32 = u16 << 16
      const raw = expected(0, list[0]!);
      const bits = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
      const f32 = (await src.read('embed.weight')) as Float32Array;
      expect(Array.from(new Uint32Array(f32.buffer, f32.byteOffset, f32.length))).toEqual(
        Array.from(bits, (b) => (b << 16) >>> 0),
      );
    } finally {
      await src.close();
    }
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  test('one shard: <stem>.safetensors, no index, byte-identical to writeSafetensors', async () => {
    const dir = path.join(tmp, 'single');
    const list = sample();
    const plan = await writeShardedSafetensors(dir, list, { stem: 'model', maxShardSize: 5e9 });
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
    expect(plan.index).toBeUndefined();
    const ref = path.join(tmp, 'reference.safetensors');
    await writeSafetensors(
      ref,
      Object.fromEntries(list.map((t, k) => [t.name, { dtype: t.dtype, shape: [...t.shape], data: expected(k, t) }])),
      { format: 'pt' },
    );
    expect(fs.readFileSync(path.join(dir, 'model.safetensors'))).toEqual(fs.readFileSync(ref));
    const src = await openSafetensors(dir);
    expect(src.names()).toHaveLength(list.length);
    await src.close();
  });

  test('fill is called in order, chunk by chunk, and any chunk size gives the same files', async () => {
    const calls: [number, number][] = [];
    const big = (c?: [number, number][]) => [tensor(9, 'w', 'BF16', [50, 3], c), tensor(10, 'v', 'BF16', [7], c)];
    await writeShardedSafetensors(path.join(tmp, 'chunks8'), big(calls), {
      stem: 'model',
      maxShardSize: 1e6,
      chunkSize: 8,
    });
    await writeShardedSafetensors(path.join(tmp, 'chunks1M'), big(), {
      stem: 'model',
      maxShardSize: 1e6,
      chunkSize: 1 << 20,
    });
    expect(fs.readFileSync(path.join(tmp, 'chunks8', 'model.safetensors'))).toEqual(
      fs.readFileSync(path.join(tmp, 'chunks1M', 'model.safetensors')),
    );
    // 'v' (14 B) then 'w' (300 B) in name order, 8 B at a time
    expect(calls.slice(0, 2)).toEqual([
      [0, 8],
      [8, 6],
    ]);
    expect(calls.slice(2).map(([s]) => s)).toEqual(Array.from({ length: 38 }, (_, i) => 8 * i));
    expect(calls[calls.length - 1]).toEqual([296, 4]);
  });

  test('refuses existing outputs unless force; force replaces and drops the files of the earlier layout', async () => {
    const dir = path.join(tmp, 'exists');
    await writeShardedSafetensors(dir, sample(), { stem: 'model', maxShardSize: 300 });
    await expect(writeShardedSafetensors(dir, sample(), { stem: 'model', maxShardSize: 300 })).rejects.toBeInstanceOf(
      OutputExistsError,
    );
    await writeShardedSafetensors(dir, sample(), { stem: 'model', maxShardSize: 5e9, force: true });
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
    const src = await openSafetensors(dir);
    expect(src.path).toBe(path.join(dir, 'model.safetensors'));
    await src.close();
    await expect(
      writeShardedSafetensors(dir, sample(), { stem: 'model', maxShardSize: 300, chunkSize: 12, force: true }),
    ).rejects.toThrow(/multiple of 8/);
  });

  test('a failing fill leaves nothing behind: no temp file, no shard, no index', async () => {
    const dir = path.join(tmp, 'failing');
    const list = sample();
    const bad: StreamedTensor = {
      ...list[5]!,
      fill() {
        throw new Error('generator broke');
      },
    };
    list[5] = bad;
    await expect(
      writeShardedSafetensors(dir, list, { stem: 'model', maxShardSize: 300, chunkSize: 64 }),
    ).rejects.toThrow('generator broke');
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
