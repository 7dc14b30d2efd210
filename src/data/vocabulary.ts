/**
 * The words of the synthetic world: shapes, palette colours, motions. Shared by the world sampler,
 * the caption grammar, the oracle and the tokenizer.
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

export const MOTIONS = ['slides left', 'slides right', 'slides up', 'slides down', 'bounces', 'grows', 'spins', 'stays'] as const;
export type Motion = (typeof MOTIONS)[number];

/** A circle looks the same at every angle, so circles never spin. */
export function motionsFor(shape: Shape): readonly Motion[] {
  return shape === 'circle' ? MOTIONS.filter((m) => m !== 'spins') : MOTIONS;
}
