/**
 * Parity with the tiled reference fixtures (test/fixtures/vae_decode_tiled, vae_encode_tiled:
 * diffusers 0.30.3 `enable_tiling(32, 24, 1/4, 1/3)`, 2×2 tiles): the tile plan against meta.json's
 * `tiles` and `tiling_derived`, the decoded sample, the encoder's moments and posterior within the
 * README tolerances (1e-4 / 1e-4) on cpu and wasm; tiled ≠ untiled; the cascade blend.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import {
  axisTiling,
  blendH,
  blendV,
  defaultVaeTiling,
  needsTiling,
  planTiles,
  resolveVaeTiling,
  type VaeTiling,
} from '../../src/model/vaeTiling.js';
import { expectClose, maxViolation } from '../helpers/close.js';
import { fixtureJson, fixturePath, get, loadFixture, toTensor, type FixtureTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const ATOL = 1e-4;
const RTOL = 1e-4;

interface MetaTile {
  row: number;
  col: number;
  in_rows: [number, number];
  in_cols: [number, number];
  tile_out_hw: [number, number];
  kept_out_rows: [number, number];
  kept_out_cols: [number, number];
}
interface TiledMeta {
  tiling: {
    tile_sample_min_height: number;
    tile_sample_min_width: number;
    tile_overlap_factor_height: number;
    tile_overlap_factor_width: number;
  };
  tiling_derived: Record<string, number>;
  tiles: MetaTile[];
  max_abs_diff: Record<string, number>;
}

const decMeta = fixtureJson<TiledMeta>('vae_decode_tiled', 'meta.json');
const encMeta = fixtureJson<TiledMeta>('vae_encode_tiled', 'meta.json');

function tilingOf(meta: TiledMeta): VaeTiling {
  const t = meta.tiling;
  return {
    tileSampleMinHeight: t.tile_sample_min_height,
    tileSampleMinWidth: t.tile_sample_min_width,
    overlapFactorHeight: t.tile_overlap_factor_height,
    overlapFactorWidth: t.tile_overlap_factor_width,
  };
}

const asMeta = (p: ReturnType<typeof planTiles>): MetaTile[] =>
  p.tiles.map((t) => ({
    row: t.row,
    col: t.col,
    in_rows: t.inRows,
    in_cols: t.inCols,
    tile_out_hw: t.outHW,
    kept_out_rows: t.keptOutRows,
    kept_out_cols: t.keptOutCols,
  }));

describe('tile plans (no tensors)', () => {
  it('decode: the tiles and derived parameters of vae_decode_tiled/meta.json', () => {
    const t = tilingOf(decMeta);
    const plan = planTiles('decode', [5, 4], t, 8);
    expect(asMeta(plan)).toEqual(decMeta.tiles);
    expect(plan.outHW).toEqual([40, 32]);
    const d = decMeta.tiling_derived;
    expect([plan.height.tileIn, plan.width.tileIn]).toEqual([d['tile_latent_min_height'], d['tile_latent_min_width']]);
    expect([plan.height.strideIn, plan.width.strideIn]).toEqual([d['stride_latent_height'], d['stride_latent_width']]);
    expect([plan.height.blendOut, plan.width.blendOut]).toEqual([
      d['blend_extent_height_px'],
      d['blend_extent_width_px'],
    ]);
    expect([plan.height.keepOut, plan.width.keepOut]).toEqual([d['row_limit_height_px'], d['row_limit_width_px']]);
    expect(needsTiling('decode', [5, 4], t, 8)).toBe(true);
    expect(needsTiling('decode', [4, 3], t, 8)).toBe(false); // one tile: the reference decodes untiled
  });

  it('encode: the tiles and derived parameters of vae_encode_tiled/meta.json', () => {
    const t = tilingOf(encMeta);
    const plan = planTiles('encode', [40, 32], t, 8);
    expect(asMeta(plan)).toEqual(encMeta.tiles);
    expect(plan.outHW).toEqual([5, 4]);
    const d = encMeta.tiling_derived;
    expect([plan.height.strideIn, plan.width.strideIn]).toEqual([d['stride_px_height'], d['stride_px_width']]);
    expect([plan.height.blendOut, plan.width.blendOut]).toEqual([
      d['blend_extent_height_latent'],
      d['blend_extent_width_latent'],
    ]);
    expect([plan.height.keepOut, plan.width.keepOut]).toEqual([
      d['row_limit_height_latent'],
      d['row_limit_width_latent'],
    ]);
    expect(needsTiling('encode', [32, 24], t, 8)).toBe(false);
    expect(needsTiling('encode', [33, 24], t, 8)).toBe(true);
  });

  it("diffusers' defaults for 480×720 tile a 60×90 latent into 3×3 tiles that keep exactly 480×720", () => {
    const t = defaultVaeTiling(480, 720);
    expect(t).toEqual({
      tileSampleMinHeight: 240,
      tileSampleMinWidth: 360,
      overlapFactorHeight: 1 / 6,
      overlapFactorWidth: 1 / 5,
    });
    expect(axisTiling('decode', 240, 1 / 6, 8)).toEqual({ tileIn: 30, strideIn: 25, blendOut: 40, keepOut: 200 });
    expect(axisTiling('decode', 360, 1 / 5, 8)).toEqual({ tileIn: 45, strideIn: 36, blendOut: 72, keepOut: 288 });
    const dec = planTiles('decode', [60, 90], t, 8);
    expect(dec.tiles).toHaveLength(9);
    expect(dec.outHW).toEqual([480, 720]);
    const enc = planTiles('encode', [480, 720], t, 8);
    expect(enc.tiles.map((x) => [x.inRows, x.inCols])).toEqual(
      dec.tiles.map((x) => [x.inRows.map((v) => 8 * v), x.inCols.map((v) => 8 * v)]),
    );
    expect(enc.outHW).toEqual([60, 90]);
  });

  it("enable_tiling's argument rule (missing or 0 → previous value) and refusals", () => {
    const d = defaultVaeTiling(480, 720);
    expect(resolveVaeTiling({ tileSampleMinHeight: 0, overlapFactorWidth: 0.25 }, d)).toEqual({
      ...d,
      overlapFactorWidth: 0.25,
    });
    expect(() => resolveVaeTiling({ overlapFactorHeight: 1 }, d)).toThrow(/overlapFactorHeight/);
    expect(() => resolveVaeTiling({ tileSampleMinWidth: 7.5 }, d)).toThrow(/tileSampleMinWidth/);
    expect(() => axisTiling('decode', 4, 0, 8)).toThrow(/under one latent pixel/);
    expect(() => axisTiling('decode', 8, 0.5, 8)).toThrow(/stride of 0/);
  });
});

describe('blend_v / blend_h', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  /** The reference loop on plain arrays of a `[1, 1, 1, H, W]` tile: b[y] = a[−e + y]·(1 − y/e) + b[y]·(y/e). */
  function blendLoop(a: number[][], b: number[][], extent: number, rows: boolean): number[][] {
    const out = b.map((r) => [...r]);
    const e = Math.min(rows ? a.length : a[0]!.length, rows ? b.length : b[0]!.length, extent);
    const f = Math.fround;
    for (let y = 0; y < e; y++) {
      if (rows) out[y] = out[y]!.map((v, x) => f(f(a[a.length - e + y]![x]! * f(1 - y / e)) + f(v * f(y / e))));
      else
        for (const [i, r] of out.entries())
          r[y] = f(f(a[i]![a[i]!.length - e + y]! * f(1 - y / e)) + f(r[y]! * f(y / e)));
    }
    return out;
  }
  const grid = (h: number, w: number, seed: number) =>
    Array.from({ length: h }, (_, i) => Array.from({ length: w }, (_, j) => Math.fround(Math.sin(seed + 7 * i + j))));
  const t5 = (g: number[][]) => tf.tensor(g.flat(), [1, 1, 1, g.length, g[0]!.length]);

  it.each([
    [6, 5, 4, 5, 3, true],
    [6, 5, 2, 5, 3, true], // e = min(a.H, b.H, extent) = 2
    [4, 6, 4, 3, 4, false],
    [4, 6, 4, 2, 5, false],
  ])('a %i×%i, b %i×%i, extent %i (rows: %s) equals the reference loop', async (ah, aw, bh, bw, extent, rows) => {
    const a = rows ? grid(ah, bw, 1) : grid(bh, aw, 1);
    const b = grid(bh, bw, 2);
    const got = (rows ? blendV : blendH)(t5(a), t5(b), extent);
    expect(Array.from(await got.data())).toEqual(blendLoop(a, b, extent, rows).flat());
    got.dispose();
  });
});

