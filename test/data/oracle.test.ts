/**
 * The oracle: ≥ 99% per attribute on ≥ 300 ground-truth scenes, graceful on degraded frames, and it
 * never throws on garbage.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { toUint8Frames } from '../../src/data/render.js';
import { compareScene, hullArea, readClip, readScene, type SceneReading } from '../../src/data/oracle.js';
import { Rng, sampleClip, type Clip } from '../../src/data/world.js';

const T = 9;
const [H, W] = [64, 64];

interface Tally {
  scenes: number;
  background: number;
  colour: number;
  shape: number;
  motion: number;
  continuous: number;
}

/** Oracle accuracy over the scenes of clips `seeds`, with `degrade` applied to the frames first. */
function accuracy(
  seeds: number[],
  degrade: (f: Float32Array, rng: Rng) => Float32Array = (f) => f,
): Record<keyof Tally, number> {
  const t: Tally = { scenes: 0, background: 0, colour: 0, shape: 0, motion: 0, continuous: 0 };
  const rng = new Rng(12345);
  for (const seed of seeds) {
    const clip = sampleClip(seed);
    for (const s of clip.scenes) {
      const r = readScene({ data: degrade(s.frames, rng), T, H, W });
      const m = compareScene(r, { ...s.attributes, character: clip.character });
      t.scenes++;
      t.background += +m.background;
      t.colour += +m.colour!;
      t.shape += +m.shape!;
      t.motion += +m.motion;
      t.continuous += +r.continuous;
    }
  }
  const n = t.scenes;
  return {
    scenes: n,
    background: t.background / n,
    colour: t.colour / n,
    shape: t.shape / n,
    motion: t.motion / n,
    continuous: t.continuous / n,
  };
}

const { cos, log, sqrt, PI } = Math; // module aliases: global lookups are slow in jest's vm context

const seeds = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

/** 3×3 box blur (`passes` times), contrast ×0.9, Gaussian noise σ (units of [-1, 1]). */
function blurNoise(passes: number, sigma: number) {
  return (f: Float32Array, rng: Rng): Float32Array => {
    let a = f;
    for (let k = 0; k < passes; k++) {
      const o = new Float32Array(a.length);
      for (let ct = 0; ct < 3 * T; ct++) {
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            let [s, n] = [0, 0];
            for (let dy = -1; dy <= 1; dy++)
              for (let dx = -1; dx <= 1; dx++)
                if (y + dy >= 0 && y + dy < H && x + dx >= 0 && x + dx < W)
                  [s, n] = [s + a[ct * H * W + (y + dy) * W + x + dx]!, n + 1];
            o[ct * H * W + y * W + x] = s / n;
          }
        }
      }
      a = o;
    }
    const gauss = () => sqrt(-2 * log(1 - rng.next())) * cos(2 * PI * rng.next());
    return a.map((v) => 0.9 * v + sigma * gauss());
  };
}

describe('oracle accuracy', () => {
  test('≥ 99% per attribute on ≥ 300 ground-truth scenes', () => {
    const acc = accuracy(seeds(10_000, 120));
    process.stderr.write(`oracle on ground truth: ${JSON.stringify(acc)}\n`);
    expect(acc.scenes).toBeGreaterThanOrEqual(300);
    for (const k of ['background', 'colour', 'shape', 'motion', 'continuous'] as const)
      expect(acc[k]).toBeGreaterThanOrEqual(0.99);
  });

  test('degrades gracefully: blurred (two 3×3 passes) and noisy (σ = 0.1) frames still read ≥ 95%', () => {
    const acc = accuracy(seeds(20_000, 40), blurNoise(2, 0.1));
    process.stderr.write(`oracle on blurred + noisy frames: ${JSON.stringify(acc)}\n`);
    for (const k of ['background', 'colour', 'shape', 'motion', 'continuous'] as const)
      expect(acc[k]).toBeGreaterThanOrEqual(0.95);
  });

  test('reads byte frames (as decoded from a video) the same as float frames', () => {
    const clip = sampleClip(77);
    for (const s of clip.scenes) {
      const a = readScene({ data: s.frames, T, H, W });
      const b = readScene({ frames: toUint8Frames(s.frames, T, H, W), H, W });
      expect(strip(b)).toEqual(strip(a));
    }
  });
});

