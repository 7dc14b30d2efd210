/**
 * The synthetic world: determinism, ranges, layout, options, and that the character stays inside
 * the frame (the oracle reads the background from the border).
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { Mask2DiTError } from '../../src/errors.js';
import { worldContactSheet } from '../../src/data/demo.js';
import { toUint8Frames } from '../../src/data/render.js';
import {
  COLOURS,
  PALETTE,
  clipVideo,
  sampleCaptionSet,
  sampleClip,
  sampleClipSpec,
  type Clip,
} from '../../src/data/world.js';

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i]);

describe('sampleClip', () => {
  test('the same seed gives identical clips; different seeds differ', () => {
    const a = sampleClip(42);
    const b = sampleClip(42);
    expect(a.scenes.map((s) => s.caption)).toEqual(b.scenes.map((s) => s.caption));
    a.scenes.forEach((s, i) => expect(same(s.frames, b.scenes[i]!.frames)).toBe(true));
    const c = sampleClip(43);
    const differs =
      c.scenes.length !== a.scenes.length ||
      c.scenes.some((s, i) => s.caption !== a.scenes[i]!.caption || !same(s.frames, a.scenes[i]!.frames));
    expect(differs).toBe(true);
  });

  test('frames are [3, T, H, W] floats in [-1, 1] with 2–4 scenes; background ≠ character colour; circles never spin', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e9 }), (seed) => {
        const clip = sampleClip(seed);
        expect(clip.scenes.length).toBeGreaterThanOrEqual(2);
        expect(clip.scenes.length).toBeLessThanOrEqual(4);
        for (const s of clip.scenes) {
          expect(s.frames.length).toBe(3 * 9 * 64 * 64);
          expect(s.frames.every((v) => v >= -1 && v <= 1)).toBe(true);
          expect(s.attributes.background).not.toBe(clip.character.colour);
          if (clip.character.shape === 'circle') expect(s.attributes.motion).not.toBe('spins');
        }
        expect(clip.character.size).toBeGreaterThanOrEqual(0.26 * 64);
        expect(clip.character.size).toBeLessThanOrEqual(0.32 * 64);
      }),
      { numRuns: 25 },
    );
  });

  test('the border ring is pure background in every frame (the character stays inside)', () => {
    for (let seed = 0; seed < 60; seed++) {
      const clip = sampleClip(seed);
      for (const s of clip.scenes)
        expect(borderIsBackground(clip, s.frames, PALETTE[s.attributes.background])).toBe(true);
    }
  });

  test('options: 13 frames per scene, a non-square frame, a fixed scene count', () => {
    const clip = sampleClip(7, { framesPerScene: 13, width: 80, height: 48, minScenes: 3, maxScenes: 3 });
    expect(clip.scenes).toHaveLength(3);
    for (const s of clip.scenes) expect(s.frames.length).toBe(3 * 13 * 48 * 80);
    for (const s of clip.scenes)
      expect(borderIsBackground(clip, s.frames, PALETTE[s.attributes.background])).toBe(true);
  });

  test('bad options are typed errors naming the option', () => {
    expect(() => sampleClip(1, { framesPerScene: 8 })).toThrow(Mask2DiTError);
    expect(() => sampleClip(1, { framesPerScene: 8 })).toThrow(/framesPerScene.*4k\+1/);
    expect(() => sampleClip(1, { minScenes: 3, maxScenes: 2 })).toThrow(/minScenes/);
    expect(() => sampleClip(1, { width: 16 })).toThrow(/width/);
  });

  test('sampleCaptionSet has the same captions and attributes as sampleClip, without frames', () => {
    for (const seed of [0, 5, 99]) {
      const set = sampleCaptionSet(seed);
      const clip = sampleClip(seed);
      expect(set.character).toEqual(clip.character);
      expect(set.scenes).toEqual(clip.scenes.map(({ caption, attributes }) => ({ caption, attributes })));
      expect(JSON.stringify(set)).not.toContain('frames');
    }
  });

  test('every colour, shape and motion occurs over 200 clips', () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 200; seed++) {
      const spec = sampleClipSpec(seed);
      seen.add(spec.character.shape).add(spec.character.colour);
      for (const s of spec.scenes) seen.add(s.attributes.motion).add(`bg:${s.attributes.background}`);
    }
    for (const c of COLOURS) expect(seen.has(`bg:${c}`)).toBe(true);
    for (const w of [
      'circle',
      'square',
      'triangle',
      'cross',
      'slides left',
      'slides right',
      'slides up',
      'slides down',
      'bounces',
      'grows',
      'spins',
      'stays',
      ...COLOURS,
    ])
      expect(seen.has(w)).toBe(true);
  });
});

describe('layout helpers', () => {
  test('clipVideo concatenates the scenes along time: [3, S·T, H, W]', () => {
    const clip = sampleClip(3, { width: 32, height: 32, framesPerScene: 5 });
    const S = clip.scenes.length;
    const [T, plane] = [5, 32 * 32];
    const video = clipVideo(clip);
    expect(video.length).toBe(3 * S * T * plane);
    for (let c = 0; c < 3; c++) {
      for (let s = 0; s < S; s++) {
        for (let t = 0; t < T; t++) {
          const at = ((c * S + s) * T + t) * plane + 17 * 32 + 9;
          expect(video[at]).toBe(clip.scenes[s]!.frames[(c * T + t) * plane + 17 * 32 + 9]);
        }
      }
    }
  });

  test('toUint8Frames gives T interleaved RGB frames with the palette bytes', () => {
    const clip = sampleClip(11);
    const s = clip.scenes[0]!;
    const frames = toUint8Frames(s.frames, 9, 64, 64);
    expect(frames).toHaveLength(9);
    expect(frames[0]!.length).toBe(64 * 64 * 3);
    expect([...frames[4]!.subarray(0, 3)]).toEqual([...PALETTE[s.attributes.background]]);
  });
});

describe('demo', () => {
  test('the contact sheet has one captioned row per scene and one column per frame', () => {
    const sheet = worldContactSheet([1, 2]);
    const scenes = sampleClip(1).scenes.length + sampleClip(2).scenes.length;
    expect(sheet.width).toBe(9 * (64 + 2));
    expect(sheet.height).toBe(scenes * (9 + 2 + 64 + 2));
  });
});

/** Whether the 2-pixel border ring of every frame has exactly the background colour. */
function borderIsBackground(clip: Clip, frames: Float32Array, rgb: readonly number[]): boolean {
  const { framesPerScene: T, width: W, height: H } = clip;
  const bytes = toUint8Frames(frames, T, H, W);
  for (const f of bytes) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (!(y < 2 || y >= H - 2 || x < 2 || x >= W - 2)) continue;
        for (let c = 0; c < 3; c++) if (f[(y * W + x) * 3 + c] !== rgb[c]) return false;
      }
    }
  }
  return true;
}
