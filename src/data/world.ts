/**
 * A procedural multi-scene video world, deterministic from a seed (issue 7).
 *
 * A clip is 2–4 scenes joined by hard cuts. One character (a coloured shape of a fixed size)
 * persists across all scenes; each scene gives it a motion and a plain background colour:
 *
 *   character  shape ∈ SHAPES, colour ∈ COLOURS, size ∈ [0.26, 0.32]·min(H, W) px
 *   scene      motion ∈ MOTIONS, background ∈ COLOURS \ {character colour}
 *
 * Only the first caption names the character; later ones say "it" (captions.ts), so identity across
 * scenes can only come from the frames. A scene renders to `[3, T, H, W]` floats in [-1, 1]
 * (render.ts), the per-scene slice of the VAE layout `[B, C, T, H, W]`.
 *
 * Sampling is split into a spec (everything random: attributes and the path of the character) and
 * a pure renderer, so `sampleCaptionSet(seed)` and `sampleClip(seed)` agree on the attributes.
 */
import { Mask2DiTError } from '../errors.js';
import { COLOURS, SHAPES, motionsFor, type Colour, type Motion, type Shape } from './vocabulary.js';
import { captionFor } from './captions.js';
import { renderScene } from './render.js';

export { poseAt } from './render.js';

export * from './vocabulary.js';

export interface Character {
  shape: Shape;
  colour: Colour;
  /** Nominal diameter in pixels (the unrotated shape fits a box of this side). */
  size: number;
}

export interface SceneAttributes {
  background: Colour;
  motion: Motion;
}

/** Where the character is at time u ∈ [0, 1] of a scene: centre (px), scale, rotation (rad). */
export interface Pose {
  x: number;
  y: number;
  scale: number;
  angle: number;
}

/** The random part of a scene's render: poses at the first and last frame, bounce height. */
export interface ScenePath {
  start: Pose;
  end: Pose;
  /** Bounces: height of each hop in px (0 otherwise). */
  hop: number;
  /** Bounces: number of hops in the scene. */
  hops: number;
}

export interface SceneSpec {
  caption: string;
  attributes: SceneAttributes;
  path: ScenePath;
}

export interface ClipSpec {
  seed: number;
  character: Character;
  scenes: SceneSpec[];
  framesPerScene: number;
  width: number;
  height: number;
}

export interface Scene extends SceneSpec {
  /** `[3, T, H, W]` RGB in [-1, 1]. */
  frames: Float32Array;
}

export interface Clip extends ClipSpec {
  scenes: Scene[];
}

export interface WorldOptions {
  /** Fewest scenes per clip (default 2). */
  minScenes?: number;
  /** Most scenes per clip (default 4). */
  maxScenes?: number;
  /** Frames per scene, 4k+1 (default 9). */
  framesPerScene?: number;
  width?: number;
  height?: number;
}

/** World seeds below this are training clips; evaluation draws its held-out caption sets from here on. */
export const HELD_OUT_FIRST_SEED = 1_000_000;

export const DEFAULT_WORLD: Required<WorldOptions> = {
  minScenes: 2,
  maxScenes: 4,
  framesPerScene: 9,
  width: 64,
  height: 64,
};

/** Largest distance from a shape's centre to its outline, per unit size, over all shapes (render.ts). */
export const BOUNDING_RADIUS = 0.68;
/** Scale range of "grows". */
export const GROW_FROM = 0.6;
export const GROW_TO = 1.4;
/** Total rotation of "spins" (a quarter turn). */
export const SPIN_ANGLE = Math.PI / 2;
/** Pixels of pure background kept around the character (the oracle reads the border). */
export const MARGIN = 3;

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

/** A small seeded generator (mulberry32 over a splitmix-scrambled seed): uniform floats in [0, 1). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    let z = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    this.state = (z ^ (z >>> 16)) >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  int(lo: number, hiInclusive: number): number {
    return lo + Math.floor(this.next() * (hiInclusive - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

/** Options with defaults applied, validated. */
export function resolveWorldOptions(opts: WorldOptions = {}): Required<WorldOptions> {
  const o = { ...DEFAULT_WORLD, ...opts };
  const bad = (field: string, detail: string) => new Mask2DiTError('WORLD', `world option ${field}: ${detail}`);
  if (!Number.isInteger(o.framesPerScene) || o.framesPerScene < 5 || (o.framesPerScene - 1) % 4 !== 0) {
    throw bad('framesPerScene', `expected 4k+1 with k ≥ 1 (5, 9, 13, …), got ${o.framesPerScene}`);
  }
  if (
    !Number.isInteger(o.minScenes) ||
    !Number.isInteger(o.maxScenes) ||
    o.minScenes < 1 ||
    o.maxScenes < o.minScenes
  ) {
    throw bad('minScenes/maxScenes', `expected integers 1 ≤ min ≤ max, got ${o.minScenes}..${o.maxScenes}`);
  }
  for (const k of ['width', 'height'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 32) throw bad(k, `expected an integer ≥ 32, got ${o[k]}`);
  }
  return o;
}

