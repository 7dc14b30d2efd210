/**
 * The reference fixtures (written by the Python safetensors library) open and read, and the bf16
 * weights of mask2dit_multiscene are exactly the round-to-nearest-even bfloat16 of the f32 weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { DTYPE_SIZE, SafetensorsFile, f32ToBf16, openSafetensors, type DType } from '../../src/io/safetensors.js';

const FIXTURES = path.resolve(process.cwd(), 'test/fixtures');

const files = fs
  .readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    fs
      .readdirSync(path.join(FIXTURES, d.name))
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => path.join(d.name, f)),
  )
  .sort();

describe('reference fixtures', () => {
  it('are present', () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
    expect(files).toContain(path.join('mask2dit_multiscene', 'weights.bf16.safetensors'));
  });

  it('every tensor of every fixture file reads; dtypes are F32/I64/F64/BF16', async () => {
    const dtypes = new Set<DType>();
    let tensors = 0;
    for (const rel of files) {
      const file = path.join(FIXTURES, rel);
      const src = await SafetensorsFile.open(file);
      try {
        expect(src.metadata).toEqual({ format: 'pt' });
        expect(src.fileSize).toBe(fs.statSync(file).size);
        expect(src.dataStart % 8).toBe(0);
        for (const name of src.names()) {
          const info = src.info(name);
          dtypes.add(info.dtype);
          const numel = info.shape.reduce((a, b) => a * b, 1);
          const data = await src.read(name);
          expect(data.length).toBe(numel);
          const raw = await src.readRaw(name);
          expect(raw.length).toBe(numel * DTYPE_SIZE[info.dtype]);
          if (info.dtype === 'F32' || info.dtype === 'F64' || info.dtype === 'I64') {
            expect(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(Buffer.from(raw))).toBe(true);
          }
          if (data instanceof Float32Array || data instanceof Float64Array) {
            for (let i = 0; i < data.length; i++)
              if (!Number.isFinite(data[i]!)) throw new Error(`${rel}: ${name} holds ${data[i]}`);
          }
          tensors++;
        }
      } finally {
        await src.close();
      }
    }
    expect([...dtypes].sort()).toEqual(['BF16', 'F32', 'F64', 'I64']);
    expect(tensors).toBeGreaterThan(500);
  });

  it('mask2dit_multiscene: weights.bf16 is the round-to-nearest-even bfloat16 of weights, bit for bit', async () => {
    const dir = path.join(FIXTURES, 'mask2dit_multiscene');
    const f32 = await openSafetensors(path.join(dir, 'weights.safetensors'));
    const bf16 = await openSafetensors(path.join(dir, 'weights.bf16.safetensors'));
    try {
      expect(bf16.names().slice().sort()).toEqual(f32.names().slice().sort());
      let elements = 0;
      let inexact = 0;
      for (const name of f32.names()) {
        const a = f32.info(name);
        const b = bf16.info(name);
        expect(a.dtype).toBe('F32');
        expect(b.dtype).toBe('BF16');
        expect(b.shape).toEqual(a.shape);
        const values = (await f32.read(name)) as Float32Array;
        const want = Buffer.from(f32ToBf16(values).buffer);
        const got = Buffer.from(await bf16.readRaw(name));
        if (!got.equals(want)) {
          const i = [...got.keys()].find((k) => got[k] !== want[k])!;
          throw new Error(`${name}: bf16 bytes differ from RNE(f32) at byte ${i}`);
        }
        // and decoding gives those bf16 values exactly
        const decoded = (await bf16.read(name)) as Float32Array;
        const bits = new Uint32Array(decoded.buffer);
        for (let i = 0; i < values.length; i++) {
          if ((bits[i]! & 0xffff) !== 0 || bits[i]! >>> 16 !== got.readUInt16LE(2 * i))
            throw new Error(`${name}[${i}]: decoded bf16 is not exact`);
          if (decoded[i] !== values[i]) inexact++;
        }
        elements += values.length;
      }
      expect(elements).toBeGreaterThan(10_000);
      expect(inexact).toBeGreaterThan(elements / 2); // random weights: bf16 really did round
    } finally {
      await f32.close();
      await bf16.close();
    }
  });

  it('a fixture folder with several .safetensors files is ambiguous for openSafetensors', async () => {
    await expect(openSafetensors(path.join(FIXTURES, 'mask2dit_multiscene'))).rejects.toMatchObject({
      code: 'NO_CHECKPOINT',
    });
  });
});
