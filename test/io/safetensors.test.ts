import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SafetensorsError, type SafetensorsErrorCode } from '../../src/errors.js';
import {
  DTYPE_SIZE,
  DTYPES,
  SafetensorsFile,
  ShardedSafetensors,
  bf16ToF32,
  encodeTensorData,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  findDuplicateKey,
  nestsDeeperThan,
  openSafetensors,
  writeSafetensors,
  type DType,
  type TensorData,
  type TensorToWrite,
} from '../../src/io/safetensors.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let counter = 0;
/** A fresh path in the temp dir. */
const fresh = (name = 'f.safetensors') => path.join(tmp, `${counter++}-${name}`);

/** Writes a file by hand: header length prefix (default: the header's length), header, data. */
function rawFile(
  header: string | Uint8Array,
  data: Uint8Array | number = 0,
  lengthPrefix?: bigint,
  file = fresh(),
): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthPrefix ?? BigInt(h.length));
  const d = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  fs.writeFileSync(file, Buffer.concat([prefix, h, d]));
  return file;
}

const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const hdr = (o: Record<string, unknown>) => JSON.stringify(o);

async function expectError(
  p: Promise<unknown> | (() => unknown),
  code: SafetensorsErrorCode,
  file: string,
): Promise<SafetensorsError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  const e = err as SafetensorsError;
  if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
  expect(e.message).toContain(file);
  expect(e.file).toBe(file);
  return e;
}

const vals = (d: TensorData): (number | bigint)[] => Array.from(d as ArrayLike<number | bigint>);
const u8 = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const f32FromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0]!;
const bitsFromF32 = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;

/** Independent float16 decoder (arithmetic, not bit twiddling). */
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Independent bfloat16 decoder. */
function bf16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 255;
  const m = h & 127;
  if (e === 255) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -133;
  return s * (1 + m / 128) * 2 ** (e - 127);
}

/** Reference round-to-nearest-even in float64 arithmetic: `mantBits` explicit bits, `minExp` of normals. */
function roundRef(x: number, mantBits: number, minExp: number, maxFinite: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, minExp) - mantBits);
  const q = a / ulp;
  const fl = Math.floor(q);
  const d = q - fl;
  const r = d > 0.5 || (d === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const v = r * ulp;
  return Math.sign(x) * (v > maxFinite ? Infinity : v) || (x < 0 ? -0 : 0);
}

