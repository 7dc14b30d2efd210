/** The word tokenizer: round trip, padding, unknown words, truncation, serialisation. */
import { describe, expect, test } from '@jest/globals';
import { Mask2DiTError } from '../../src/errors.js';
import { sampleCaptionSet } from '../../src/data/world.js';
import { EOS_ID, PAD_ID, UNK_ID, WordTokenizer } from '../../src/text/tokenizer.js';

const tok = WordTokenizer.forWorld(16);

describe('WordTokenizer', () => {
  test('T5-style specials first, then the grammar words', () => {
    expect(tok.vocab.slice(0, 3)).toEqual(['<pad>', '</s>', '<unk>']);
    expect([PAD_ID, EOS_ID, UNK_ID]).toEqual([0, 1, 2]);
    expect(tok.vocab).toContain('triangle');
    expect(tok.vocab).toContain('background');
  });

  test('every world caption round-trips: words, </s>, then padding to the fixed length', () => {
    for (let seed = 0; seed < 100; seed++) {
      for (const s of sampleCaptionSet(seed).scenes) {
        const ids = tok.encode(s.caption);
        expect(ids).toBeInstanceOf(Int32Array);
        expect(ids.length).toBe(16);
        const n = s.caption.split(' ').length;
        expect(ids[n]).toBe(EOS_ID);
        expect([...ids.subarray(n + 1)].every((id) => id === PAD_ID)).toBe(true);
        expect([...ids.subarray(0, n)].every((id) => id > UNK_ID)).toBe(true);
        expect(tok.decode(ids)).toBe(s.caption);
      }
    }
  });

  test('unknown words map to <unk>; case and punctuation are normalised', () => {
    const ids = tok.encode('A purple Circle, wobbles!');
    expect([...ids.subarray(0, 5)]).toEqual([
      tok.vocab.indexOf('a'),
      UNK_ID,
      tok.vocab.indexOf('circle'),
      UNK_ID,
      EOS_ID,
    ]);
    expect(tok.decode(ids)).toBe('a <unk> circle <unk>');
  });

  test('too long text is cut, keeping </s> last; the mask marks real tokens', () => {
    const short = new WordTokenizer(tok.vocab, 4);
    const ids = short.encode('a red circle grows on a blue background');
    expect(ids.length).toBe(4);
    expect(ids[3]).toBe(EOS_ID);
    expect(short.decode(ids)).toBe('a red circle');
    expect([...WordTokenizer.mask(tok.encode('it grows'))]).toEqual([1, 1, 1, ...Array(13).fill(0)]);
    expect([...tok.encode('')]).toEqual([EOS_ID, ...Array(15).fill(PAD_ID)]);
  });

  test('encodeBatch lays captions out row by row', () => {
    const ids = tok.encodeBatch(['it grows on a red background', 'it spins on a blue background']);
    expect(ids.length).toBe(32);
    expect(tok.decode(ids.subarray(16))).toBe('it spins on a blue background');
  });

  test('JSON round trip; malformed vocabularies are typed errors', () => {
    const back = WordTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back.vocab).toEqual(tok.vocab);
    expect(back.length).toBe(16);
    expect(() => WordTokenizer.fromJSON({ type: 'bpe' })).toThrow(Mask2DiTError);
    expect(() => new WordTokenizer(['a', '</s>', '<unk>'], 8)).toThrow(/<pad>/);
    expect(() => new WordTokenizer(['<pad>', '</s>', '<unk>', 'a', 'a'], 8)).toThrow(/duplicate/);
    expect(() => new WordTokenizer(tok.vocab, 1)).toThrow(/length/);
  });
});
