/** The caption grammar: captions parse back to their attributes; only the first names the character. */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { captionFor, parseCaption } from '../../src/data/captions.js';
import { grammarWords, words } from '../../src/data/vocabulary.js';
import { sampleCaptionSet } from '../../src/data/world.js';

describe('captions', () => {
  test('every caption parses back to its attributes; the first names the character, later ones say "it"', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e9 }), (seed) => {
        const set = sampleCaptionSet(seed);
        set.scenes.forEach((s, i) => {
          const parsed = parseCaption(s.caption);
          expect(parsed).not.toBeNull();
          expect(parsed!.background).toBe(s.attributes.background);
          expect(parsed!.motion).toBe(s.attributes.motion);
          if (i === 0) {
            expect(parsed!.character).toEqual({ colour: set.character.colour, shape: set.character.shape });
          } else {
            expect(parsed!.character).toBeUndefined();
            expect(s.caption.startsWith('it ')).toBe(true);
            expect(s.caption).not.toContain(set.character.shape);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('examples of the grammar, with "an" before a vowel', () => {
    expect(captionFor(0, { colour: 'red', shape: 'triangle' }, { background: 'blue', motion: 'slides left' })).toBe(
      'a red triangle slides left on a blue background',
    );
    expect(captionFor(1, { colour: 'red', shape: 'triangle' }, { background: 'green', motion: 'bounces' })).toBe(
      'it bounces on a green background',
    );
    expect(captionFor(0, { colour: 'orange', shape: 'cross' }, { background: 'orange', motion: 'stays' })).toBe(
      'an orange cross stays on an orange background',
    );
  });

  test('the parser tolerates case and punctuation, and rejects text outside the grammar', () => {
    expect(parseCaption('It SPINS on a White background.')).toEqual({ background: 'white', motion: 'spins' });
    for (const bad of [
      '',
      'a purple circle grows on a red background',
      'it slides sideways on a red background',
      'it grows on a red',
      'a red circle grows on a red background now',
      'the cat',
    ]) {
      expect(parseCaption(bad)).toBeNull();
    }
  });

  test('grammarWords covers every word of every caption', () => {
    const vocab = new Set(grammarWords());
    for (let seed = 0; seed < 200; seed++)
      for (const s of sampleCaptionSet(seed).scenes) for (const w of words(s.caption)) expect(vocab.has(w)).toBe(true);
  });
});