describe('float16 / bfloat16 conversion', () => {
  const all = new Uint16Array(65536).map((_, i) => i);

  it('decodes all 65536 float16 patterns exactly', () => {
    const f = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const want = f16Value(h);
      if (Number.isNaN(want)) expect(Number.isNaN(f[h])).toBe(true);
      else if (!Object.is(f[h], want)) throw new Error(`f16 0x${h.toString(16)}: got ${f[h]}, want ${want}`);
    }
    expect(f[0x0001]).toBe(2 ** -24); // smallest subnormal
    expect(f[0x03ff]).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f[0x0400]).toBe(2 ** -14); // smallest normal
    expect(f[0x7bff]).toBe(65504); // largest normal
    expect(f[0xfbff]).toBe(-65504);
    expect(f[0x7c00]).toBe(Infinity);
    expect(f[0xfc00]).toBe(-Infinity);
    expect(Object.is(f[0x8000], -0)).toBe(true);
    expect(Object.is(f[0x0000], 0)).toBe(true);
    expect(f[0x7e00]).toBeNaN();
    expect(f[0xfd01]).toBeNaN(); // signalling NaN with payload
  });

  it('float16 → float32 → float16 is the identity on all 65536 patterns (NaN payloads too)', () => {
    const back = f32ToF16(f16ToF32(all));
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(f16Value(h))) expect(Number.isNaN(f16Value(back[h]!))).toBe(true);
      if (back[h] !== h) throw new Error(`f16 0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
    }
  });

  it('decodes all 65536 bfloat16 patterns exactly', () => {
    const f = bf16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const want = bf16Value(h);
      if (Number.isNaN(want)) expect(Number.isNaN(f[h])).toBe(true);
      else if (!Object.is(f[h], want)) throw new Error(`bf16 0x${h.toString(16)}: got ${f[h]}, want ${want}`);
      expect(bitsOf(f)[h]).toBe((h << 16) >>> 0);
    }
    expect(f[0x0001]).toBe(2 ** -133);
    expect(f[0x007f]).toBe(127 * 2 ** -133);
    expect(f[0x7f7f]).toBe((2 - 2 ** -7) * 2 ** 127);
    expect(f[0x7f80]).toBe(Infinity);
    expect(f[0xff80]).toBe(-Infinity);
    expect(Object.is(f[0x8000], -0)).toBe(true);
  });

  it('bfloat16 → float32 → bfloat16 is the identity on all 65536 patterns', () => {
    const back = f32ToBf16(bf16ToF32(all));
    for (let h = 0; h < 65536; h++)
      if (back[h] !== h) throw new Error(`bf16 0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
  });

  it('float32 → bfloat16 rounds to nearest even on ties', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -8, 0x3f80], // tie between 1 (even) and 1+2^-7 → 1
      [1 + 3 * 2 ** -8, 0x3f82], // tie between 0x3f81 (odd) and 0x3f82 → up
      [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie → up
      [-(1 + 2 ** -8), 0xbf80],
      [-(1 + 3 * 2 ** -8), 0xbf82],
      [f32FromBits(0x7f7f8000), 0x7f80], // tie above the largest finite (odd) → inf
      [f32FromBits(0x7f7f7fff), 0x7f7f],
      [f32FromBits(0x7f7fffff), 0x7f80], // float32 max → inf
      [f32FromBits(0xff7fffff), 0xff80],
      [f32FromBits(0x00008000), 0x0000], // subnormal tie → 0 (even)
      [f32FromBits(0x00018000), 0x0002], // subnormal tie → 2 (even)
      [f32FromBits(0x80008000), 0x8000],
      [-0, 0x8000],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
    ];
    const got = f32ToBf16(new Float32Array(cases.map((c) => c[0])));
    cases.forEach(([x, want], i) => expect([x, got[i]!.toString(16)]).toEqual([x, want.toString(16)]));
    // NaN stays NaN, even a NaN whose payload lies entirely in the dropped low bits; the sign survives
    const nans = f32ToBf16(new Float32Array(new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7fbfffff]).buffer));
    expect(Array.from(nans, (h) => Number.isNaN(bf16Value(h)))).toEqual([true, true, true, true]);
    expect(nans[0]).toBe(0x7fc0);
    expect(nans[2]! & 0x8000).toBe(0x8000);
    expect(nans[3]).toBe(0x7fbf); // payload's top bits kept, not rounded into inf
  });

  it('float32 → float16 rounds to nearest even on ties', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // tie → even (1)
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
      [-(1 + 2 ** -11), 0xbc00],
      [65504, 0x7bff],
      [65519.996, 0x7bff], // just under the tie
      [65520, 0x7c00], // tie above the largest finite (odd mantissa) → inf
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal → 0
      [-(2 ** -25), 0x8000],
      [f32FromBits(bitsFromF32(2 ** -25) + 1), 0x0001], // just above → smallest subnormal
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 → 2
      [5 * 2 ** -25, 0x0002], // tie between 2 and 3 → 2
      [1023.5 * 2 ** -24, 0x0400], // tie between the largest subnormal (odd) and the smallest normal
      [1022.5 * 2 ** -24, 0x03fe],
      [2 ** -14, 0x0400],
      [1e-10, 0x0000],
      [-0, 0x8000],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    const got = f32ToF16(new Float32Array(cases.map((c) => c[0])));
    cases.forEach(([x, want], i) => expect([x, got[i]!.toString(16)]).toEqual([x, want.toString(16)]));
    const nans = f32ToF16(new Float32Array(new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7f801fff]).buffer));
    expect(Array.from(nans, (h) => Number.isNaN(f16Value(h)))).toEqual([true, true, true, true]);
    expect(nans[0]).toBe(0x7e00);
    expect(nans[2]! & 0x8000).toBe(0x8000);
  });

  it('float32 → float16 / bfloat16 agree with a float64 reference rounding on random float32 values', () => {
    const bitsArb = fc.oneof(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0x32000000, max: 0x48000000 }), // float16's range, subnormals included
      fc.integer({ min: 0xb2000000, max: 0xc8000000 }),
      fc.integer({ min: 0, max: 0x01000000 }), // float32 subnormals
    );
    fc.assert(
      fc.property(fc.array(bitsArb, { minLength: 1, maxLength: 64 }), (bits) => {
        const x = new Float32Array(new Uint32Array(bits).buffer);
        const h16 = f32ToF16(x);
        const hb = f32ToBf16(x);
        for (let i = 0; i < x.length; i++) {
          const v = x[i]!;
          if (Number.isNaN(v)) {
            expect(f16Value(h16[i]!)).toBeNaN();
            expect(bf16Value(hb[i]!)).toBeNaN();
            continue;
          }
          const want16 = roundRef(v, 10, -14, 65504);
          const wantB = roundRef(v, 7, -126, (2 - 2 ** -7) * 2 ** 127);
          if (!Object.is(f16Value(h16[i]!), want16))
            throw new Error(`f16(${v}) = ${f16Value(h16[i]!)}, want ${want16}`);
          if (!Object.is(bf16Value(hb[i]!), wantB)) throw new Error(`bf16(${v}) = ${bf16Value(hb[i]!)}, want ${wantB}`);
        }
      }),
      { seed: 1234, numRuns: 2000 },
    );
  });
});

