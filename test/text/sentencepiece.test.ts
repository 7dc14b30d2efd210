/**
 * SentencePiece Unigram against `SentencePieceProcessor.encode` (fixtures `t5_tokenizer`, nmt_nfkc, and
 * `sentencepiece_upstream_model`, google/sentencepiece's own nfkc test model): every string's ids
 * exactly. Plus the model facts, unknown merging, byte fallback / user-defined pieces on a hand-built
 * model, decoding, speed, and bad model files (typed error naming the file, no hang, no huge buffer).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Mask2DiTError } from '../../src/errors.js';
import { PieceType, SentencePieceModel, TokenizerFileError, parseModelProto } from '../../src/text/sentencepiece.js';
import { fixtureJson, fixturePath, loadFixture, numbers } from '../helpers/fixtures.js';

const strings = fixtureJson<string[]>('t5_tokenizer', 'strings.json');

interface Meta {
  examples: Record<string, { string: string; sp_pieces: string[]; sp_ids: number[] }>;
}

/** Rows where `encode` differs from the fixture's ragged `sp.ids`, described for the failure message. */
async function mismatches(caseName: string, sp: SentencePieceModel): Promise<string[]> {
  const io = await loadFixture(caseName);
  const ids = numbers(io, 'sp.ids');
  const offsets = numbers(io, 'sp.offsets');
  expect(offsets).toHaveLength(strings.length + 1);
  expect(offsets[strings.length]).toBe(ids.length);
  const bad: string[] = [];
  strings.forEach((s, i) => {
    const expected = ids.slice(offsets[i]!, offsets[i + 1]!);
    const got = sp.encodePieces(s);
    if (got.map((p) => p.id).join() !== expected.join()) {
      bad.push(
        `row ${i} ${JSON.stringify(s)}\n  expected ${expected.map((id) => sp.idToPiece(id)).join('|')} [${expected.join(',')}]\n  actual   ${got.map((p) => p.piece).join('|')} [${got.map((p) => p.id).join(',')}]`,
      );
    }
  });
  return bad;
}

