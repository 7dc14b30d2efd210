/**
 * transformers' T5Tokenizer behaviour, exact: `t5_tokenizer` (legacy padded/truncated rows at
 * max_length 32, untruncated rows, legacy=False rows) and `cogvideox_encode_prompt` (the ids every
 * pipeline call passed to T5). Plus loading from folders (tokenizer_config.json, special tokens), the
 * unk/truncation report, decoding, speed, and bad folders (typed errors naming the file).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ConfigError } from '../../src/errors.js';
import { SentencePieceModel, TokenizerFileError } from '../../src/text/sentencepiece.js';
import { T5Tokenizer } from '../../src/text/t5Tokenizer.js';
import { fixtureJson, fixturePath, loadFixture, numbers, type FixtureTensor } from '../helpers/fixtures.js';

const strings = fixtureJson<string[]>('t5_tokenizer', 'strings.json');
const L = 32;
const model = fixturePath('t5_tokenizer', 'spiece.model');
const legacy = T5Tokenizer.fromFolder(model, { length: L });
const nonLegacy = T5Tokenizer.fromFolder(model, { length: L, legacy: false });

let io: Map<string, FixtureTensor>;
beforeAll(async () => {
  io = await loadFixture('t5_tokenizer');
});

const rows = (flat: number[], i: number) => flat.slice(i * L, (i + 1) * L);
const ragged = (ids: number[], offsets: number[], i: number) => ids.slice(offsets[i]!, offsets[i + 1]!);
const describeRow = (tok: T5Tokenizer, i: number, s: string, expected: number[], actual: number[]) =>
  `row ${i} ${JSON.stringify(s)}\n  expected ${expected.map((id) => tok.idToToken(id)).join('|')} [${expected.join(',')}]\n  actual   ${actual.map((id) => tok.idToToken(id)).join('|')} [${actual.join(',')}]`;

describe('T5Tokenizer parity (t5_tokenizer)', () => {
  test('t5.input_ids: the pipeline call (padding="max_length", max_length 32, truncation) on all 300 strings', () => {
    const expected = numbers(io, 't5.input_ids');
    expect(expected).toHaveLength(300 * L);
    const batch = legacy.encodeBatch(strings);
    expect(batch).toBeInstanceOf(Int32Array);
    expect(batch).toHaveLength(300 * L);
    const bad: string[] = [];
    strings.forEach((s, i) => {
      const got = Array.from(batch.subarray(i * L, (i + 1) * L));
      if (got.join() !== rows(expected, i).join()) bad.push(describeRow(legacy, i, s, rows(expected, i), got));
    });
    expect(bad).toEqual([]);
  });

  test('t5.untruncated: tokenizer(s).input_ids on all 300 strings', () => {
    const ids = numbers(io, 't5.untruncated.ids');
    const offsets = numbers(io, 't5.untruncated.offsets');
    const bad: string[] = [];
    strings.forEach((s, i) => {
      const got = legacy.tokenize(s);
      expect(got.pieces).toHaveLength(got.ids.length);
      if (got.ids.join() !== ragged(ids, offsets, i).join())
        bad.push(describeRow(legacy, i, s, ragged(ids, offsets, i), got.ids));
    });
    expect(bad).toEqual([]);
  });

  test('legacy=False: the 5 rows that differ (padded and untruncated), and every other row equals legacy', () => {
    const which = numbers(io, 't5_nonlegacy.rows');
    expect(which).toEqual([74, 75, 228, 243, 283]);
    const padded = numbers(io, 't5_nonlegacy.input_ids');
    const ids = numbers(io, 't5_nonlegacy.untruncated.ids');
    const offsets = numbers(io, 't5_nonlegacy.untruncated.offsets');
    const bad: string[] = [];
    which.forEach((r, k) => {
      const s = strings[r]!;
      const p = Array.from(nonLegacy.encode(s));
      if (p.join() !== rows(padded, k).join()) bad.push(describeRow(nonLegacy, r, s, rows(padded, k), p));
      const u = nonLegacy.tokenize(s).ids;
      if (u.join() !== ragged(ids, offsets, k).join())
        bad.push(describeRow(nonLegacy, r, s, ragged(ids, offsets, k), u));
    });
    const legacyPadded = numbers(io, 't5.input_ids');
    const legacyIds = numbers(io, 't5.untruncated.ids');
    const legacyOffsets = numbers(io, 't5.untruncated.offsets');
    strings.forEach((s, i) => {
      if (which.includes(i)) return;
      const p = Array.from(nonLegacy.encode(s));
      if (p.join() !== rows(legacyPadded, i).join()) bad.push(describeRow(nonLegacy, i, s, rows(legacyPadded, i), p));
      const u = nonLegacy.tokenize(s).ids;
      if (u.join() !== ragged(legacyIds, legacyOffsets, i).join())
        bad.push(describeRow(nonLegacy, i, s, ragged(legacyIds, legacyOffsets, i), u));
    });
    expect(bad).toEqual([]);
  });

  test('the examples of meta.json: pieces and ids, legacy and not', () => {
    const meta = fixtureJson<{
      examples: Record<
        string,
        {
          string: string;
          t5_legacy_pieces: string[];
          t5_legacy_ids: number[];
          t5_nonlegacy_pieces: string[];
          t5_nonlegacy_ids: number[];
        }
      >;
    }>('t5_tokenizer', 'meta.json');
    for (const ex of Object.values(meta.examples)) {
      expect(legacy.tokenizeToPieces(ex.string)).toEqual(ex.t5_legacy_pieces);
      expect(legacy.tokenize(ex.string).ids).toEqual(ex.t5_legacy_ids);
      expect(nonLegacy.tokenizeToPieces(ex.string)).toEqual(ex.t5_nonlegacy_pieces);
      expect(nonLegacy.tokenize(ex.string).ids).toEqual(ex.t5_nonlegacy_ids);
    }
  });

  test('tokenizer facts: len 2100, <extra_id_i> = pieces + 99 − i, pad/eos/unk 0/1/2, default length 226', () => {
    expect(legacy.vocabSize).toBe(2100);
    expect(legacy.tokenToId('<extra_id_0>')).toBe(2099);
    expect(legacy.tokenToId('<extra_id_1>')).toBe(2098);
    expect(legacy.tokenToId('<extra_id_99>')).toBe(2000);
    expect(legacy.idToToken(2099)).toBe('<extra_id_0>');
    expect(legacy.tokenToId('<extra_id_100>')).toBe(2); // not a sentinel: unknown piece
    expect([legacy.padId, legacy.eosId, legacy.unkId]).toEqual([0, 1, 2]);
    expect(T5Tokenizer.fromFolder(model).length).toBe(226);
    expect(legacy.attentionMask).toBe('none');
    expect(Array.from(legacy.encode(''))).toEqual([1, ...Array<number>(L - 1).fill(0)]); // negative_prompt None → ""
  });

  test('300 strings padded in well under a second', () => {
    const t0 = performance.now();
    legacy.encodeBatch(strings);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('T5Tokenizer parity (cogvideox_encode_prompt)', () => {
  interface Call {
    prompt?: string | string[];
    prompts?: string[];
    negative_prompt: string | null;
  }
  const meta = fixtureJson<{ calls: Record<string, Call>; max_sequence_length: number }>(
    'cogvideox_encode_prompt',
    'meta.json',
  );

  test('every group: input_ids and negative_input_ids exactly as the pipelines passed them to T5', async () => {
    const enc = await loadFixture('cogvideox_encode_prompt');
    const tok = T5Tokenizer.fromFolder(fixturePath('cogvideox_encode_prompt', 'spiece.model'), {
      length: meta.max_sequence_length,
    });
    expect(tok.length).toBe(32);
    const groups = Object.entries(meta.calls);
    expect(groups).toHaveLength(5);
    for (const [group, call] of groups) {
      const prompts = call.prompts ?? (Array.isArray(call.prompt) ? call.prompt : [call.prompt!]);
      expect(Array.from(tok.encodeBatch(prompts))).toEqual(numbers(enc, `${group}.input_ids`));
      const negatives = prompts.map(() => call.negative_prompt ?? '');
      expect(Array.from(tok.encodeBatch(negatives))).toEqual(numbers(enc, `${group}.negative_input_ids`));
    }
  });
});

describe('T5Tokenizer report and decode', () => {
  test('report: the parts that became <unk>, and what truncation drops', () => {
    const r = legacy.report('mixed 東京 and English and 😀');
    expect(r.unknown).toEqual(['東京', '😀']);
    expect(r.truncated).toBe(false);
    const long = strings[298]!;
    const full = legacy.tokenize(long).ids;
    const rl = legacy.report(long);
    expect(rl.tokens).toBe(full.length);
    expect(rl.truncated).toBe(true);
    expect(rl.dropped).toBe(full.length - L); // content ids beyond the first L − 1
    expect(rl.droppedText.length).toBeGreaterThan(100);
    expect(long.endsWith(rl.droppedText.slice(-40))).toBe(true);
    expect(legacy.report(long, 10_000).truncated).toBe(false);
  });

  test('decode skips specials and joins pieces; keeps them on request', () => {
    const text = 'A cat walks on the grass, realistic.';
    expect(legacy.decode(legacy.encode(text))).toBe(text);
    // transformers' convert_tokens_to_string puts the space before the text that precedes a special token
    expect(legacy.decode(legacy.tokenize('fill <extra_id_1> here').ids, { skipSpecialTokens: false })).toBe(
      'fill<extra_id_1> here</s>',
    );
    expect(legacy.decode(legacy.tokenize('fill <extra_id_1> here').ids)).toBe('fill here');
  });

  test('a longer length keeps more ids; truncation never drops EOS', () => {
    const long = strings[299]!;
    for (const n of [1, 2, 5, 32, 64]) {
      const t = legacy.encodeTruncated(long, n);
      expect(t.ids).toHaveLength(n);
      expect(t.ids[n - 1]).toBe(1);
      expect(t.ids.slice(0, n - 1)).toEqual(legacy.tokenize(long).ids.slice(0, n - 1));
    }
  });
});

describe('T5Tokenizer.fromFolder', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-t5tok-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function folder(name: string, files: Record<string, string | Uint8Array>): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    for (const [f, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
      fs.writeFileSync(path.join(d, f), content);
    }
    return d;
  }
  const spiece = () => fs.readFileSync(model);

  function caught(fn: () => unknown): Error {
    try {
      fn();
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected an error');
  }

  test('a pipeline folder (tokenizer/spiece.model + tokenizer_config.json) and a tokenizer folder', () => {
    const cfg = {
      tokenizer_class: 'T5Tokenizer',
      legacy: false,
      extra_ids: 100,
      model_max_length: 226,
      additional_special_tokens: Array.from({ length: 100 }, (_, i) => `<extra_id_${i}>`),
      eos_token: '</s>',
      pad_token: '<pad>',
      unk_token: { content: '<unk>' },
    };
    const pipe = folder('pipe', {
      'model_index.json': '{}',
      'tokenizer/spiece.model': spiece(),
      'tokenizer/tokenizer_config.json': JSON.stringify(cfg),
    });
    const tok = T5Tokenizer.fromFolder(pipe, { length: L });
    expect(tok.legacy).toBe(false); // from tokenizer_config.json
    expect(tok.modelMaxLength).toBe(226);
    expect(tok.vocabSize).toBe(2100);
    expect(tok.tokenize(strings[74]!).ids).toEqual([146, 36, 119, 2098, 444, 63, 1]);
    expect(T5Tokenizer.fromFolder(pipe, { legacy: true }).legacy).toBe(true); // an explicit option wins
    const t = T5Tokenizer.fromFolder(path.join(pipe, 'tokenizer'), { length: L });
    expect(Array.from(t.encode(strings[8]!))).toEqual(Array.from(nonLegacy.encode(strings[8]!)));
    expect(T5Tokenizer.fromFolder(folder('bare', { 'spiece.model': spiece() })).legacy).toBe(true); // no config: legacy
  });

  test('added_tokens_decoder decides lstrip/rstrip (here: <extra_id_1> keeps its spaces)', () => {
    const cfg = {
      added_tokens_decoder: { '2098': { content: '<extra_id_1>', lstrip: false, rstrip: false, special: true } },
    };
    const tok = T5Tokenizer.fromFolder(
      folder('added', { 'spiece.model': spiece(), 'tokenizer_config.json': JSON.stringify(cfg) }),
    );
    expect(tok.tokenizeToPieces('fill <extra_id_1> here')).toEqual([
      ...legacy.tokenizeToPieces('fill '),
      '<extra_id_1>',
      ...legacy.tokenizeToPieces(' here'),
    ]);
    expect(tok.tokenizeToPieces('a <extra_id_2> b')).toEqual(legacy.tokenizeToPieces('a <extra_id_2> b'));
  });

  test('an old-format folder (no added_tokens_decoder): added_tokens.json tokens do not strip; special_tokens_map.json is read', () => {
    const old = folder('old', {
      'spiece.model': spiece(),
      'tokenizer_config.json': JSON.stringify({ extra_ids: 100, legacy: true }),
      'added_tokens.json': JSON.stringify({ '<extra_id_1>': 2098 }),
      'special_tokens_map.json': JSON.stringify({
        eos_token: { content: '</s>', lstrip: false },
        pad_token: '<pad>',
        unk_token: '<unk>',
      }),
    });
    const tok = T5Tokenizer.fromFolder(old);
    expect(tok.tokenizeToPieces('fill <extra_id_1> here')).toEqual([
      ...legacy.tokenizeToPieces('fill '),
      '<extra_id_1>',
      ...legacy.tokenizeToPieces(' here'),
    ]);
    expect(tok.tokenizeToPieces('fill <extra_id_2> here')).toEqual(legacy.tokenizeToPieces('fill <extra_id_2> here'));
    // with added_tokens_decoder the config alone counts: special_tokens_map.json is not read
    const saved = folder('saved', {
      'spiece.model': spiece(),
      'tokenizer_config.json': JSON.stringify({ added_tokens_decoder: {}, eos_token: '</s>' }),
      'special_tokens_map.json': JSON.stringify({ eos_token: '<unk>' }),
    });
    expect(T5Tokenizer.fromFolder(saved).eosId).toBe(1);
    expect(
      T5Tokenizer.fromFolder(
        folder('mapped', {
          'spiece.model': spiece(),
          'special_tokens_map.json': JSON.stringify({ eos_token: '<unk>' }),
        }),
      ).eosId,
    ).toBe(2);
  });

  test('a fast-tokenizer-only folder (tokenizer.json): spiece.model is required, the format is not supported', () => {
    const d = folder('fast/tokenizer', {
      'tokenizer.json': JSON.stringify({ version: '1.0', model: { type: 'Unigram', vocab: [] } }),
      'tokenizer_config.json': '{}',
    });
    const e = caught(() => T5Tokenizer.fromFolder(path.dirname(d)));
    expect(e).toBeInstanceOf(TokenizerFileError);
    expect(e.message).toContain(path.join(d, 'tokenizer.json'));
    expect(e.message).toMatch(/spiece\.model.*tokenizer\.json format is not supported/);
    const word = folder('word/tokenizer', {
      'tokenizer.json': JSON.stringify({ type: 'word', vocab: ['<pad>', '</s>', '<unk>'], length: 16 }),
    });
    expect(caught(() => T5Tokenizer.fromFolder(word)).message).toMatch(/word tokenizer .*needs .*spiece\.model/);
  });

  test('a missing folder, a folder without spiece.model, a broken spiece.model, bad configs: typed errors naming the file', () => {
    const missing = path.join(dir, 'nope');
    const e1 = caught(() => T5Tokenizer.fromFolder(missing));
    expect(e1).toBeInstanceOf(TokenizerFileError);
    expect(e1.message).toContain(missing);

    const empty = folder('empty', {});
    const e2 = caught(() => T5Tokenizer.fromFolder(empty));
    expect(e2).toBeInstanceOf(TokenizerFileError);
    expect(e2.message).toContain(path.join(empty, 'spiece.model'));
    expect(e2.message).toMatch(/missing/);

    const notProto = folder('notproto', { 'spiece.model': '{"this": "is json"}' });
    const e3 = caught(() => T5Tokenizer.fromFolder(notProto));
    expect(e3).toBeInstanceOf(TokenizerFileError);
    expect(e3.message).toContain(path.join(notProto, 'spiece.model'));
    expect(e3.message).toMatch(/not a SentencePiece model/);

    const cut = folder('cut', { 'spiece.model': spiece().subarray(0, 5000) });
    const e4 = caught(() => T5Tokenizer.fromFolder(cut));
    expect(e4).toBeInstanceOf(TokenizerFileError);
    expect(e4.message).toContain(path.join(cut, 'spiece.model'));
    expect(e4.message).toMatch(/truncated/);

    const badJson = folder('badjson', { 'spiece.model': spiece(), 'tokenizer_config.json': '{legacy: tru' });
    const e5 = caught(() => T5Tokenizer.fromFolder(badJson));
    expect(e5).toBeInstanceOf(ConfigError);
    expect(e5.message).toContain(path.join(badJson, 'tokenizer_config.json'));

    const otherClass = folder('llama', {
      'spiece.model': spiece(),
      'tokenizer_config.json': JSON.stringify({ tokenizer_class: 'LlamaTokenizer' }),
    });
    expect(caught(() => T5Tokenizer.fromFolder(otherClass)).message).toMatch(
      /tokenizer_config\.json: tokenizer_class: "LlamaTokenizer" is not supported/,
    );

    const badLegacy = folder('badlegacy', {
      'spiece.model': spiece(),
      'tokenizer_config.json': JSON.stringify({ legacy: 'yes' }),
    });
    expect(caught(() => T5Tokenizer.fromFolder(badLegacy))).toBeInstanceOf(ConfigError);
  });

  test('the constructor takes a model directly; bad lengths are refused', () => {
    const sp = SentencePieceModel.fromFile(model);
    expect(new T5Tokenizer(sp, { length: 8 }).encode('a')).toHaveLength(8);
    expect(() => new T5Tokenizer(sp, { length: 0 })).toThrow(/length/);
    expect(new T5Tokenizer(sp, { extraIds: 0 }).vocabSize).toBe(2000);
  });
});
