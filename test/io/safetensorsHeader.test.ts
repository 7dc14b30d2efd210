/** The header module on its own: the bounds it puts on numbers read from an untrusted file, without touching disk. */
import { describe, expect, it } from '@jest/globals';
import { SafetensorsError, type SafetensorsErrorCode } from '../../src/errors.js';
import * as facade from '../../src/io/safetensors.js';
import { MAX_HEADER_SIZE, headerLength, parseHeader, parseIndex } from '../../src/io/safetensorsHeader.js';

function codeOf(f: () => unknown): SafetensorsErrorCode | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return (e as SafetensorsError).code;
  }
  return undefined;
}

/** An 8-byte little-endian prefix for `n`, inside a larger buffer at a non-zero offset. */
function prefixAt(n: bigint): Uint8Array {
  const buf = Buffer.alloc(24, 0xff);
  buf.writeBigUInt64LE(n, 8);
  return new Uint8Array(buf.buffer, buf.byteOffset + 8, 8);
}

describe('headerLength', () => {
  it('reads the prefix where it lies, and bounds it by the cap and the file size', () => {
    expect(headerLength('f', prefixAt(16n), 24)).toBe(16);
    expect(codeOf(() => headerLength('f', prefixAt(17n), 24))).toBe('INVALID_HEADER_LENGTH');
    expect(codeOf(() => headerLength('f', prefixAt(BigInt(MAX_HEADER_SIZE) + 1n), 2 ** 40))).toBe('HEADER_TOO_LARGE');
    expect(codeOf(() => headerLength('f', prefixAt(2n ** 64n - 1n), 2 ** 40))).toBe('HEADER_TOO_LARGE');
  });
});

describe('parseHeader', () => {
  const bytes = (s: string) => Buffer.from(s, 'utf8');
  it('bounds every tensor by the data area actually present', () => {
    const h = bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
    expect(parseHeader('f', h, 8).tensors.map((t) => t.name)).toEqual(['a']);
    expect(codeOf(() => parseHeader('f', h, 4))).toBe('TRUNCATED');
    expect(codeOf(() => parseHeader('f', h, 9))).toBe('METADATA_INCOMPLETE_BUFFER');
    expect(
      codeOf(() =>
        parseHeader('f', bytes('{"a":{"dtype":"F32","shape":[9007199254740991,2],"data_offsets":[0,8]}}'), 8),
      ),
    ).toBe('TENSOR_INVALID_INFO');
  });
});

describe('parseIndex', () => {
  const json = (o: unknown) => Buffer.from(JSON.stringify(o), 'utf8');
  it('groups tensors by shard and keeps metadata numbers as JSON text', () => {
    const r = parseIndex('i.json', json({ metadata: { total_size: 12 }, weight_map: { a: 's1', b: 's2', c: 's1' } }));
    expect(r.metadata).toEqual({ total_size: '12' });
    expect([...r.byShard]).toEqual([
      ['s1', ['a', 'c']],
      ['s2', ['b']],
    ]);
  });

  it('refuses shard names that are not plain file names, before any file is opened', () => {
    for (const shard of ['', '.', '..', '../x', 'a/b', 'a\\b', 'a\0b'])
      expect(codeOf(() => parseIndex('i.json', json({ weight_map: { a: shard } })))).toBe('INVALID_INDEX');
    expect(codeOf(() => parseIndex('i.json', Buffer.from('['.repeat(200) + ']'.repeat(200))))).toBe('INVALID_INDEX');
  });
});

describe('src/io/safetensors.ts', () => {
  it('re-exports the public names and none of the internal helpers', () => {
    expect(Object.keys(facade).sort()).toEqual(
      [
        'DTYPES',
        'DTYPE_SIZE',
        'MAX_HEADER_SIZE',
        'SafetensorsFile',
        'ShardedSafetensors',
        'bf16ToF32',
        'encodeTensorData',
        'f16ToF32',
        'f32ToBf16',
        'f32ToF16',
        'findDuplicateKey',
        'nestsDeeperThan',
        'openSafetensors',
        'writeSafetensors',
      ].sort(),
    );
  });
});