/** The whole random content of clip `seed`: character, per-scene attributes, captions and paths. */
export function sampleClipSpec(seed: number, opts: WorldOptions = {}): ClipSpec {
  const o = resolveWorldOptions(opts);
  const rng = new Rng(seed);
  const S = rng.int(o.minScenes, o.maxScenes);
  const side = Math.min(o.width, o.height);
  const character: Character = {
    shape: rng.pick(SHAPES),
    colour: rng.pick(COLOURS),
    size: rng.uniform(0.26, 0.32) * side,
  };
  const scenes: SceneSpec[] = [];
  for (let s = 0; s < S; s++) {
    const attributes: SceneAttributes = {
      background: rng.pick(COLOURS.filter((c) => c !== character.colour)),
      motion: rng.pick(motionsFor(character.shape)),
    };
    const path = samplePath(rng, attributes.motion, character.size, o);
    scenes.push({ caption: captionFor(s, character, attributes), attributes, path });
  }
  return { seed, character, scenes, framesPerScene: o.framesPerScene, width: o.width, height: o.height };
}

/** A start and end pose for `motion` that keeps the character `MARGIN` px inside the frame. */
function samplePath(rng: Rng, motion: Motion, size: number, o: Required<WorldOptions>): ScenePath {
  const { width: W, height: H } = o;
  const maxScale = motion === 'grows' ? GROW_TO : 1;
  const r = BOUNDING_RADIUS * size * maxScale;
  const lo = MARGIN + r;
  const [hiX, hiY] = [W - MARGIN - r, H - MARGIN - r];
  const still = (x: number, y: number, scale = 1, angle = 0): Pose => ({ x, y, scale, angle });
  const x0 = rng.uniform(lo, hiX);
  const y0 = rng.uniform(lo, hiY);
  const path = (start: Pose, end: Pose, hop = 0, hops = 0): ScenePath => ({ start, end, hop, hops });
  switch (motion) {
    case 'slides left':
    case 'slides right':
    case 'slides up':
    case 'slides down': {
      const horizontal = motion === 'slides left' || motion === 'slides right';
      const room = horizontal ? hiX - lo : hiY - lo;
      const dist = Math.min(room, rng.uniform(0.35, 0.45) * (horizontal ? W : H));
      const from = lo + rng.uniform(0, room - dist);
      const [a, b] = motion === 'slides left' || motion === 'slides up' ? [from + dist, from] : [from, from + dist];
      return horizontal ? path(still(a, y0), still(b, y0)) : path(still(x0, a), still(x0, b));
    }
    case 'bounces': {
      const hop = Math.min(hiY - lo, 0.24 * H);
      const ground = rng.uniform(lo + hop, hiY);
      return path(still(x0, ground), still(x0, ground), hop, Math.max(1, (o.framesPerScene - 1) / 4));
    }
    case 'grows':
      return path(still(x0, y0, GROW_FROM), still(x0, y0, GROW_TO));
    case 'spins': {
      const dir = rng.next() < 0.5 ? -1 : 1;
      return path(still(x0, y0, 1, 0), still(x0, y0, 1, dir * SPIN_ANGLE));
    }
    case 'stays':
      return path(still(x0, y0), still(x0, y0));
  }
}

/** Captions and attributes of clip `seed`, no frames (evaluation prompts). Same content as `sampleClip(seed)`. */
export function sampleCaptionSet(
  seed: number,
  opts: WorldOptions = {},
): { seed: number; character: Character; scenes: { caption: string; attributes: SceneAttributes }[] } {
  const spec = sampleClipSpec(seed, opts);
  return {
    seed,
    character: spec.character,
    scenes: spec.scenes.map(({ caption, attributes }) => ({ caption, attributes })),
  };
}

/** Clip `seed` with every scene rendered to `[3, T, H, W]` floats in [-1, 1]. */
export function sampleClip(seed: number, opts: WorldOptions = {}): Clip {
  const spec = sampleClipSpec(seed, opts);
  return { ...spec, scenes: spec.scenes.map((s) => ({ ...s, frames: renderScene(spec, s) })) };
}

/** All scenes of a clip as one `[3, S·T, H, W]` video (hard cuts between scenes). */
export function clipVideo(clip: Clip): Float32Array {
  const { framesPerScene: T, width: W, height: H } = clip;
  const S = clip.scenes.length;
  const plane = T * H * W;
  const out = new Float32Array(3 * S * plane);
  for (let c = 0; c < 3; c++) {
    clip.scenes.forEach((scene, s) => out.set(scene.frames.subarray(c * plane, (c + 1) * plane), (c * S + s) * plane)); // [c, s·T .. (s+1)·T]
  }
  return out;
}
