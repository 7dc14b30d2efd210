/** `mask2dit tokenize`: the fixture's ids through the real CLI, the unk/truncation report, typed errors → exit 2. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { fixtureJson, fixturePath, loadFixture, numbers } from '../helpers/fixtures.js';

const strings = fixtureJson<string[]>('t5_tokenizer', 'strings.json');

interface Doc {
  legacy: boolean;
  maxLength: number;
  untruncated: boolean;
  vocabSize: number;
  texts: { text: string; ids: number[]; pieces: string[]; unknown: string[]; truncated: boolean; dropped: number }[];
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-tokenize-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('mask2dit tokenize', () => {
  test('--json --max-length 32 gives the pipeline rows of t5.input_ids; --untruncated the untruncated ids', async () => {
    const io = await loadFixture('t5_tokenizer');
    const picks = [8, 64, 66, 74, 228, 298];
    const r = runCli([
      'tokenize',
      '--model',
      fixturePath('t5_tokenizer'),
      '--max-length',
      '32',
      '--json',
      ...picks.map((i) => strings[i]!),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc).toMatchObject({ legacy: true, maxLength: 32, untruncated: false, vocabSize: 2100 });
    const padded = numbers(io, 't5.input_ids');
    picks.forEach((i, k) => {
      expect(doc.texts[k]!.text).toBe(strings[i]);
      expect(doc.texts[k]!.ids).toEqual(padded.slice(i * 32, (i + 1) * 32));
      expect(doc.texts[k]!.pieces).toHaveLength(32);
    });
    expect(doc.texts[1]!.unknown).toEqual(['東京', '😀']);
    expect(doc.texts[5]!.truncated).toBe(true);

    const u = runCli([
      'tokenize',
      '--model',
      fixturePath('t5_tokenizer', 'spiece.model'),
      '--untruncated',
      '--json',
      strings[66]!,
    ]);
    expect(u.code).toBe(0);
    const ud = JSON.parse(u.stdout) as Doc;
    const ids = numbers(io, 't5.untruncated.ids');
    const off = numbers(io, 't5.untruncated.offsets');
    expect(ud.texts[0]!.ids).toEqual(ids.slice(off[66]!, off[67]!));
    expect(ud.texts[0]!.pieces).toEqual(['\u2581a', '</s>', '\u2581b', '</s>']);
  });

  test('text output: ids, pieces, padding summary, the <unk> parts and the truncation warning; --legacy false', () => {
    const r = runCli([
      'tokenize',
      '--model',
      fixturePath('t5_tokenizer'),
      '--max-length',
      '8',
      'a cat 東京 walks on the grass in the morning',
      'fill <extra_id_1> here',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/T5Tokenizer \(2000 pieces \+ 100 extra ids, legacy=true\), max length 8/);
    expect(r.stdout).toMatch(/unknown \(<unk>, id 2\): "東京"/);
    expect(r.stdout).toMatch(/truncated at 8: \d+ ids dropped: "/);
    expect(r.stdout).toContain('ids (6 of 8): 146 36 119 2098 265 1 + 2 × <pad> (0)');
    const n = runCli([
      'tokenize',
      '--model',
      fixturePath('t5_tokenizer'),
      '--legacy',
      'false',
      '--untruncated',
      'fill <extra_id_1> here',
    ]);
    expect(n.code).toBe(0);
    expect(n.stdout).toMatch(/ids \(7, untruncated\): 146 36 119 2098 444 63 1/);
    expect(n.stdout).toMatch(/pieces: ▁f i ll <extra_id_1> he re <\/s>/);
  });

  test('bad input: exit 2 with one line naming the file', () => {
    const fast = path.join(dir, 'fast', 'tokenizer');
    fs.mkdirSync(fast, { recursive: true });
    fs.writeFileSync(path.join(fast, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'Unigram' } }));
    const r = runCli(['tokenize', '--model', path.dirname(fast), 'a cat']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(path.join(fast, 'tokenizer.json'));
    expect(r.stderr).toMatch(/spiece\.model.*not supported/);

    const junk = path.join(dir, 'junk.model');
    fs.writeFileSync(junk, 'this is not a protobuf at all');
    const j = runCli(['tokenize', '--model', junk, 'a']);
    expect(j.code).toBe(2);
    expect(j.stderr).toContain(`${junk}: not a SentencePiece model`);

    const bad = runCli(['tokenize', '--model', fixturePath('t5_tokenizer'), '--max-length', 'zero', 'a']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-length: expected an integer/);
  });
});
