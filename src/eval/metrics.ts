/**
 * The three consistency metrics of the evaluation (issue 8), computed by the oracle on frames:
 *
 *   semantic   share of scenes whose background AND motion, read back from the frames, are the ones
 *              their caption names
 *   visual     share of clips whose character (colour + shape) is the same in every scene AND is the
 *              one the first caption names ("a red triangle …"; later captions only say "it")
 *   sequence   share of scenes whose character is found in every frame and moves continuously
 *              (the oracle's `continuous`: no centroid jump, no area jump between frames)
 *
 * and one diagnostic beside them:
 *
 *   visualColour  share of clips whose character has the first caption's colour in every scene,
 *              shape ignored. A VAE that blurs the small characters into blobs makes the shape
 *              unreadable (the evaluation's "ground truth through the VAE" row shows how often);
 *              colour survives, so this still measures whether identity carries across the cuts.
 *
 * Whatever the oracle cannot read ('unknown') is a miss. Pure JavaScript: the same code scores
 * generated videos and ground-truth renders (which must score 1, up to the oracle's accuracy).
 */
import { parseCaption } from '../data/captions.js';
import { readClip, type FramesInput, type Maybe } from '../data/oracle.js';
import type { Colour, Motion, Shape } from '../data/vocabulary.js';
import { Mask2DiTError } from '../errors.js';

/** What the oracle read in one scene, next to what its caption asks for. */
export interface SceneScore {
  caption: string;
  expected: { background: Colour; motion: Motion };
  read: {
    background: Maybe<Colour>;
    colour: Maybe<Colour>;
    shape: Maybe<Shape>;
    motion: Maybe<Motion>;
    continuous: boolean;
  };
  /** Background and motion both match the caption. */
  semantic: boolean;
  /** The character's motion is continuous within the scene. */
  sequence: boolean;
}

export interface ClipScore {
  /** World seed of the caption set. */
  seed: number;
  /** The character the first caption names. */
  expected: { colour: Colour; shape: Shape };
  /** Majority colour and shape over the scenes, and whether every scene shows exactly that. */
  read: { colour: Maybe<Colour>; shape: Maybe<Shape>; sameCharacter: boolean };
  /** Same character in every scene, and it is the captioned one. */
  visual: boolean;
  /** Every scene's character has the captioned colour (shape not looked at). */
  visualColour: boolean;
  scenes: SceneScore[];
}

export interface Metrics {
  semantic: number;
  visual: number;
  sequence: number;
  /** Diagnostic: visual consistency on colour alone. */
  visualColour: number;
  clips: number;
  scenes: number;
  /** Hits behind each share: semantic and sequence count scenes, visual and visualColour count clips. */
  hits: { semantic: number; visual: number; sequence: number; visualColour: number };
}

/** A caption set as the world gives it (`sampleCaptionSet`): only the captions are used. */
export interface CaptionSetLike {
  seed: number;
  scenes: readonly { caption: string }[];
}

/** Expected attributes from the captions (the grammar of captions.ts); the first must name the character. */
export function expectedFromCaptions(set: CaptionSetLike): {
  character: { colour: Colour; shape: Shape };
  scenes: { background: Colour; motion: Motion }[];
} {
  const parsed = set.scenes.map(({ caption }, s) => {
    const p = parseCaption(caption);
    if (p === null)
      throw new Mask2DiTError(
        'EVAL',
        `caption set ${set.seed}, scene ${s + 1}: "${caption}" is not a sentence of the world's caption grammar`,
      );
    return p;
  });
  const character = parsed[0]?.character;
  if (character === undefined)
    throw new Mask2DiTError(
      'EVAL',
      `caption set ${set.seed}: the first caption must name the character ("a red circle …"), got "${set.scenes[0]?.caption ?? ''}"`,
    );
  return { character, scenes: parsed.map(({ background, motion }) => ({ background, motion })) };
}

/** Score one clip: `frames[s]` are scene s's frames (`[3, T, H, W]` in [-1, 1], or RGB byte frames). */
export function scoreClip(set: CaptionSetLike, frames: readonly FramesInput[]): ClipScore {
  if (frames.length !== set.scenes.length)
    throw new Mask2DiTError(
      'EVAL',
      `caption set ${set.seed}: ${set.scenes.length} captions but ${frames.length} scenes of frames`,
    );
  const expected = expectedFromCaptions(set);
  const reading = readClip([...frames]);
  const scenes = reading.scenes.map((r, s): SceneScore => {
    const want = expected.scenes[s]!;
    const semantic = r.background === want.background && r.motion === want.motion;
    return {
      caption: set.scenes[s]!.caption,
      expected: want,
      read: {
        background: r.background,
        colour: r.character.colour,
        shape: r.character.shape,
        motion: r.motion,
        continuous: r.continuous,
      },
      semantic,
      sequence: r.continuous,
    };
  });
  const { colour, shape } = reading.character;
  const visual = reading.sameCharacter && colour === expected.character.colour && shape === expected.character.shape;
  const visualColour = scenes.every((sc) => sc.read.colour === expected.character.colour);
  return {
    seed: set.seed,
    expected: expected.character,
    read: { colour, shape, sameCharacter: reading.sameCharacter },
    visual,
    visualColour,
    scenes,
  };
}

/** The three shares over a list of scored clips (0 for an empty list). */
export function summarize(clips: readonly ClipScore[]): Metrics {
  const scenes = clips.flatMap((c) => c.scenes);
  const hits = {
    semantic: scenes.filter((s) => s.semantic).length,
    visual: clips.filter((c) => c.visual).length,
    sequence: scenes.filter((s) => s.sequence).length,
    visualColour: clips.filter((c) => c.visualColour).length,
  };
  const share = (k: number, n: number) => (n === 0 ? 0 : k / n);
  return {
    semantic: share(hits.semantic, scenes.length),
    visual: share(hits.visual, clips.length),
    sequence: share(hits.sequence, scenes.length),
    visualColour: share(hits.visualColour, clips.length),
    clips: clips.length,
    scenes: scenes.length,
    hits,
  };
}
