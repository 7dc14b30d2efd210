/**
 * Fuzz: mutate valid safetensors files (bit flips, byte overwrites, truncation, extension, header
 * edits of numbers / dtypes / keys / values, duplicate keys, header-length prefixes) and check that
 * opening and reading every tensor either succeeds or throws a SafetensorsError — never another
 * exception, a crash or a hang. Deterministic: a fixed seed (FUZZ_SEED), FUZZ_CASES cases (default 10,000).
 * A failure prints each bad case's number, seed and mutation, enough to replay it alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SafetensorsError } from '../../src/errors.js';
import {
  DTYPE_SIZE,
  SafetensorsFile,
  writeSafetensors,
  type DType,
  type TensorToWrite,
} from '../../src/io/safetensors.js';

const CASES = Number(process.env['FUZZ_CASES'] ?? 10_000);
const SEED = Number(process.env['FUZZ_SEED'] ?? 0x5afe7e45);

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

interface Base {
  label: string;
  bytes: Buffer;
  headerLen: number;
  header: string;
}

function splitFile(label: string, bytes: Buffer): Base {
  const headerLen = Number(bytes.readBigUInt64LE(0));
  return { label, bytes, headerLen, header: bytes.subarray(8, 8 + headerLen).toString('utf8') };
}

/** A file with this header text and data (prefix = the header's byte length unless given). */
function assemble(header: string | Buffer, data: Buffer, prefix?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(prefix ?? BigInt(h.length));
  return Buffer.concat([p, h, data]);
}

const INTERESTING_NUMBERS = [
  '0',
  '1',
  '-1',
  '2',
  '3',
  '4',
  '7',
  '8',
  '9',
  '16',
  '255',
  '256',
  '65535',
  '4294967295',
  '4294967296',
  '9007199254740991',
  '9007199254740992',
  '18446744073709551615',
  '1e400',
  '-1e400',
  '1.5',
  '-0',
  '0.0',
  '1e3',
  '100000000',
  '100000001',
  '2147483648',
  '-9007199254740993',
];
const DTYPE_STRINGS = [
  'F64',
  'F32',
  'F16',
  'BF16',
  'I64',
  'I32',
  'I16',
  'I8',
  'U8',
  'BOOL',
  'U16',
  'U32',
  'U64',
  'F8_E4M3',
  'f32',
  '',
  'F',
  'BF16 ',
  '\\u0046\\u0033\\u0032',
  '__proto__',
];
const JSON_SNIPPETS = [
  'null',
  'true',
  'false',
  '0',
  '-1',
  '1e999',
  '""',
  '"x"',
  '[]',
  '{}',
  '[0]',
  '[0,0]',
  '[1,0]',
  '[0,4]',
  '[[0]]',
  '{"dtype":"F32","shape":[],"data_offsets":[0,4]}',
  '{"a":"b"}',
  '{"__proto__":{}}',
  '[null,null]',
  '"\\ud800"',
  '[9007199254740993,9007199254740994]',
  '{"dtype":"U8","shape":[0],"data_offsets":[0,0]}',
];

type Mutator = (rng: Rng, base: Base) => { bytes: Buffer; what: string };

/** Header text edits, then reassembled with a consistent (or, sometimes, stale) length prefix. */
function headerEdit(edit: (rng: Rng, header: string) => { header: string; what: string } | undefined): Mutator {
  return (rng, base) => {
    const data = base.bytes.subarray(8 + base.headerLen);
    const r = edit(rng, base.header);
    if (r === undefined) return { bytes: base.bytes, what: 'header edit (no-op)' };
    let h = r.header;
    if (rng.chance(0.5)) h += ' '.repeat((8 - (Buffer.byteLength(h) % 8)) % 8);
    const stale = rng.chance(0.1);
    return {
      bytes: assemble(h, data, stale ? BigInt(base.headerLen) : undefined),
      what: `${r.what}${stale ? ' (stale length prefix)' : ''}`,
    };
  };
}

/** [start, end) of every match of `re` in s. */
function spans(s: string, re: RegExp): [number, number, string][] {
  const out: [number, number, string][] = [];
  for (const m of s.matchAll(re)) out.push([m.index, m.index + m[0].length, m[0]]);
  return out;
}

