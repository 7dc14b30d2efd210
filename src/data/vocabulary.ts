/**
 * The words of the synthetic world: shapes, palette colours, motions, every word its captions can use
 * (`grammarWords`) and how a text splits into words (`words`). Shared by the world sampler, the caption
 * grammar (captions.ts), the oracle and the word tokenizer (src/text/tokenizer.ts); it imports nothing,
 * so the tokenizer depends on the vocabulary, not on the world or its captions.
 */

export const SHAPES = ['circle', 'square', 'triangle', 'cross'] as const;
export type Shape = (typeof SHAPES)[number];

/** The palette (sRGB bytes): well separated so that nearest-colour matching survives blur. */
export const PALETTE = {
  red: [220, 30, 30],
  green: [30, 180, 50],
  blue: [30, 60, 230],
  yellow: [245, 225, 30],
  white: [245, 245, 245],
  magenta: [210, 40, 210],
  cyan: [30, 215, 225],
  orange: [250, 135, 20],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Colour = keyof typeof PALETTE;
export const COLOURS = Object.keys(PALETTE) as Colour[];

export const MOTIONS = [
  'slides left',
  'slides right',
  'slides up',
  'slides down',
  'bounces',
  'grows',
  'spins',
  'stays',
] as const;
export type Motion = (typeof MOTIONS)[number];

/** A circle looks the same at every angle, so circles never spin. */
export function motionsFor(shape: Shape): readonly Motion[] {
  return shape === 'circle' ? MOTIONS.filter((m) => m !== 'spins') : MOTIONS;
}

/** Every word the caption grammar (captions.ts) can produce — the word tokenizer's vocabulary — sorted. */
export function grammarWords(): string[] {
  const words = new Set(['a', 'an', 'it', 'on', 'background', ...COLOURS, ...SHAPES]);
  for (const m of MOTIONS) for (const w of m.split(' ')) words.add(w);
  return [...words].sort();
}

/** Lowercase words, punctuation dropped. */
export function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z\s]/g, ' ')
    .split(/\s+/)
    .filter((w) => w !== '');
}
