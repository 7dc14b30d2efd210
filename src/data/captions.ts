/**
 * The caption grammar of the synthetic world and its parser.
 *
 *   first scene   caption := article COLOUR SHAPE MOTION "on a" COLOUR "background"
 *   later scenes  caption := "it" MOTION "on a" COLOUR "background"
 *   article       := "a" | "an"            ("an" before a vowel: "an orange square")
 *   MOTION        := "slides" ("left" | "right" | "up" | "down") | "bounces" | "grows" | "spins" | "stays"
 *
 * e.g. "a red triangle slides left on a blue background", then "it bounces on a green background".
 * Its words (`grammarWords`, the word tokenizer's vocabulary) are in vocabulary.ts.
 */
import { COLOURS, MOTIONS, SHAPES, words, type Colour, type Motion, type Shape } from './vocabulary.js';

/** What a caption says: the character only in a first-scene caption. */
export interface ParsedCaption {
  character?: { colour: Colour; shape: Shape };
  background: Colour;
  motion: Motion;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

/** The caption of scene `index` (0-based): the first names the character, later ones say "it". */
export function captionFor(
  index: number,
  character: { colour: Colour; shape: Shape },
  scene: { background: Colour; motion: Motion },
): string {
  const subject = index === 0 ? `${article(character.colour)} ${character.colour} ${character.shape}` : 'it';
  return `${subject} ${scene.motion} on ${article(scene.background)} ${scene.background} background`;
}

const isColour = (w: string | undefined): w is Colour => w !== undefined && (COLOURS as readonly string[]).includes(w);
const isShape = (w: string | undefined): w is Shape => w !== undefined && (SHAPES as readonly string[]).includes(w);

/** Caption → attributes, or null when the text is not a sentence of the grammar. */
export function parseCaption(text: string): ParsedCaption | null {
  const w = words(text);
  let i = 0;
  let character: ParsedCaption['character'];
  if (w[0] === 'it') {
    i = 1;
  } else if ((w[0] === 'a' || w[0] === 'an') && isColour(w[1]) && isShape(w[2])) {
    character = { colour: w[1], shape: w[2] };
    i = 3;
  } else {
    return null;
  }
  const motion = MOTIONS.find((m) => m.split(' ').every((part, k) => w[i + k] === part));
  if (motion === undefined) return null;
  i += motion.split(' ').length;
  const bg = w[i + 2];
  if (
    w[i] !== 'on' ||
    (w[i + 1] !== 'a' && w[i + 1] !== 'an') ||
    !isColour(bg) ||
    w[i + 3] !== 'background' ||
    w.length !== i + 4
  )
    return null;
  return { ...(character !== undefined ? { character } : {}), background: bg, motion };
}
