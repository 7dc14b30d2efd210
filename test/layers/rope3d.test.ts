/**
 * 3D RoPE tables: parity with the tables the reference pipelines pass (`image_rotary_emb.cos/.sin`,
 * atol 1e-5) on the 5B case (4×4 grid inside a 6×8 base grid: fractional positions) and the two
 * Mask²DiT cases (6 frames over 3 scenes), on cpu and wasm; the crop rule against `meta.json → rope`;
 * Python rounding; properties of the grid and the tables (fast-check); the RoPE3D layer.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { ConfigError, ShapeError } from '../../src/errors.js';
import {
  pyRound,
  resizeCropRegion,
  rope3dData,
  rope3dForConfig,
  rope3dTables,
  ropeFrequencies,
  ropeGrid,
  RoPE3D,
  type RopeConfigLike,
} from '../../src/layers/rope3d.js';
import { expectClose } from '../helpers/close.js';
import { fixtureJson, get, loadFixture } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const CASES = ['transformer_5b_rope_single', 'mask2dit_multiscene', 'mask2dit_conditional'] as const;
const ATOL = 1e-5;
const SEED = 424242;
const RUNS = 200;

interface RopeMeta {
  grid_t: number[];
  grid_h: number[];
  grid_w: number[];
  crops_coords: [[number, number], [number, number]];
  base_grid_hw: [number, number];
  grid_hw: [number, number];
  dim_t: number;
  dim_h: number;
  dim_w: number;
}

describe.each(['cpu', 'wasm'] as const)('RoPE tables parity on %s', (backend) => {
  it.each(CASES)('%s: image_rotary_emb.cos/.sin match the reference', async (caseName) => {
    await selectBackend(backend);
    const cfg = fixtureJson<RopeConfigLike>(caseName, 'config.json');
    const meta = fixtureJson<{ rope: RopeMeta }>(caseName, 'meta.json').rope;
    const io = await loadFixture(caseName);
    const [, F, , H, W] = get(io, 'hidden_states').shape as [number, number, number, number, number];
    expect(meta.grid_t).toHaveLength(F); // the table spans all frames of all scenes

    const grid = ropeGrid(
      H / cfg.patch_size,
      W / cfg.patch_size,
      cfg.sample_height / cfg.patch_size,
      cfg.sample_width / cfg.patch_size,
    );
    expect(grid.crop).toEqual(meta.crops_coords);
    expect(Array.from(grid.rows)).toEqual(meta.grid_h);
    expect(Array.from(grid.cols)).toEqual(meta.grid_w);

    const { cos, sin } = rope3dForConfig(cfg, F, H, W);
    for (const [name, t] of [
      ['cos', cos],
      ['sin', sin],
    ] as const) {
      const ref = get(io, `image_rotary_emb.${name}`);
      expect(t.shape).toEqual(ref.shape);
      expectClose(`${backend}:${caseName}:${name}`, await t.data(), ref.data as Float32Array, ATOL, 0);
    }
    tf.dispose([cos, sin]);
  });
});

describe('Python rounding and the crop rule', () => {
  it('pyRound rounds half to even like Python 3', () => {
    const cases: [number, number][] = [
      [0.5, 0],
      [1.5, 2],
      [2.5, 2],
      [3.5, 4],
      [-0.5, 0],
      [-1.5, -2],
      [-2.5, -2],
      [2.4999999, 2],
      [2.5000001, 3],
      [7, 7],
      [-7.2, -7],
    ];
    for (const [x, r] of cases) expect(pyRound(x)).toBe(r);
    expect(() => pyRound(Number.NaN)).toThrow(RangeError);
  });

  it('uses half-to-even where it matters: CogVideoX-5B base 30×45 (480×720 px)', () => {
    // 30×40 grid: rw = 40, left = round(2.5) = 2 (Math.round would say 3)
    expect(resizeCropRegion(30, 40, 30, 45)).toEqual([
      [0, 2],
      [30, 42],
    ]);
    // 25×45 grid: rh = 25, top = round(2.5) = 2
    expect(resizeCropRegion(25, 45, 30, 45)).toEqual([
      [2, 0],
      [27, 45],
    ]);
    // 9×8 grid taller than 6×8: rh = 6, rw = round(6/9·8) = round(5.33) = 5, left = round(1.5) = 2
    expect(resizeCropRegion(9, 8, 6, 8)).toEqual([
      [0, 2],
      [6, 7],
    ]);
    expect(() => resizeCropRegion(0, 4, 6, 8)).toThrow(ShapeError);
  });

  it('at the base resolution the positions are the plain integers 0…n−1 (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), (bh, bw) => {
        const g = ropeGrid(bh, bw, bh, bw);
        return (
          g.crop[0][0] === 0 &&
          g.crop[0][1] === 0 &&
          g.crop[1][0] === bh &&
          g.crop[1][1] === bw &&
          g.rows.every((v, i) => v === i) &&
          g.cols.every((v, i) => v === i)
        );
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('any grid: the crop region lies in the base grid, keeps one full side, and the positions start at its corner, increase, and stay inside it (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 48 }),
        fc.integer({ min: 1, max: 48 }),
        fc.integer({ min: 1, max: 48 }),
        fc.integer({ min: 1, max: 48 }),
        (gh, gw, bh, bw) => {
          const g = ropeGrid(gh, gw, bh, bw);
          const [[top, left], [bottom, right]] = g.crop;
          const inside = top >= 0 && left >= 0 && bottom <= bh && right <= bw && bottom >= top && right >= left;
          const fullSide = (top === 0 && bottom === bh) || (left === 0 && right === bw);
          const stepH = (bottom - top) / gh;
          const stepW = (right - left) / gw;
          const rowsOk =
            g.rows.length === gh &&
            g.rows[0] === top &&
            g.rows.every((v, i) => Math.abs(v - (top + i * stepH)) <= 1e-5 * Math.max(1, Math.abs(v)));
          const colsOk =
            g.cols.length === gw &&
            g.cols[0] === left &&
            g.cols.every((v, i) => Math.abs(v - (left + i * stepW)) <= 1e-5 * Math.max(1, Math.abs(v)));
          const below =
            g.rows.every((v) => v < bottom || bottom === top) && g.cols.every((v) => v < right || right === left);
          return inside && fullSide && rowsOk && colsOk && below;
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe('RoPE table structure', () => {
  it('ropeFrequencies are the float32 θ_k = 1/10000^(2k/d)', () => {
    const f = ropeFrequencies(6);
    expect(f).toHaveLength(3);
    for (let k = 0; k < 3; k++)
      expect(f[k]).toBe(Math.fround(1 / Math.fround(Math.pow(10000, Math.fround((2 * k) / 6)))));
    expect(f[0]).toBe(1);
  });

  it('rows are [time | row | col], pairs repeated, cos² + sin² = 1; the time part depends only on the frame (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 32, 64),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        (hd, F, gh, gw, bh, bw) => {
          const d = rope3dData({ headDim: hd, frames: F, gridH: gh, gridW: gw, baseH: bh, baseW: bw });
          const g = ropeGrid(gh, gw, bh, bw);
          const [dt, dh] = [hd / 4, (hd / 8) * 3];
          if (d.rows !== F * gh * gw || d.cos.length !== d.rows * hd) return false;
          for (let f = 0; f < F; f++)
            for (let r = 0; r < gh; r++)
              for (let c = 0; c < gw; c++) {
                const row = ((f * gh + r) * gw + c) * hd;
                for (let j = 0; j < hd; j += 2) {
                  if (d.cos[row + j] !== d.cos[row + j + 1] || d.sin[row + j] !== d.sin[row + j + 1]) return false;
                  if (Math.abs(d.cos[row + j]! ** 2 + d.sin[row + j]! ** 2 - 1) > 1e-6) return false;
                }
                // first frequency of each part is 1: its cos is cos(position)
                if (Math.abs(d.cos[row]! - Math.cos(f)) > 1e-6) return false;
                if (Math.abs(d.cos[row + dt]! - Math.cos(g.rows[r]!)) > 1e-6) return false;
                if (Math.abs(d.cos[row + dt + dh]! - Math.cos(g.cols[c]!)) > 1e-6) return false;
                // the time part equals token (f, 0, 0)'s
                const first = f * gh * gw * hd;
                for (let j = 0; j < dt; j++) if (d.cos[row + j] !== d.cos[first + j]) return false;
              }
          return true;
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });

  it('time positions continue across scenes: the table for F frames is a prefix of the one for F + k', () => {
    const short = rope3dData({ headDim: 16, frames: 2, gridH: 3, gridW: 4, baseH: 4, baseW: 6 });
    const long = rope3dData({ headDim: 16, frames: 6, gridH: 3, gridW: 4, baseH: 4, baseW: 6 });
    expect(Array.from(long.cos.subarray(0, short.cos.length))).toEqual(Array.from(short.cos));
    expect(Array.from(long.sin.subarray(0, short.sin.length))).toEqual(Array.from(short.sin));
  });

  it('slice grid (CogVideoX 1.5, patch_size_t): integer positions, ceil(F/p_t) frames, grid must fit the base', () => {
    const cfg: RopeConfigLike = {
      attention_head_dim: 16,
      patch_size: 2,
      sample_height: 12,
      sample_width: 16,
      patch_size_t: 2,
    };
    const sliced = rope3dForConfig(cfg, 5, 8, 8); // 3 frames of a 4×4 grid, positions 0..3 (no crop)
    const plain = rope3dTables({ headDim: 16, frames: 3, gridH: 4, gridW: 4, baseH: 4, baseW: 4 });
    expect(sliced.cos.shape).toEqual([3 * 16, 16]);
    expect(Array.from(sliced.cos.dataSync())).toEqual(Array.from(plain.cos.dataSync()));
    expect(() => rope3dForConfig(cfg, 2, 14, 8)).toThrow(/must fit/);
    tf.dispose([sliced.cos, sliced.sin, plain.cos, plain.sin]);
  });

  it('rejects head dims that the 2:3:3 split cannot take and non-integer grids', () => {
    expect(() => rope3dData({ headDim: 24, frames: 1, gridH: 1, gridW: 1, baseH: 1, baseW: 1 })).toThrow(ConfigError);
    expect(() => rope3dData({ headDim: 8, frames: 1, gridH: 1, gridW: 1, baseH: 1, baseW: 1 })).toThrow(
      /multiple of 16/,
    );
    expect(() =>
      rope3dForConfig({ attention_head_dim: 16, patch_size: 2, sample_height: 8, sample_width: 8 }, 1, 7, 8),
    ).toThrow(ShapeError);
  });
});

describe('RoPE3D layer', () => {
  const cfg: RopeConfigLike = { attention_head_dim: 16, patch_size: 2, sample_height: 12, sample_width: 16 };

  it('gives rope3dForConfig tables through forward and apply, without weights or leaks, and round-trips its config', async () => {
    await selectBackend('cpu');
    const layer = new RoPE3D(cfg);
    expect(tf.serialization.getRegisteredName(RoPE3D)).toBe('Mask2DiT>M2RoPE3D');
    expect(layer.countParams()).toBe(0);
    expect([...layer.namedWeights()]).toEqual([]);
    const cfgOut = layer.getConfig();
    expect(cfgOut).toMatchObject({ ...cfg, patch_size_t: null, theta: 10000 });
    expect(new RoPE3D(cfgOut as unknown as RopeConfigLike).getConfig()).toEqual(cfgOut);

    const ref = rope3dForConfig(cfg, 3, 8, 8);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { cos, sin } = layer.forward({ frames: 3, latentHeight: 8, latentWidth: 8 });
      expect(Array.from(cos.dataSync())).toEqual(Array.from(ref.cos.dataSync()));
      expect(Array.from(sin.dataSync())).toEqual(Array.from(ref.sin.dataSync()));
      tf.dispose([cos, sin]);
    }
    expect(tf.memory().numTensors).toBe(before);
    const latents = tf.zeros([2, 3, 16, 8, 8]);
    const out = layer.apply(latents) as tf.Tensor[];
    expect(out.map((t) => t.shape)).toEqual([
      [48, 16],
      [48, 16],
    ]);
    expect(layer.computeOutputShape([2, 3, 16, 8, 8])).toEqual([
      [48, 16],
      [48, 16],
    ]);
    tf.dispose([latents, ...out, ref.cos, ref.sin]);
    expect(tf.memory().numTensors).toBe(before - 2);
  });
});