const MUTATORS: [string, Mutator][] = [
  [
    'bit flips',
    (rng, base) => {
      const b = Buffer.from(base.bytes);
      const n = 1 + rng.int(8);
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        // mostly in the prefix and header, where the validation lives
        const pos = rng.chance(0.8) ? rng.int(Math.min(b.length, 8 + base.headerLen)) : rng.int(b.length);
        b[pos] = b[pos]! ^ (1 << rng.int(8));
        at.push(pos);
      }
      return { bytes: b, what: `bit flips at ${at.join(',')}` };
    },
  ],
  [
    'byte overwrites',
    (rng, base) => {
      const b = Buffer.from(base.bytes);
      const n = 1 + rng.int(6);
      const at: string[] = [];
      for (let i = 0; i < n; i++) {
        const pos = rng.chance(0.8) ? rng.int(Math.min(b.length, 8 + base.headerLen)) : rng.int(b.length);
        const v = rng.chance(0.5)
          ? rng.pick([
              0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x39, 0x2d, 0xff, 0xc3, 0x80, 0xed, 0x20,
            ])
          : rng.int(256);
        b[pos] = v;
        at.push(`${pos}=${v}`);
      }
      return { bytes: b, what: `byte overwrites ${at.join(',')}` };
    },
  ],
  [
    'truncation',
    (rng, base) => {
      const len = rng.chance(0.3) ? rng.int(Math.min(base.bytes.length, 16)) : rng.int(base.bytes.length);
      return { bytes: base.bytes.subarray(0, len), what: `truncate to ${len}` };
    },
  ],
  [
    'extension',
    (rng, base) => {
      const extra = Buffer.alloc(1 + rng.int(64));
      for (let i = 0; i < extra.length; i++) extra[i] = rng.int(256);
      return { bytes: Buffer.concat([base.bytes, extra]), what: `append ${extra.length} bytes` };
    },
  ],
  [
    'numbers in the header',
    headerEdit((rng, h) => {
      const nums = spans(h, /-?\d+(\.\d+)?([eE][+-]?\d+)?/g);
      if (nums.length === 0) return undefined;
      let out = h;
      const edits: string[] = [];
      for (let k = 1 + rng.int(2); k > 0; k--) {
        const cur = spans(out, /-?\d+(\.\d+)?([eE][+-]?\d+)?/g);
        const [s, e, old] = rng.pick(cur);
        const v = rng.chance(0.6)
          ? rng.pick(INTERESTING_NUMBERS)
          : String(Number(old) + rng.pick([-8, -4, -2, -1, 1, 2, 4, 8]));
        out = out.slice(0, s) + v + out.slice(e);
        edits.push(`${old}→${v}@${s}`);
      }
      return { header: out, what: `numbers ${edits.join(',')}` };
    }),
  ],
  [
    'dtype strings',
    headerEdit((rng, h) => {
      const ds = spans(h, /"dtype":"[^"]*"/g);
      if (ds.length === 0) return undefined;
      const [s, e, old] = rng.pick(ds);
      const v = rng.pick(DTYPE_STRINGS);
      return { header: `${h.slice(0, s)}"dtype":"${v}"${h.slice(e)}`, what: `dtype ${old} → ${v}` };
    }),
  ],
  [
    'duplicate keys',
    headerEdit((rng, h) => {
      const obj = JSON.parse(h) as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (keys.length === 0) return undefined;
      const k = rng.pick(keys);
      const kind = rng.int(4);
      if (kind === 0) {
        // a second copy of an entry, same offsets
        return {
          header: `{${JSON.stringify(k)}:${JSON.stringify(obj[k])},${h.trimEnd().slice(1)}`,
          what: `duplicate entry ${JSON.stringify(k)}`,
        };
      }
      if (kind === 1) {
        // the same key, escaped differently
        const escaped = [...k]
          .map((c) => (c.length === 1 && rng.chance(0.5) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c))
          .join('');
        return {
          header: `{"${escaped}":${JSON.stringify(obj[k])},${h.trimEnd().slice(1)}`,
          what: `escaped duplicate of ${JSON.stringify(k)}`,
        };
      }
      if (kind === 2) {
        // rename one key to another existing key
        const other = rng.pick(keys);
        const at = h.indexOf(`${JSON.stringify(k)}:`);
        if (at < 0) return undefined;
        return {
          header: h.slice(0, at) + JSON.stringify(other) + h.slice(at + JSON.stringify(k).length),
          what: `rename ${JSON.stringify(k)} → ${JSON.stringify(other)}`,
        };
      }
      // a duplicated field inside an entry
      const f = rng.pick(['"dtype":"F32",', '"shape":[],', '"data_offsets":[0,0],', '"format":"pt",']);
      const at = h.indexOf('{', 1);
      if (at < 0) return undefined;
      return { header: h.slice(0, at + 1) + f + h.slice(at + 1), what: `field ${f} inserted at ${at + 1}` };
    }),
  ],
  [
    'random JSON replacements',
    headerEdit((rng, h) => {
      // replace a value after a ':' or inside an array with a snippet
      const vals = spans(h, /(?<=[:,[])\s*("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|\[[^\][]*\]|\{[^{}]*\}|true|false|null)/g);
      if (vals.length === 0) return undefined;
      const [s, e, old] = rng.pick(vals);
      const v = rng.pick(JSON_SNIPPETS);
      return { header: h.slice(0, s) + v + h.slice(e), what: `value ${old.slice(0, 40)} → ${v}` };
    }),
  ],
  [
    'structural header edits',
    headerEdit((rng, h) => {
      const kind = rng.int(5);
      const t = h.trimEnd();
      if (kind === 0) return { header: t.slice(0, rng.int(t.length)), what: 'header cut short' };
      if (kind === 1) return { header: `[${t}]`, what: 'header wrapped in an array' };
      if (kind === 2)
        return {
          header: t.replace('{', '{"__metadata__":' + rng.pick(JSON_SNIPPETS) + ','),
          what: 'metadata replaced/added',
        };
      if (kind === 3) {
        const i = rng.int(t.length);
        return {
          header:
            t.slice(0, i) +
            rng.pick(['{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\u00e9', '\ud83d\ude00']) +
            t.slice(i),
          what: `character inserted at ${i}`,
        };
      }
      const i = rng.int(t.length);
      return { header: t.slice(0, i) + t.slice(i + 1 + rng.int(8)), what: `characters deleted at ${i}` };
    }),
  ],
  [
    'header length prefix',
    (rng, base) => {
      const b = Buffer.from(base.bytes);
      const kind = rng.int(4);
      let n: bigint;
      if (kind === 0)
        n = BigInt.asUintN(64, BigInt(rng.int(2 ** 32)) * BigInt(rng.int(2 ** 32)) + BigInt(rng.int(2 ** 32)));
      else if (kind === 1)
        n = rng.pick([0n, 1n, 2n, 100_000_000n, 100_000_001n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n]);
      else if (kind === 2) n = BigInt(b.length - 8 + rng.int(17) - 8);
      else n = BigInt(Math.max(0, base.headerLen + rng.int(17) - 8));
      if (n < 0n) n = 0n;
      b.writeBigUInt64LE(n);
      return { bytes: b, what: `header length ${n}` };
    },
  ],
];

// ---------------------------------------------------------------------------------------------

let tmp: string;
const bases: Base[] = [];
const expected = new Map<string, Map<string, Uint8Array>>();

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st-fuzz-'));
  const rng = new Rng(SEED ^ 0x1234);
  const specs: Record<string, TensorToWrite>[] = [];
  const dt = (d: DType, shape: number[]): TensorToWrite => {
    const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[d];
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = d === 'BOOL' ? rng.int(2) : rng.int(256);
    return { dtype: d, shape, data };
  };
  specs.push({ w: dt('F32', [3, 4]), b: dt('F32', [4]), t: dt('I64', [2]) });
  specs.push({
    'transformer_blocks.0.attn1.to_q.weight': dt('BF16', [4, 4]),
    'norm.bias': dt('F16', [4]),
    αβγ: dt('F64', []),
    empty: dt('I32', [0, 3]),
    flag: dt('BOOL', [5]),
  });
  specs.push({ a: dt('I8', [3]), 'a\\"': dt('I16', [2, 1]), '😀': dt('U8', [7]), z: dt('F32', [1, 1, 1, 2]) });
  specs.push({});
  const metas: (Record<string, string> | undefined)[] = [
    { format: 'pt' },
    undefined,
    { format: 'pt', note: 'ünïcode "q"' },
    { format: 'pt' },
  ];
  for (const [i, s] of specs.entries()) {
    const file = path.join(tmp, `base-${i}.safetensors`);
    await writeSafetensors(file, s, metas[i]);
    bases.push(splitFile(`writer-${i}`, fs.readFileSync(file)));
    expected.set(`writer-${i}`, new Map(Object.entries(s).map(([k, v]) => [k, v.data as Uint8Array])));
  }
  // a reference-written file too (name-ordered, __metadata__ last), if the fixtures are there
  const fixture = path.resolve(process.cwd(), 'test/fixtures/scheduler_flow_match_euler_shift1/io.safetensors');
  if (fs.existsSync(fixture)) bases.push(splitFile('fixture', fs.readFileSync(fixture)));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Opens and reads everything; returns the error code or 'ok'. Anything but a SafetensorsError is rethrown. */
async function exercise(file: string): Promise<string> {
  let src: SafetensorsFile | undefined;
  try {
    src = await SafetensorsFile.open(file);
    for (const name of src.names()) {
      const info = src.info(name);
      const raw = await src.readRaw(name);
      if (raw.length !== info.dataOffsets[1] - info.dataOffsets[0])
        throw new Error(`readRaw(${name}) returned ${raw.length} bytes`);
      const data = await src.read(name);
      const numel = info.shape.reduce((a, b) => a * b, 1);
      if (data.length !== numel)
        throw new Error(`read(${name}) returned ${data.length} elements, shape ${JSON.stringify(info.shape)}`);
    }
    return 'ok';
  } catch (e) {
    if (e instanceof SafetensorsError) return e.code;
    throw e;
  } finally {
    await src?.close();
  }
}

describe('safetensors fuzz', () => {
  it('unmutated base files read back correctly', async () => {
    for (const base of bases) {
      const file = path.join(tmp, 'check.safetensors');
      fs.writeFileSync(file, base.bytes);
      expect(await exercise(file)).toBe('ok');
      const want = expected.get(base.label);
      if (want === undefined) continue;
      const src = await SafetensorsFile.open(file);
      expect(new Set(src.names())).toEqual(new Set(want.keys()));
      for (const [name, bytes] of want)
        expect(Buffer.from(await src.readRaw(name)).equals(Buffer.from(bytes))).toBe(true);
      await src.close();
    }
  });

  it(`${CASES} mutated files: open + read either succeed or throw SafetensorsError`, async () => {
    const file = path.join(tmp, 'case.safetensors');
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    const started = Date.now();
    for (let c = 0; c < CASES; c++) {
      const seed = (SEED + Math.imul(c, 0x9e3779b1)) >>> 0;
      const rng = new Rng(seed);
      const base = rng.pick(bases);
      const rounds = rng.chance(0.15) ? 2 : 1;
      let cur = base;
      const whats: string[] = [];
      for (let r = 0; r < rounds; r++) {
        const [kind, mutate] = rng.pick(MUTATORS);
        let out: { bytes: Buffer; what: string };
        try {
          out = mutate(rng, cur);
        } catch {
          out = { bytes: cur.bytes, what: 'mutator skipped' }; // e.g. a second round on an unparsable header
        }
        whats.push(`${kind}: ${out.what}`);
        try {
          cur = out.bytes.length >= 8 ? splitFile(base.label, out.bytes) : { ...cur, bytes: out.bytes };
          if (cur.headerLen > out.bytes.length) cur = { ...cur, bytes: out.bytes };
        } catch {
          cur = { ...cur, bytes: out.bytes };
        }
      }
      fs.writeFileSync(file, cur.bytes);
      try {
        const outcome = await exercise(file);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      } catch (e) {
        failures.push(
          `case ${c} (seed ${seed}, base ${base.label}): ${whats.join(' | ')} → ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
        );
        if (failures.length >= 20) break;
      }
    }
    const summary = [...outcomes.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    process.stderr.write(`safetensors fuzz: ${CASES} cases in ${Date.now() - started} ms (seed ${SEED}): ${summary}\n`);
    if (failures.length > 0) throw new Error(`non-SafetensorsError outcomes:\n${failures.join('\n')}`);
    // the mutations reach deep into the validation, not just the first check
    expect(outcomes.get('ok') ?? 0).toBeGreaterThan(0);
    expect(outcomes.size).toBeGreaterThanOrEqual(CASES >= 2000 ? 12 : 3);
  });
});