describe.each(['cpu', 'wasm'] as const)('tiled VAE parity on %s', (backend) => {
  let vae: CogVideoXVAE;
  let dec: Map<string, FixtureTensor>;
  let enc: Map<string, FixtureTensor>;

  beforeAll(async () => {
    await selectBackend(backend);
    vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode_tiled'), {
      weights: fixturePath('vae_decode_tiled', 'weights.safetensors'),
    });
    dec = await loadFixture('vae_decode_tiled');
    enc = await loadFixture('vae_encode_tiled');
  });
  afterAll(() => {
    vae?.dispose();
  });

  it('decode with tiling (auto_split frame batching per tile) matches sample', async () => {
    const z = toTensor(dec, 'z');
    const out = vae.decode(z, { tiling: tilingOf(decMeta), batching: 'auto_split' });
    expect(out.shape).toEqual(get(dec, 'sample').shape);
    const expected = get(dec, 'sample').data as Float32Array;
    const got = (await out.data()) as Float32Array;
    const v = maxViolation(got, expected, ATOL, RTOL);
    process.stderr.write(`${backend} vae_decode_tiled sample: max abs err ${maxAbs(got, expected).toExponential(2)}\n`);
    expect(v.ok).toBe(true);
    // tiling is not exact: the untiled decode differs (by 4.13 in the reference)
    const untiled = vae.decode(z, { batching: 'auto_split' });
    const diff = maxAbs((await untiled.data()) as Float32Array, expected);
    expect(diff).toBeGreaterThan(1);
    expect(diff).toBeCloseTo(decMeta.max_abs_diff['untiled_decode']!, 3);
    tf.dispose([z, out, untiled]);
  });

  it('enableTiling applies to later calls; disableTiling restores the untiled result', async () => {
    const z = toTensor(dec, 'z');
    const expected = get(dec, 'sample').data as Float32Array;
    const t = tilingOf(decMeta);
    expect(vae.enableTiling(t)).toEqual(t);
    const tiled = vae.decode(z, { batching: 'auto_split' });
    expectClose(`${backend}:sample (enableTiling)`, await tiled.data(), expected, ATOL, RTOL);
    const forcedOff = vae.decode(z, { batching: 'auto_split', tiling: false });
    vae.disableTiling();
    const off = vae.decode(z, { batching: 'auto_split' });
    expect(Array.from(await off.data())).toEqual(Array.from(await forcedOff.data()));
    expect(vae.tiling).toBeNull();
    tf.dispose([z, tiled, forcedOff, off]);
  });

  it('encode with tiling matches moments and latent_dist.{mean,logvar,std}', async () => {
    const x = toTensor(enc, 'x');
    const post = vae.encode(x, { tiling: tilingOf(encMeta) });
    for (const [name, t] of [
      ['moments', post.moments],
      ['latent_dist.mean', post.mean],
      ['latent_dist.logvar', post.logvar],
      ['latent_dist.std', post.std],
    ] as [string, tf.Tensor][]) {
      expect(t.shape).toEqual(get(enc, name).shape);
      const got = (await t.data()) as Float32Array;
      const expected = get(enc, name).data as Float32Array;
      process.stderr.write(
        `${backend} vae_encode_tiled ${name}: max abs err ${maxAbs(got, expected).toExponential(2)}\n`,
      );
      expectClose(`${backend}:${name}`, got, expected, ATOL, RTOL);
    }
    const untiled = vae.encodeMoments(x);
    const diff = maxAbs((await untiled.data()) as Float32Array, get(enc, 'moments').data as Float32Array);
    expect(diff).toBeCloseTo(encMeta.max_abs_diff['untiled_encode']!, 3);
    post.dispose();
    tf.dispose([x, untiled]);
  });

  it("tile (0, 0)'s kept part is the untiled decode of its input range (nothing blends into it)", async () => {
    const z = toTensor(dec, 'z');
    const plan = vae.tilePlan('decode', [5, 4], tilingOf(decMeta))!;
    const first = plan.tiles[0]!;
    const part = tf.slice(z, [0, 0, 0, 0, 0], [-1, -1, -1, first.inRows[1], first.inCols[1]]); // [1, 4, 3, 4, 3]
    const out = vae.decode(part, { batching: 'auto_split' }); // [1, 3, 9, 32, 24]
    expect(out.shape.slice(3)).toEqual(first.outHW);
    const [r1, c1] = [first.keptOutRows[1], first.keptOutCols[1]];
    const kept = tf.slice(out, [0, 0, 0, 0, 0], [-1, -1, -1, r1, c1]);
    const ref = tf.slice(toTensor(dec, 'sample'), [0, 0, 0, 0, 0], [-1, -1, -1, r1, c1]);
    expectClose(`${backend}:tile (0,0)`, await kept.data(), (await ref.data()) as Float32Array, ATOL, RTOL);
    tf.dispose([z, part, out, kept, ref]);
  });
});

describe('tiled decode and encode on wasm: no leaks', () => {
  let vae: CogVideoXVAE;
  beforeAll(async () => {
    await selectBackend('wasm');
    vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode_tiled'), {
      weights: fixturePath('vae_decode_tiled', 'weights.safetensors'),
    });
  });
  afterAll(() => {
    vae?.dispose();
  });

  it('tf.memory().numTensors does not grow across repeated tiled decodes and encodes', async () => {
    const z = tf.randomNormal([1, 4, 3, 5, 4], 0, 1, 'float32', 11);
    const x = tf.randomUniform([1, 3, 9, 40, 32], -1, 1, 'float32', 12);
    const tiling = tilingOf(decMeta);
    const round = async () => {
      const out = vae.decode(z, { tiling, batching: 'auto_split' });
      await out.data();
      out.dispose();
      for (const c of vae.decodeChunks(z, { tiling })) c.dispose();
      const post = vae.encode(x, { tiling });
      post.dispose();
    };
    await round();
    const before = tf.memory().numTensors;
    await round();
    await round();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([z, x]);
  });
});

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