describe('SentencePieceModel parity', () => {
  const t5 = SentencePieceModel.fromFile(fixturePath('t5_tokenizer', 'spiece.model'));
  const upstream = SentencePieceModel.fromFile(fixturePath('sentencepiece_upstream_model', 'test_model.model'));

  test('t5_tokenizer/spiece.model: sp.ids of all 300 strings exactly', async () => {
    expect(strings).toHaveLength(300);
    expect(await mismatches('t5_tokenizer', t5)).toEqual([]);
  });

  test('sentencepiece_upstream_model/test_model.model (nfkc, unk 0 / bos 1 / eos 2): all 300 strings exactly', async () => {
    expect(await mismatches('sentencepiece_upstream_model', upstream)).toEqual([]);
  });

  test('the examples of meta.json, piece by piece', () => {
    const meta = fixtureJson<Meta>('t5_tokenizer', 'meta.json');
    for (const ex of Object.values(meta.examples)) {
      const got = t5.encodePieces(ex.string);
      expect(got.map((p) => p.piece)).toEqual(ex.sp_pieces);
      expect(got.map((p) => p.id)).toEqual(ex.sp_ids);
    }
  });

  test('model facts: T5 specials, Unigram, nmt_nfkc; the upstream model has its own ids', () => {
    expect(t5.vocabSize).toBe(2000);
    expect([0, 1, 2].map((id) => t5.idToPiece(id))).toEqual(['<pad>', '</s>', '<unk>']);
    expect(t5.unkId).toBe(2);
    expect(t5.isControl(0) && t5.isControl(1) && t5.isUnknown(2)).toBe(true);
    expect(t5.pieceToId('</s>')).toBe(1);
    expect(t5.pieceToId('\u2581a')).toBe(9);
    expect(t5.pieceToId('no such piece')).toBe(2);
    expect(t5.normalizer.spec.name).toBe('nmt_nfkc');
    expect(t5.trainerSpec).toMatchObject({
      modelType: 1,
      unkId: 2,
      eosId: 1,
      padId: 0,
      bosId: -1,
      byteFallback: false,
    });
    expect(upstream.vocabSize).toBe(1000);
    expect(upstream.unkId).toBe(0);
    expect([1, 2].map((id) => upstream.idToPiece(id))).toEqual(['<s>', '</s>']);
    expect(upstream.normalizer.spec.name).toBe('nfkc');
    expect(() => t5.idToPiece(2000)).toThrow(Mask2DiTError);
  });

  test('normalisation: spaces collapse, leading/trailing spaces go, one dummy ▁; all-space text is empty', () => {
    expect(t5.encode('  hello    world  ')).toEqual(t5.encode('hello world'));
    expect(t5.encode('')).toEqual([]);
    expect(t5.encode(' \t  ')).toEqual([]);
    expect(t5.encodePieces('hello')[0]!.piece.startsWith('\u2581')).toBe(true);
  });

  test('consecutive unknown characters are ONE <unk> holding their text', () => {
    const got = t5.encodePieces('a 東京タワー b');
    expect(got.map((p) => p.id)).toEqual([t5.pieceToId('\u2581a'), t5.pieceToId('\u2581'), 2, t5.pieceToId('\u2581b')]);
    expect(got[2]!.piece).toBe('東京タワー');
  });

  test('decode: ▁ → space, dummy prefix dropped, <unk> → " ⁇ "', () => {
    const text = 'A cat walks on the grass, realistic.';
    expect(t5.decode(t5.encode(text))).toBe(text);
    expect(t5.decode([t5.pieceToId('\u2581a'), 2, 1])).toBe('a \u2047 ');
  });

  test('300 strings encode well under a second (the piece trie is built once)', () => {
    const t0 = performance.now();
    for (const s of strings) t5.encode(s);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

// ───────── a hand-built model: protobuf writer for the few fields the tests need ─────────

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n < 0 ? 2n ** 64n + BigInt(n) : BigInt(n);
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return out;
}
const field = (no: number, wire: number) => varint(no * 8 + wire);
const bytesField = (no: number, b: number[]) => [...field(no, 2), ...varint(b.length), ...b];
const strField = (no: number, s: string) => bytesField(no, [...new TextEncoder().encode(s)]);
const intField = (no: number, v: number) => [...field(no, 0), ...varint(v)];
function floatField(no: number, v: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...field(no, 5), ...b];
}

function buildModel(pieces: [string, number, number][], trainer: number[], normalizer: number[]): Uint8Array {
  const out: number[] = [];
  for (const [p, score, type] of pieces)
    out.push(...bytesField(1, [...strField(1, p), ...floatField(2, score), ...intField(3, type)]));
  out.push(...bytesField(2, trainer), ...bytesField(3, normalizer));
  return Uint8Array.from(out);
}

const identity = [...strField(1, 'identity'), ...intField(3, 1), ...intField(4, 1), ...intField(5, 1)];
const bytePieces = Array.from({ length: 256 }, (_, b): [string, number, number] => [
  `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
  0,
  PieceType.BYTE,
]);

describe('SentencePieceModel on a hand-built model', () => {
  const basePieces: [string, number, number][] = [
    ['<unk>', 0, PieceType.UNKNOWN],
    ['<s>', 0, PieceType.CONTROL],
    ['</s>', 0, PieceType.CONTROL],
    ['\u2581', -2, PieceType.NORMAL],
    ['a', -3, PieceType.NORMAL],
    ['b', -3, PieceType.NORMAL],
    ['ab', -4, PieceType.NORMAL],
    ['\u2581ab', -4.5, PieceType.NORMAL],
    ['<sep>', 0, PieceType.USER_DEFINED],
    ['bb', -1, PieceType.UNUSED],
  ];

  test('Viterbi picks the best total score; unused pieces are never used; user-defined pieces always win', () => {
    const sp = SentencePieceModel.fromBytes(buildModel(basePieces, [...intField(3, 1)], identity), 'tiny.model');
    expect(sp.encodePieces('ab').map((p) => p.piece)).toEqual(['\u2581ab']); // −4.5 beats ▁ + ab (−6)
    expect(sp.encodePieces('bb').map((p) => p.piece)).toEqual(['\u2581', 'b', 'b']); // 'bb' is UNUSED
    expect(sp.encodePieces('a<sep>b').map((p) => p.piece)).toEqual(['\u2581', 'a', '<sep>', 'b']);
    // unknown 'x', 'y' merge into one <unk>; score min − 10 makes a known piece always preferable
    expect(sp.encodePieces('xy a').map((p) => [p.piece, p.id])).toEqual([
      ['\u2581', 3],
      ['xy', 0],
      ['\u2581', 3],
      ['a', 4],
    ]);
  });

  test('byte fallback: unknown characters become <0xXX> pieces, decode puts the bytes back', () => {
    const sp = SentencePieceModel.fromBytes(
      buildModel([...basePieces, ...bytePieces], [...intField(3, 1), ...intField(35, 1)], identity),
      'bytes.model',
    );
    const got = sp.encodePieces('aé');
    expect(got.map((p) => p.piece)).toEqual(['\u2581', 'a', '<0xC3>', '<0xA9>']);
    expect(sp.decode(got.map((p) => p.id))).toBe('aé');
  });

  test('a model with another model_type (BPE) is refused, naming the file and what is supported', () => {
    const bpe = buildModel(basePieces, [...intField(3, 2)], identity);
    expect(() => SentencePieceModel.fromBytes(bpe, 'bpe.model')).toThrow(
      /bpe\.model: .*model_type is BPE; only Unigram/,
    );
  });

  test('no <unk>, duplicate pieces, missing specs: typed errors naming the file', () => {
    const noUnk = buildModel(basePieces.slice(1), [], identity);
    expect(() => SentencePieceModel.fromBytes(noUnk, 'a.model')).toThrow(/a\.model: no unknown piece/);
    const dup = buildModel([...basePieces, ['a', -1, PieceType.NORMAL]], [], identity);
    expect(() => SentencePieceModel.fromBytes(dup, 'b.model')).toThrow(/b\.model: piece "a" is defined twice/);
    const noSpecs = Uint8Array.from(bytesField(1, [...strField(1, '<unk>'), ...intField(3, 2)]));
    expect(() => parseModelProto(noSpecs, 'c.model')).toThrow(/c\.model: .*truncated or incomplete/);
  });
});

describe('bad model files', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-spm-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function expectRefused(file: string, pattern: RegExp): void {
    let err: unknown;
    const t0 = performance.now();
    try {
      SentencePieceModel.fromFile(file);
    } catch (e) {
      err = e;
    }
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(err).toBeInstanceOf(TokenizerFileError);
    expect((err as TokenizerFileError).file).toBe(file);
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(pattern);
  }

  test('not a protobuf (a JSON file), empty, truncated, a lying length field, missing', () => {
    const json = path.join(dir, 'json.model');
    fs.writeFileSync(json, JSON.stringify({ vocab: ['a', 'b'], type: 'unigram' }));
    expectRefused(json, /not a SentencePiece model \(expected a serialized ModelProto/);

    const empty = path.join(dir, 'empty.model');
    fs.writeFileSync(empty, '');
    expectRefused(empty, /no pieces/);

    const real = fs.readFileSync(fixturePath('t5_tokenizer', 'spiece.model'));
    const truncated = path.join(dir, 'truncated.model');
    fs.writeFileSync(truncated, real.subarray(0, 1001));
    expectRefused(truncated, /truncated/);
    const tail = path.join(dir, 'tail-cut.model');
    fs.writeFileSync(tail, real.subarray(0, real.length - 7));
    expectRefused(tail, /truncated/);

    const lying = path.join(dir, 'lying.model'); // field 1, length 2^35 − 1, three bytes of data
    fs.writeFileSync(lying, Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    expectRefused(lying, /truncated: a field of 34359738367 bytes/);

    const badVarint = path.join(dir, 'varint.model');
    fs.writeFileSync(badVarint, Uint8Array.from([0x38, ...Array<number>(12).fill(0xff)])); // field 7 (skipped), a varint of 11+ bytes
    expectRefused(badVarint, /malformed varint/);

    expectRefused(path.join(dir, 'missing.model'), /cannot read the SentencePiece model \(ENOENT\)/);
  });
});