describe('oracle on clips and continuity', () => {
  test('readClip: the same character in every scene', () => {
    const clip = sampleClip(5);
    const r = readClip(clip.scenes.map((s) => ({ data: s.frames, T, H, W })));
    expect(r.sameCharacter).toBe(true);
    expect(r.character).toEqual({ colour: clip.character.colour, shape: clip.character.shape });
  });

  test('readClip: a scene with another character breaks sameCharacter', () => {
    const [a, b] = [sampleClip(5), findClip((c) => c.character.shape !== sampleClip(5).character.shape)];
    const r = readClip([
      { data: a.scenes[0]!.frames, T, H, W },
      { data: b.scenes[0]!.frames, T, H, W },
    ]);
    expect(r.sameCharacter).toBe(false);
  });

  test('a jump (frames out of order) or a missing character is not continuous', () => {
    const clip = findClip((c) => c.scenes[0]!.attributes.motion.startsWith('slides'));
    const frames = clip.scenes[0]!.frames;
    expect(readScene({ data: frames, T, H, W }).continuous).toBe(true);
    expect(readScene({ data: reorder(frames, [8, 1, 2, 3, 4, 5, 6, 7, 0]), T, H, W }).continuous).toBe(false);
    const blank = reorder(frames, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const bg = readScene({ data: frames, T, H, W });
    expect(bg.background).not.toBe('unknown');
    const plane = H * W;
    for (let c = 0; c < 3; c++) blank.fill(frames[c * T * plane]!, (c * T + 4) * plane, (c * T + 5) * plane); // frame 4 := background
    const r = readScene({ data: blank, T, H, W });
    expect(r.track[4]).toBeNull();
    expect(r.continuous).toBe(false);
  });
});

describe('oracle never throws', () => {
  test('on random noise, NaN/Infinity and wrong sizes it answers, with unknowns where it must', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        (t, h, w, seed) => {
          const rng = new Rng(seed);
          const data = new Float32Array(3 * t * h * w).map(() => {
            const u = rng.next();
            return u < 0.02 ? NaN : u < 0.04 ? Infinity : rng.uniform(-3, 3);
          });
          const r = readScene({ data, T: t, H: h, W: w });
          expect(r.track.length === t || r.track.length === 0).toBe(true);
          expect(typeof r.continuous).toBe('boolean');
        },
      ),
      { numRuns: 60 },
    );
    expect(readScene({ data: new Float32Array(5), T: 2, H: 3, W: 3 }).motion).toBe('unknown');
    expect(readScene({ frames: [new Uint8Array(7)], H: 2, W: 2 }).background).toBe('unknown');
    expect(readScene({ frames: [], H: 8, W: 8 }).background).toBe('unknown');
    const flat = readScene({ data: new Float32Array(3 * 9 * 64 * 64).fill(0.2), T, H, W });
    expect(flat.character).toEqual({ colour: 'unknown', shape: 'unknown' });
    expect(flat.motion).toBe('unknown');
    expect(readClip([]).sameCharacter).toBe(false);
  });

  test('hullArea of a unit square and of a triangle', () => {
    expect(
      hullArea([
        [0, 0],
        [1, 0],
        [1, 1],
        [0, 1],
        [0.5, 0.5],
      ]),
    ).toBeCloseTo(1);
    expect(
      hullArea([
        [0, 0],
        [4, 0],
        [0, 3],
      ]),
    ).toBeCloseTo(6);
    expect(
      hullArea([
        [0, 0],
        [1, 1],
      ]),
    ).toBe(0);
  });
});

function strip(r: SceneReading) {
  return { background: r.background, character: r.character, motion: r.motion, continuous: r.continuous };
}

function findClip(pred: (c: Clip) => boolean): Clip {
  for (let seed = 0; ; seed++) {
    const c = sampleClip(seed);
    if (pred(c)) return c;
  }
}

/** Frames `[3, T, H, W]` with the time axis permuted: output frame t = input frame order[t]. */
function reorder(frames: Float32Array, order: number[]): Float32Array {
  const plane = H * W;
  const out = new Float32Array(frames.length);
  for (let c = 0; c < 3; c++)
    order.forEach((src, t) =>
      out.set(frames.subarray((c * T + src) * plane, (c * T + src + 1) * plane), (c * T + t) * plane),
    );
  return out;
}