describe('encodeTensorData', () => {
  it('encodes every dtype little-endian', () => {
    expect(Array.from(encodeTensorData('F32', [1, -2]))).toEqual(Array.from(u8(new Float32Array([1, -2]))));
    expect(Array.from(encodeTensorData('F64', [0.1]))).toEqual(Array.from(u8(new Float64Array([0.1]))));
    expect(Array.from(encodeTensorData('BF16', [1, 1 + 2 ** -8, -2]))).toEqual([0x80, 0x3f, 0x80, 0x3f, 0x00, 0xc0]);
    expect(Array.from(encodeTensorData('F16', [1, 65520, 2 ** -24]))).toEqual([0x00, 0x3c, 0x00, 0x7c, 0x01, 0x00]);
    expect(Array.from(encodeTensorData('I64', [-1n, 2n ** 62n]))).toEqual([
      255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0x40,
    ]);
    expect(Array.from(encodeTensorData('I64', [3]))).toEqual([3, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(encodeTensorData('I32', [-2]))).toEqual([0xfe, 0xff, 0xff, 0xff]);
    expect(Array.from(encodeTensorData('I16', [-32768]))).toEqual([0x00, 0x80]);
    expect(Array.from(encodeTensorData('I8', [-1, 127]))).toEqual([0xff, 0x7f]);
    expect(Array.from(encodeTensorData('U8', [255, 0]))).toEqual([255, 0]);
    expect(Array.from(encodeTensorData('BOOL', [1, 0]))).toEqual([1, 0]);
    expect(encodeTensorData('F32', []).length).toBe(0);
  });

  it('refuses values that do not fit the dtype', async () => {
    await expectError(() => encodeTensorData('I8', [128]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('U8', [-1]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('I32', [1.5]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('I32', [2 ** 31]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('I16', [NaN]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('BOOL', [2]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('I64', [2 ** 53]), 'INVALID_TENSOR_DATA', '(values)');
    await expectError(() => encodeTensorData('I64', [2n ** 63n]), 'INVALID_TENSOR_DATA', '(values)');
  });
});

// ---------------------------------------------------------------------------------------------

/** Bytes of a random tensor of this dtype (BOOL limited to 0/1). */
function randomBytesFor(dtype: DType, numel: number, seed: number): Uint8Array {
  const b = new Uint8Array(numel * DTYPE_SIZE[dtype]);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < b.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    b[i] = dtype === 'BOOL' ? s & 1 : s & 255;
  }
  return b;
}

/** The typed array a writer would take for these bytes (copy, aligned). */
function typedFromBytes(dtype: DType, bytes: Uint8Array): TensorData {
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
      return f16ToF32(new Uint16Array(buf));
    case 'BF16':
      return bf16ToF32(new Uint16Array(buf));
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
  }
}

describe('round trip', () => {
  const nameArb = fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.string({ unit: 'binary-ascii', maxLength: 8 }),
      fc.constantFrom(
        'a',
        'ab',
        'a\\b',
        'a"b',
        'transformer_blocks.0.attn1.to_q.weight',
        '__proto__',
        'constructor',
        '0',
        '1',
        '日本語',
        '😀x',
      ),
    )
    .filter((n) => n !== '__metadata__');
  const specArb = fc.record({
    dtype: fc.constantFrom(...DTYPES),
    shape: fc.oneof(
      fc.constant([] as number[]),
      fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 3 }),
    ),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    raw: fc.boolean(),
  });
  const setArb = fc.record({
    tensors: fc.uniqueArray(fc.tuple(nameArb, specArb), { selector: (t) => t[0], maxLength: 8 }),
    metadata: fc.option(
      fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }), {
        maxKeys: 3,
      }),
      { nil: undefined },
    ),
  });

  it('any set of tensors of every dtype reads back bit-exactly (raw and decoded)', async () => {
    const file = fresh('rt.safetensors');
    await fc.assert(
      fc.asyncProperty(setArb, async ({ tensors, metadata }) => {
        const expected = new Map<string, { dtype: DType; shape: number[]; bytes: Uint8Array }>();
        const toWrite: Record<string, TensorToWrite> = {};
        for (const [name, spec] of tensors) {
          const numel = spec.shape.reduce((a, b) => a * b, 1);
          const bytes = randomBytesFor(spec.dtype, numel, spec.seed);
          expected.set(name, { dtype: spec.dtype, shape: spec.shape, bytes });
          Object.defineProperty(toWrite, name, {
            value: { dtype: spec.dtype, shape: spec.shape, data: spec.raw ? bytes : typedFromBytes(spec.dtype, bytes) },
            enumerable: true,
          });
        }
        await writeSafetensors(file, toWrite, metadata);
        const src = await SafetensorsFile.open(file);
        try {
          expect(src.metadata).toEqual(metadata ?? {});
          expect(new Set(src.names())).toEqual(new Set(expected.keys()));
          expect(src.fileSize).toBe(fs.statSync(file).size);
          const again: Record<string, TensorToWrite> = {};
          for (const [name, want] of expected) {
            const info = src.info(name);
            expect(info.dtype).toBe(want.dtype);
            expect(info.shape).toEqual(want.shape);
            expect(info.dataOffsets[1] - info.dataOffsets[0]).toBe(want.bytes.length);
            expect(info.dataOffsets[0] % DTYPE_SIZE[want.dtype]).toBe(0); // writer aligns every tensor
            expect(Buffer.from(await src.readRaw(name)).equals(Buffer.from(want.bytes))).toBe(true);
            const data = await src.read(name);
            const decoded = typedFromBytes(want.dtype, want.bytes);
            expect(data.constructor.name).toBe(decoded.constructor.name);
            expect(data.byteOffset).toBe(0);
            const decodedBytes = u8(decoded);
            expect(Buffer.from(u8(data)).equals(Buffer.from(decodedBytes))).toBe(true);
            Object.defineProperty(again, name, {
              value: { dtype: want.dtype, shape: want.shape, data },
              enumerable: true,
            });
          }
          // decoded values written back give the same bytes (F16/BF16 re-encode exactly)
          const file2 = `${file}.2`;
          await writeSafetensors(file2, again, metadata);
          expect(fs.readFileSync(file2).equals(fs.readFileSync(file))).toBe(true);
        } finally {
          await src.close();
        }
      }),
      { seed: 42, numRuns: 150 },
    );
  });

  it('reads zero-size tensors and scalars', async () => {
    const file = fresh();
    await writeSafetensors(file, {
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      scalar: { dtype: 'I64', shape: [], data: new BigInt64Array([-7n]) },
      flag: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
    });
    const src = await openSafetensors(file);
    expect(await src.read('empty')).toEqual(new Float32Array(0));
    expect(Array.from((await src.read('scalar')) as BigInt64Array)).toEqual([-7n]);
    expect(src.info('scalar').shape).toEqual([]);
    expect(vals(await src.read('flag'))).toEqual([1, 0, 1]);
    await src.close();
  });

  it('decodes BOOL bytes other than 0/1 as 1', async () => {
    const file = rawFile(hdr({ b: entry('BOOL', [3], [0, 3]) }), new Uint8Array([0, 7, 255]));
    const src = await openSafetensors(file);
    expect(vals(await src.read('b'))).toEqual([0, 1, 1]);
    expect(Array.from(await src.readRaw('b'))).toEqual([0, 7, 255]);
    await src.close();
  });

  it('writes golden bytes: __metadata__ first, by descending alignment then name, padded with spaces to 8', async () => {
    const file = fresh();
    await writeSafetensors(
      file,
      {
        b: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
        aa: { dtype: 'U8', shape: [1], data: new Uint8Array([9]) },
        w: { dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) },
        h: { dtype: 'BF16', shape: [1], data: new Float32Array([1]) },
      },
      { format: 'pt' },
    );
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"h":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},' +
      '"aa":{"dtype":"U8","shape":[1],"data_offsets":[10,11]},' +
      '"b":{"dtype":"U8","shape":[3],"data_offsets":[11,14]}}';
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    expect(padded.length % 8).toBe(0);
    expect(padded.length).toBeGreaterThan(header.length);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(padded.length));
    const data = Buffer.from([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x80, 0x3f, 9, 1, 2, 3]);
    expect(fs.readFileSync(file).toString('hex')).toBe(
      Buffer.concat([prefix, Buffer.from(padded), data]).toString('hex'),
    );
  });

  it('orders names by code point (UTF-8 byte order), not UTF-16 units', async () => {
    const file = fresh();
    const t = (v: number): TensorToWrite => ({ dtype: 'U8', shape: [1], data: new Uint8Array([v]) });
    await writeSafetensors(file, { '\u{1F600}': t(1), '\uFFFD': t(2), b: t(3), a: t(4) });
    const src = await openSafetensors(file);
    expect(src.names()).toEqual(['a', 'b', '\uFFFD', '\u{1F600}']);
    await src.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe('reader validation: one test per error', () => {
  const good = hdr({ t: entry('F32', [2], [0, 8]) });

  it('IO: missing file, a directory passed as a file, reading after close', async () => {
    const missing = path.join(tmp, 'nope.safetensors');
    await expectError(SafetensorsFile.open(missing), 'IO', missing);
    await expectError(openSafetensors(missing), 'IO', missing);
    await expectError(SafetensorsFile.open(tmp), 'IO', tmp);
    const file = rawFile(good, 8);
    const src = await SafetensorsFile.open(file);
    await src.close();
    await src.close(); // idempotent
    await expectError(src.read('t'), 'IO', file);
    await expectError(src.readRaw('t'), 'IO', file);
  });

  it('HEADER_TOO_SMALL: files shorter than 8 bytes', async () => {
    for (const n of [0, 1, 7]) {
      const file = fresh();
      fs.writeFileSync(file, Buffer.alloc(n));
      await expectError(SafetensorsFile.open(file), 'HEADER_TOO_SMALL', file);
    }
  });

  it('HEADER_TOO_LARGE: header length above 100 MB, up to 2^64-1, refused before allocating', async () => {
    for (const n of [100_000_001n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const file = rawFile(good, 8, n);
      await expectError(SafetensorsFile.open(file), 'HEADER_TOO_LARGE', file);
    }
  });

  it('INVALID_HEADER_LENGTH: header length past the end of the file', async () => {
    const file = rawFile(good, 0, 1000n);
    await expectError(SafetensorsFile.open(file), 'INVALID_HEADER_LENGTH', file);
    const file2 = rawFile('', 0, 1n);
    await expectError(SafetensorsFile.open(file2), 'INVALID_HEADER_LENGTH', file2);
  });

  it('INVALID_HEADER_UTF8', async () => {
    for (const bytes of [
      [0x7b, 0xff, 0x7d],
      [0x7b, 0x22, 0xc3, 0x22, 0x7d],
      [0xef, 0xbb, 0xbf, 0x7b, 0x7d].slice(1),
      [0xed, 0xa0, 0x80],
    ]) {
      const file = rawFile(new Uint8Array(bytes));
      await expectError(SafetensorsFile.open(file), 'INVALID_HEADER_UTF8', file);
    }
  });

  it('INVALID_HEADER_JSON', async () => {
    for (const h of ['', '{', '{"a":1,}', '{not json}', "{'a':1}", '\uFEFF{}', '{} x', 'NaN']) {
      const file = rawFile(h);
      await expectError(SafetensorsFile.open(file), 'INVALID_HEADER_JSON', file);
    }
  });

  it('INVALID_HEADER_JSON: absurd nesting is refused before parsing (no deep structures are built)', async () => {
    const deep = rawFile('['.repeat(5_000_000) + ']'.repeat(5_000_000));
    await expectError(SafetensorsFile.open(deep), 'INVALID_HEADER_JSON', deep);
    const deepEntry = rawFile(`{"t":${'{"a":'.repeat(200)}1${'}'.repeat(200)}}`);
    await expectError(SafetensorsFile.open(deepEntry), 'INVALID_HEADER_JSON', deepEntry);
    expect(nestsDeeperThan(String.raw`{"[[[[":"{{{{\"}"}`, 1)).toBe(false); // brackets and an escaped quote inside strings
    expect(nestsDeeperThan(String.raw`{"a":"\\","b":[[]]}`, 2)).toBe(true); // an escaped backslash ends before the quote
  });

  it('HEADER_NOT_OBJECT: arrays, null, numbers, strings, booleans', async () => {
    for (const h of ['[]', 'null', '3', '"x"', 'true', '[{"dtype":"F32","shape":[],"data_offsets":[0,4]}]']) {
      const file = rawFile(h);
      await expectError(SafetensorsFile.open(file), 'HEADER_NOT_OBJECT', file);
    }
  });

  it('DUPLICATE_NAME: literal and escaped duplicates, and duplicate fields', async () => {
    const e = JSON.stringify(entry('U8', [0], [0, 0]));
    for (const h of [
      `{"a":${e},"a":${e}}`,
      `{"a\\u0062":${e},"ab":${e}}`,
      `{"\\/":${e},"/":${e}}`,
      `{"\\ud83d\\ude00":${e},"😀":${e}}`,
      `{"__metadata__":{},"__metadata__":{}}`,
      `{"__metadata__":{"k":"1","k":"2"}}`,
      `{"a":{"dtype":"U8","dtype":"U8","shape":[0],"data_offsets":[0,0]}}`,
    ]) {
      const file = rawFile(h);
      await expectError(SafetensorsFile.open(file), 'DUPLICATE_NAME', file);
    }
  });

  it('does not mistake different escaped keys for duplicates', async () => {
    const e = JSON.stringify(entry('U8', [0], [0, 0]));
    const h = `{"a\\\\":${e},"a\\\\\\\\":${e},"a\\"":${e},"a":${e},"\\u0061b":${e},"a\\u005c":${e}, "x" : {"shape":[0],"dtype":"U8","data_offsets":[0,0]}}`;
    expect(() => JSON.parse(h) as unknown).not.toThrow();
    // "a\\u005c" = a + backslash = "a\\\\": a duplicate, so drop it for the positive control
    const ok = h.replace(`,"a\\u005c":${e}`, '');
    const src = await SafetensorsFile.open(rawFile(ok));
    expect(new Set(src.names())).toEqual(new Set(['a\\', 'a\\\\', 'a"', 'a', 'ab', 'x']));
    await src.close();
    const file = rawFile(h);
    await expectError(SafetensorsFile.open(file), 'DUPLICATE_NAME', file);
  });

  it('findDuplicateKey ignores strings in values and arrays', () => {
    expect(findDuplicateKey('{"a":"b","c":["a","a"],"d":{"a":1,"b":{"a":2}},"e":"a"}')).toBeUndefined();
    expect(findDuplicateKey('{"a":[{"x":1},{"x":2}]}')).toBeUndefined();
    expect(findDuplicateKey('{"a":[{"x":1,"x":2}]}')).toEqual({ path: 'a[]', key: 'x' });
    expect(findDuplicateKey('{"q":{"r":{"z":1,"z":1}}}')).toEqual({ path: 'q.r', key: 'z' });
  });

  it('INVALID_METADATA: not an object of strings', async () => {
    for (const m of ['1', '[]', 'null', '"x"', '{"a":1}', '{"a":null}', '{"a":{"b":"c"}}', '{"a":["x"]}']) {
      const file = rawFile(`{"__metadata__":${m}}`);
      await expectError(SafetensorsFile.open(file), 'INVALID_METADATA', file);
    }
  });

  it('INVALID_ENTRY: entry not an object, fields missing, mistyped or unexpected', async () => {
    for (const t of [
      '3',
      'null',
      '"F32"',
      '[]',
      '{"shape":[2],"data_offsets":[0,8]}',
      '{"dtype":4,"shape":[2],"data_offsets":[0,8]}',
      '{"dtype":null,"shape":[2],"data_offsets":[0,8]}',
      '{"dtype":"F32","data_offsets":[0,8]}',
      '{"dtype":"F32","shape":[2]}',
      '{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}',
    ]) {
      const file = rawFile(`{"t":${t}}`, 8);
      await expectError(SafetensorsFile.open(file), 'INVALID_ENTRY', file);
    }
  });

  it('UNKNOWN_DTYPE', async () => {
    for (const d of ['F128', 'f32', 'F8_E4M3', '', 'float32']) {
      const file = rawFile(hdr({ t: entry(d, [2], [0, 8]) }), 8);
      const e = await expectError(SafetensorsFile.open(file), 'UNKNOWN_DTYPE', file);
      expect(e.message).toContain('"t"');
    }
  });

  it('INVALID_SHAPE: not an array of non-negative safe integers', async () => {
    for (const s of [
      '"2"',
      '2',
      'null',
      '{}',
      '[-1]',
      '[1.5]',
      '["2"]',
      '[9007199254740992]',
      '[null]',
      '[[2]]',
      '[1e400]',
    ]) {
      const file = rawFile(`{"t":{"dtype":"F32","shape":${s},"data_offsets":[0,8]}}`, 8);
      await expectError(SafetensorsFile.open(file), 'INVALID_SHAPE', file);
    }
  });

  it('INVALID_OFFSETS: malformed pairs, overlaps, holes, not starting at 0', async () => {
    for (const o of [
      '[0]',
      '[0,8,16]',
      '[]',
      '"0,8"',
      'null',
      '[8,0]',
      '[-8,0]',
      '[0.5,8.5]',
      '["0","8"]',
      '[0,9007199254740992]',
    ]) {
      const file = rawFile(`{"t":{"dtype":"F32","shape":[2],"data_offsets":${o}}}`, 8);
      await expectError(SafetensorsFile.open(file), 'INVALID_OFFSETS', file);
    }
    const layouts: Record<string, unknown>[] = [
      { a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }, // overlap
      { a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [0, 8]) }, // same bytes twice
      { a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [12, 20]) }, // hole
      { a: entry('F32', [2], [4, 12]) }, // does not start at 0
      { a: entry('F32', [0], [12, 12]), b: entry('F32', [1], [0, 4]) }, // zero-size tensor after a hole
    ];
    for (const l of layouts) {
      const file = rawFile(hdr(l), 20);
      await expectError(SafetensorsFile.open(file), 'INVALID_OFFSETS', file);
    }
  });

  it('TENSOR_INVALID_INFO: byte span does not match shape × dtype size, or overflows', async () => {
    for (const [d, s, o] of [
      ['F32', [2], [0, 4]],
      ['F32', [2], [0, 12]],
      ['F64', [], [0, 4]],
      ['F32', [0], [0, 4]],
      ['F32', [2 ** 26, 2 ** 26, 2 ** 26], [0, 8]],
      ['I64', [2 ** 50, 2 ** 3], [0, 8]],
    ] as [string, number[], number[]][]) {
      const file = rawFile(hdr({ t: entry(d, s, o) }), o[1]);
      await expectError(SafetensorsFile.open(file), 'TENSOR_INVALID_INFO', file);
    }
  });

  it('METADATA_INCOMPLETE_BUFFER: bytes after the last tensor', async () => {
    const file = rawFile(good, 9);
    await expectError(SafetensorsFile.open(file), 'METADATA_INCOMPLETE_BUFFER', file);
    const file2 = rawFile('{}', 1);
    await expectError(SafetensorsFile.open(file2), 'METADATA_INCOMPLETE_BUFFER', file2);
  });

  it('TRUNCATED: data area shorter than the tensors, or the file shrinks after open', async () => {
    const file = rawFile(good, 7);
    await expectError(SafetensorsFile.open(file), 'TRUNCATED', file);
    const file2 = rawFile(hdr({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [8, 16]) }), 16);
    const src = await SafetensorsFile.open(file2);
    fs.truncateSync(file2, fs.statSync(file2).size - 4);
    expect((await src.read('a')).length).toBe(2);
    await expectError(src.read('b'), 'TRUNCATED', file2);
    await expectError(src.readRaw('b'), 'TRUNCATED', file2);
    await src.close();
  });

  it('IO: a consistent but impossibly large tensor (sparse 4 TiB file) is refused at read, not a RangeError', async () => {
    const file = rawFile(hdr({ big: entry('F32', [2 ** 40], [0, 2 ** 42]) }));
    try {
      fs.truncateSync(file, fs.statSync(file).size + 2 ** 42);
    } catch {
      return; // this file system has no sparse files that large: nothing to test
    }
    const src = await SafetensorsFile.open(file);
    await expectError(src.read('big'), 'IO', file);
    await expectError(src.readRaw('big'), 'IO', file);
    await src.close();
    fs.rmSync(file);
  });

  it('TENSOR_NOT_FOUND: info, read and readRaw of an unknown name', async () => {
    const file = rawFile(good, 8);
    const src = await SafetensorsFile.open(file);
    expect(src.has('t')).toBe(true);
    expect(src.has('nope')).toBe(false);
    expect(src.has('__metadata__')).toBe(false);
    const e = await expectError(() => src.info('nope'), 'TENSOR_NOT_FOUND', file);
    expect(e.message).toContain('"nope"');
    await expectError(src.read('nope'), 'TENSOR_NOT_FOUND', file);
    await expectError(src.readRaw('toString'), 'TENSOR_NOT_FOUND', file);
    await src.close();
  });

  it('accepts an empty header object, padding whitespace and zero-size tensors anywhere in the layout', async () => {
    const src = await SafetensorsFile.open(rawFile('{}      '));
    expect(src.names()).toEqual([]);
    await src.close();
    const file = rawFile(
      hdr({ z: entry('F32', [0], [8, 8]), a: entry('F32', [2], [0, 8]), y: entry('I8', [3, 0], [0, 0]) }),
      8,
    );
    const src2 = await SafetensorsFile.open(file);
    expect(src2.names()).toEqual(['y', 'a', 'z']);
    expect((await src2.read('z')).length).toBe(0);
    await src2.close();
  });

  it('info() hands out copies', async () => {
    const src = await SafetensorsFile.open(rawFile(good, 8));
    src.info('t').shape.push(99);
    expect(src.info('t').shape).toEqual([2]);
    await src.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe('writer', () => {
  it('refuses bad input naming the tensor, leaving nothing behind', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'w-'));
    const file = path.join(dir, 'out.safetensors');
    const bad: [Record<string, TensorToWrite>, SafetensorsErrorCode, string][] = [
      [{ wrong_len: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, 'INVALID_TENSOR_DATA', 'wrong_len'],
      [{ wrong_bytes: { dtype: 'F32', shape: [3], data: new Uint8Array(11) } }, 'INVALID_TENSOR_DATA', 'wrong_bytes'],
      [{ wrong_type: { dtype: 'F32', shape: [2], data: new Int32Array(2) } }, 'INVALID_TENSOR_DATA', 'wrong_type'],
      [
        { f16_from_f64: { dtype: 'F16', shape: [2], data: new Float64Array(2) } },
        'INVALID_TENSOR_DATA',
        'f16_from_f64',
      ],
      [{ bad_bool: { dtype: 'BOOL', shape: [2], data: new Uint8Array([0, 2]) } }, 'INVALID_TENSOR_DATA', 'bad_bool'],
      [{ bad_dtype: { dtype: 'F128' as DType, shape: [2], data: new Float32Array(2) } }, 'UNKNOWN_DTYPE', 'bad_dtype'],
      [{ bad_shape: { dtype: 'F32', shape: [-2], data: new Float32Array(2) } }, 'INVALID_SHAPE', 'bad_shape'],
      [{ frac_shape: { dtype: 'F32', shape: [1.5], data: new Float32Array(2) } }, 'INVALID_SHAPE', 'frac_shape'],
      [
        { huge: { dtype: 'F64', shape: [2 ** 30, 2 ** 30, 2 ** 30], data: new Float64Array(1) } },
        'INVALID_SHAPE',
        'huge',
      ],
      [
        { not_typed: { dtype: 'F32', shape: [2], data: [1, 2] as unknown as Float32Array } },
        'INVALID_TENSOR_DATA',
        'not_typed',
      ],
      [{ __metadata__: { dtype: 'F32', shape: [0], data: new Float32Array(0) } }, 'INVALID_ENTRY', '__metadata__'],
    ];
    for (const [tensors, code, name] of bad) {
      const e = await expectError(
        writeSafetensors(file, { ok: { dtype: 'U8', shape: [1], data: new Uint8Array(1) }, ...tensors }),
        code,
        file,
      );
      expect(e.message).toContain(name);
      expect(fs.readdirSync(dir)).toEqual([]);
    }
    await expectError(writeSafetensors(file, {}, { n: 1 as unknown as string }), 'INVALID_METADATA', file);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('replaces the target atomically and keeps the old file when a write fails', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'w-'));
    const file = path.join(dir, 'out.safetensors');
    await writeSafetensors(file, { v: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    const before = fs.readFileSync(file);
    const oldReader = await SafetensorsFile.open(file);
    await expectError(
      writeSafetensors(file, { v: { dtype: 'F32', shape: [2], data: new Float32Array([1]) } }),
      'INVALID_TENSOR_DATA',
      file,
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['out.safetensors']);

    await writeSafetensors(file, { v: { dtype: 'F32', shape: [2], data: new Float32Array([5, 6]) } });
    expect(fs.readdirSync(dir)).toEqual(['out.safetensors']);
    // rename, not rewrite in place: the reader opened before still sees the old, complete file
    expect(vals(await oldReader.read('v'))).toEqual([1]);
    await oldReader.close();
    const src = await openSafetensors(file);
    expect(vals(await src.read('v'))).toEqual([5, 6]);
    await src.close();
  });

  it('removes its temp file when the final rename fails', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'w-'));
    const target = path.join(dir, 'is-a-dir.safetensors');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    await expectError(
      writeSafetensors(target, { v: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }),
      'IO',
      target,
    );
    expect(fs.readdirSync(dir)).toEqual(['is-a-dir.safetensors']);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });

  it('reports an unwritable location as IO', async () => {
    const file = path.join(tmp, 'no', 'such', 'dir', 'x.safetensors');
    await expectError(writeSafetensors(file, {}), 'IO', file);
  });

  it('accepts raw bytes for every dtype and encodeTensorData output', async () => {
    const file = fresh();
    await writeSafetensors(file, {
      bf: { dtype: 'BF16', shape: [2], data: encodeTensorData('BF16', [1, -0.5]) },
      i64: { dtype: 'I64', shape: [2], data: encodeTensorData('I64', [1n, -(2n ** 63n)]) },
      buf: { dtype: 'F32', shape: [1], data: Buffer.from(new Float32Array([3]).buffer) },
    });
    const src = await openSafetensors(file);
    expect(vals(await src.read('bf'))).toEqual([1, -0.5]);
    expect(Array.from((await src.read('i64')) as BigInt64Array)).toEqual([1n, -(2n ** 63n)]);
    expect(vals(await src.read('buf'))).toEqual([3]);
    await src.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe('sharded checkpoints and openSafetensors', () => {
  async function makeSharded(dir: string, index: unknown = undefined): Promise<string> {
    fs.mkdirSync(dir, { recursive: true });
    await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), {
      'a.weight': { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      'b.weight': { dtype: 'BF16', shape: [1], data: new Float32Array([3]) },
    });
    await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), {
      'c.bias': { dtype: 'I64', shape: [1], data: new BigInt64Array([4n]) },
      unlisted: { dtype: 'U8', shape: [1], data: new Uint8Array([5]) },
    });
    const indexPath = path.join(dir, 'diffusion_pytorch_model.safetensors.index.json');
    const good = {
      metadata: { total_size: 18, format: 'pt' },
      weight_map: {
        'c.bias': 'model-00002-of-00002.safetensors',
        'a.weight': 'model-00001-of-00002.safetensors',
        'b.weight': 'model-00001-of-00002.safetensors',
      },
    };
    fs.writeFileSync(indexPath, typeof index === 'string' ? index : JSON.stringify(index ?? good));
    return indexPath;
  }

  it('reads tensors across shards through the index, the folder, or openSafetensors', async () => {
    const dir = path.join(tmp, 'sharded-good');
    const indexPath = await makeSharded(dir);
    for (const src of [
      await ShardedSafetensors.open(indexPath),
      await openSafetensors(indexPath),
      await openSafetensors(dir),
    ]) {
      expect(src).toBeInstanceOf(ShardedSafetensors);
      expect(src.path).toBe(indexPath);
      expect(src.metadata).toEqual({ total_size: '18', format: 'pt' });
      expect(src.names()).toEqual(['a.weight', 'b.weight', 'c.bias']);
      expect(src.has('unlisted')).toBe(false);
      expect(src.info('b.weight')).toEqual({ name: 'b.weight', dtype: 'BF16', shape: [1], dataOffsets: [8, 10] });
      expect(vals(await src.read('a.weight'))).toEqual([1, 2]);
      expect(vals(await src.read('b.weight'))).toEqual([3]);
      expect(Array.from((await src.read('c.bias')) as BigInt64Array)).toEqual([4n]);
      expect(Array.from(await src.readRaw('b.weight'))).toEqual([0x40, 0x40]);
      await expectError(() => src.info('unlisted'), 'TENSOR_NOT_FOUND', indexPath);
      await expectError(src.read('nope'), 'TENSOR_NOT_FOUND', indexPath);
      await expectError(src.readRaw('nope'), 'TENSOR_NOT_FOUND', indexPath);
      await src.close();
    }
  });

  it('accepts an index without metadata', async () => {
    const indexPath = await makeSharded(path.join(tmp, 'sharded-nometa'), {
      weight_map: { 'a.weight': 'model-00001-of-00002.safetensors' },
    });
    const src = await openSafetensors(indexPath);
    expect(src.metadata).toEqual({});
    expect(src.names()).toEqual(['a.weight']);
    await src.close();
  });

  it('INVALID_INDEX: not JSON, wrong shape, duplicate keys, shard names escaping the folder', async () => {
    const cases: unknown[] = [
      '{"weight_map": ',
      '\xff',
      [],
      'null',
      '3',
      { metadata: {} },
      { weight_map: [] },
      { weight_map: null },
      { weight_map: { a: 3 } },
      { weight_map: { a: '' } },
      { weight_map: { a: '../model-00001-of-00002.safetensors' } },
      { weight_map: { a: '..' } },
      { weight_map: { a: 'sub/model-00001-of-00002.safetensors' } },
      { weight_map: { a: '/etc/passwd' } },
      { weight_map: { a: 'x\\model.safetensors' } },
      { weight_map: {}, metadata: 'x' },
      '{"weight_map": {"a.weight": "model-00001-of-00002.safetensors", "a.weight": "model-00002-of-00002.safetensors"}}',
    ];
    let i = 0;
    for (const c of cases) {
      const indexPath = await makeSharded(path.join(tmp, `sharded-bad-${i++}`), c);
      await expectError(ShardedSafetensors.open(indexPath), 'INVALID_INDEX', indexPath);
    }
  });

  it('MISSING_SHARD names the shard and the index', async () => {
    const indexPath = await makeSharded(path.join(tmp, 'sharded-missing'), {
      weight_map: { a: 'model-00003-of-00003.safetensors' },
    });
    const e = await expectError(openSafetensors(indexPath), 'MISSING_SHARD', indexPath);
    expect(e.message).toContain('model-00003-of-00003.safetensors');
  });

  it('TENSOR_NOT_FOUND when a mapped tensor is not in its shard, naming both', async () => {
    const indexPath = await makeSharded(path.join(tmp, 'sharded-absent'), {
      weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'c.bias': 'model-00001-of-00002.safetensors' },
    });
    const e = await expectError(openSafetensors(indexPath), 'TENSOR_NOT_FOUND', indexPath);
    expect(e.message).toContain('"c.bias"');
    expect(e.message).toContain('model-00001-of-00002.safetensors');
  });

  it('a corrupt shard reports its own file', async () => {
    const dir = path.join(tmp, 'sharded-corrupt');
    const indexPath = await makeSharded(dir);
    const shard = path.join(dir, 'model-00002-of-00002.safetensors');
    fs.truncateSync(shard, 5);
    await expectError(openSafetensors(indexPath), 'HEADER_TOO_SMALL', shard);
  });

  it('openSafetensors: a file, a folder with one file, and folders that are ambiguous or empty', async () => {
    const dir = path.join(tmp, 'single');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'diffusion_pytorch_model.safetensors');
    await writeSafetensors(file, { x: { dtype: 'F32', shape: [1], data: new Float32Array([7]) } }, { format: 'pt' });
    fs.writeFileSync(path.join(dir, 'config.json'), '{}');
    for (const p of [file, dir]) {
      const src = await openSafetensors(p);
      expect(src).toBeInstanceOf(SafetensorsFile);
      expect(src.path).toBe(file);
      expect(src.metadata).toEqual({ format: 'pt' });
      expect(vals(await src.read('x'))).toEqual([7]);
      await src.close();
    }
    const empty = path.join(tmp, 'empty-dir');
    fs.mkdirSync(empty);
    const e1 = await expectError(openSafetensors(empty), 'NO_CHECKPOINT', empty);
    expect(e1.message).toContain('none');
    fs.copyFileSync(file, path.join(dir, 'diffusion_pytorch_model.fp16.safetensors'));
    const e2 = await expectError(openSafetensors(dir), 'NO_CHECKPOINT', dir);
    expect(e2.message).toContain('diffusion_pytorch_model.fp16.safetensors');
    expect(e2.message).toContain('"diffusion_pytorch_model.safetensors"');
    const two = path.join(tmp, 'sharded-two-indexes');
    await makeSharded(two);
    fs.writeFileSync(path.join(two, 'other.safetensors.index.json'), '{}');
    const e3 = await expectError(openSafetensors(two), 'NO_CHECKPOINT', two);
    expect(e3.message).toContain('other.safetensors.index.json');
  });
});
