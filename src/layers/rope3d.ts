/**
 * 3D rotary position tables for the video tokens (CogVideoX-5B / Mask²DiT), as the reference
 * pipelines build them (`_prepare_rotary_positional_embeddings` + `get_3d_rotary_pos_embed`).
 *
 * - Head dim split: `dim_t = headDim/4`, `dim_h = dim_w = 3·headDim/8` (hence headDim % 16 == 0: every
 *   part must be even).
 * - One axis with `d` dims at position `x`: `θ_k = 1 / theta^(2k/d)` (float32, as torch computes it),
 *   `arg = x·θ_k` (float32), `cos(arg)`, `sin(arg)`, each value repeated twice `[c0, c0, c1, c1, …]`.
 * - A token's row is `[time part | row part | column part]`, rows in frame-major `(t, row, col)` order.
 * - Time positions are `0 … frames−1` (continuous over all scenes of a multi-scene video).
 * - Row/column positions (`gridType: 'linspace'`, CogVideoX 1.0): the grid is fitted into the base grid
 *   `(sample_height/p, sample_width/p)` (`ropeGrid`), `linspace(top, bottom, gridH, endpoint=False)`,
 *   `linspace(left, right, gridW, endpoint=False)`: fractional when the grid is not the base grid.
 * - `gridType: 'slice'` (CogVideoX 1.5 with `patch_size_t`): plain integer positions `0 … grid−1`, the
 *   grid must fit in the base grid.
 *
 * All tables are computed in JS (float64 where the reference uses float64, float32 rounding where it
 * rounds), so the result does not depend on the tfjs backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError, ShapeError } from '../errors.js';
import { M2Layer } from './layer.js';

const f32 = Math.fround;

/** Python 3 `round(x)` for a float: nearest integer, ties to even (`round(2.5) == 2`, `round(3.5) == 4`). */
export function pyRound(x: number): number {
  if (!Number.isFinite(x)) throw new RangeError(`pyRound: cannot round ${x}`);
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * numpy `linspace(start, stop, num, endpoint=False, dtype=float32)`: computed in float64
 * (`i·step + start`, `step = (stop − start)/num`), then rounded to float32.
 */
export function linspaceF32(start: number, stop: number, num: number): Float32Array {
  const out = new Float32Array(num);
  const step = (stop - start) / num;
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  return out;
}

/** The crop region of the base grid that the grid is resized into: `[[top, left], [bottom, right]]`. */
export type CropCoords = [[number, number], [number, number]];

/**
 * The reference's `get_resize_crop_region_for_grid((gridH, gridW), baseW, baseH)`: fit the grid's
 * aspect ratio into the base grid, centred, with Python rounding (half to even).
 */
export function resizeCropRegion(gridH: number, gridW: number, baseH: number, baseW: number): CropCoords {
  for (const [k, v] of Object.entries({ gridH, gridW, baseH, baseW })) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError('rope grid', `${k} must be a positive integer, got ${v}`);
  }
  let rh: number;
  let rw: number;
  if (gridH / gridW > baseH / baseW) {
    rh = baseH;
    rw = pyRound((baseH / gridH) * gridW);
  } else {
    rw = baseW;
    rh = pyRound((baseW / gridW) * gridH);
  }
  const top = pyRound((baseH - rh) / 2);
  const left = pyRound((baseW - rw) / 2);
  return [
    [top, left],
    [top + rh, left + rw],
  ];
}

/** Row and column positions of a `gridH × gridW` patch grid against a `baseH × baseW` base grid. */
export interface RopeGrid {
  /** Row positions, `[gridH]` (float32 values). */
  rows: Float32Array;
  /** Column positions, `[gridW]` (float32 values). */
  cols: Float32Array;
  /** `[[top, left], [bottom, right]]` of the crop region in the base grid. */
  crop: CropCoords;
}

/**
 * The reference's positions for the linspace grid type: at the base resolution these are the plain
 * integers `0 … grid−1`; otherwise fractional positions spread over the crop region.
 */
export function ropeGrid(gridH: number, gridW: number, baseH: number, baseW: number): RopeGrid {
  const crop = resizeCropRegion(gridH, gridW, baseH, baseW);
  const [[top, left], [bottom, right]] = crop;
  return { rows: linspaceF32(top, bottom, gridH), cols: linspaceF32(left, right, gridW), crop };
}

/** `θ_k = 1 / theta^(2k/d)` for `k < d/2`, with every step rounded to float32 as torch does. */
export function ropeFrequencies(d: number, theta = 10000): Float32Array {
  const out = new Float32Array(d / 2);
  for (let k = 0; k < d / 2; k++) {
    const e = f32((2 * k) / d); // arange(0, d, 2).float() / d
    out[k] = 1 / f32(Math.pow(theta, e)); // 1.0 / theta ** e, both float32
  }
  return out;
}

/** cos/sin of one axis: `[n, d]` each, `arg = f32(x·θ_k)`, each value repeated twice. */
function axisTables(positions: Float32Array, d: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const freqs = ropeFrequencies(d, theta);
  const n = positions.length;
  const cos = new Float32Array(n * d);
  const sin = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const x = positions[i]!;
    for (let k = 0; k < d / 2; k++) {
      const arg = f32(x * freqs[k]!);
      const c = Math.cos(arg);
      const s = Math.sin(arg);
      const at = i * d + 2 * k;
      cos[at] = c;
      cos[at + 1] = c;
      sin[at] = s;
      sin[at + 1] = s;
    }
  }
  return { cos, sin };
}

export interface Rope3dOptions {
  /** `attention_head_dim` (a multiple of 16). */
  headDim: number;
  /** Latent frames after temporal patching: all scenes together for Mask²DiT. */
  frames: number;
  /** Patch rows `H/p` and columns `W/p`. */
  gridH: number;
  gridW: number;
  /** Base grid `sample_height/p`, `sample_width/p`. */
  baseH: number;
  baseW: number;
  /** Default 10000. */
  theta?: number;
  /** 'linspace' (CogVideoX 1.0, default) or 'slice' (CogVideoX 1.5). */
  gridType?: 'linspace' | 'slice';
}

/** The tables as plain arrays, `[frames·gridH·gridW, headDim]` row-major each. */
export interface Rope3dData {
  cos: Float32Array;
  sin: Float32Array;
  rows: number;
  headDim: number;
}

/** Head-dim split of the reference: `[dim_t, dim_h, dim_w]`. */
export function ropeAxisDims(headDim: number): [number, number, number] {
  if (!Number.isInteger(headDim) || headDim < 16 || headDim % 16 !== 0) {
    throw new ConfigError(
      '(config)',
      'attention_head_dim',
      `3D RoPE splits the head dim into headDim/4 + 2·(3·headDim/8), each even, so it must be a multiple of 16; got ${headDim}`,
    );
  }
  return [headDim / 4, (headDim / 8) * 3, (headDim / 8) * 3];
}

/** The RoPE tables as Float32Arrays (no tfjs involved). */
export function rope3dData(opts: Rope3dOptions): Rope3dData {
  const { headDim, frames, gridH, gridW, baseH, baseW } = opts;
  const theta = opts.theta ?? 10000;
  const [dt, dh, dw] = ropeAxisDims(headDim);
  if (!Number.isInteger(frames) || frames < 1)
    throw new ShapeError('rope frames', `expected a positive integer, got ${frames}`);
  let rowsPos: Float32Array;
  let colsPos: Float32Array;
  if ((opts.gridType ?? 'linspace') === 'linspace') {
    const g = ropeGrid(gridH, gridW, baseH, baseW);
    rowsPos = g.rows;
    colsPos = g.cols;
  } else {
    if (gridH > baseH || gridW > baseW) {
      throw new ShapeError(
        'rope grid',
        `the 'slice' grid (CogVideoX 1.5) takes positions from the base grid ${baseH}×${baseW}, so the ${gridH}×${gridW} patch grid must fit in it`,
      );
    }
    rowsPos = Float32Array.from({ length: gridH }, (_, i) => i);
    colsPos = Float32Array.from({ length: gridW }, (_, i) => i);
  }
  const tPos = Float32Array.from({ length: frames }, (_, i) => i);
  const t = axisTables(tPos, dt, theta);
  const h = axisTables(rowsPos, dh, theta);
  const w = axisTables(colsPos, dw, theta);

  const rows = frames * gridH * gridW;
  const cos = new Float32Array(rows * headDim);
  const sin = new Float32Array(rows * headDim);
  let at = 0;
  for (let f = 0; f < frames; f++) {
    for (let r = 0; r < gridH; r++) {
      for (let c = 0; c < gridW; c++) {
        cos.set(t.cos.subarray(f * dt, (f + 1) * dt), at);
        sin.set(t.sin.subarray(f * dt, (f + 1) * dt), at);
        cos.set(h.cos.subarray(r * dh, (r + 1) * dh), at + dt);
        sin.set(h.sin.subarray(r * dh, (r + 1) * dh), at + dt);
        cos.set(w.cos.subarray(c * dw, (c + 1) * dw), at + dt + dh);
        sin.set(w.sin.subarray(c * dw, (c + 1) * dw), at + dt + dh);
        at += headDim;
      }
    }
  }
  return { cos, sin, rows, headDim };
}

/** RoPE cos/sin tables `[frames·gridH·gridW, headDim]` as tensors (the caller owns them). */
export function rope3dTables(opts: Rope3dOptions): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const d = rope3dData(opts);
  return {
    cos: tf.tensor2d(d.cos, [d.rows, d.headDim], 'float32'),
    sin: tf.tensor2d(d.sin, [d.rows, d.headDim], 'float32'),
  };
}

/** The config keys the tables depend on (reference names). */
export interface RopeConfigLike {
  attention_head_dim: number;
  patch_size: number;
  sample_height: number;
  sample_width: number;
  /** CogVideoX 1.5 temporal patch size: frames are `ceil(F / patch_size_t)` and the grid type is 'slice'. */
  patch_size_t?: number | null;
}

/** The `rope3dTables` options for `frames` latent frames of `latentH × latentW` latents under `config`. */
export function rope3dOptionsForConfig(
  config: RopeConfigLike,
  frames: number,
  latentH: number,
  latentW: number,
  theta = 10000,
): Rope3dOptions {
  const p = config.patch_size;
  if (latentH % p !== 0 || latentW % p !== 0)
    throw new ShapeError(
      'hidden_states',
      `latent height ${latentH} and width ${latentW} must be multiples of patch_size ${p}`,
    );
  const pt = config.patch_size_t ?? null;
  return {
    headDim: config.attention_head_dim,
    frames: pt === null ? frames : Math.ceil(frames / pt),
    gridH: latentH / p,
    gridW: latentW / p,
    baseH: Math.floor(config.sample_height / p),
    baseW: Math.floor(config.sample_width / p),
    theta,
    gridType: pt === null ? 'linspace' : 'slice',
  };
}

/**
 * RoPE tables as the Mask²DiT pipeline builds them: base grid `(sample_height/p, sample_width/p)` from
 * the config. (The diffusers 0.30.3 CogVideoX pipeline hard-codes a 480×720-pixel base, i.e. 30×45 at
 * p = 2 and VAE factor 8, which is the same grid for the released checkpoints' sample size 60×90.)
 */
export function rope3dForConfig(
  config: RopeConfigLike,
  frames: number,
  latentH: number,
  latentW: number,
  theta = 10000,
): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  return rope3dTables(rope3dOptionsForConfig(config, frames, latentH, latentW, theta));
}

/** `RoPE3D` config: the rope-relevant keys of the transformer config plus theta. */
export interface RoPE3DConfig extends RopeConfigLike {
  theta?: number;
}

/** Inputs of `RoPE3D.forward`: latent frames and latent (pre-patch) height and width. */
export interface RoPE3DInputs {
  frames: number;
  latentHeight: number;
  latentWidth: number;
}

/**
 * A weightless layer that makes the RoPE tables for a latent shape. It keeps the last table as plain
 * arrays, so repeated calls at one shape (every sampler step) cost only two tensor uploads.
 */
export class RoPE3D extends M2Layer {
  static readonly className = 'M2RoPE3D';
  readonly config: Required<RopeConfigLike> & { theta: number };
  private cache: { key: string; data: Rope3dData } | undefined;

  constructor(config: RoPE3DConfig, name = 'rope') {
    super(name);
    this.config = {
      attention_head_dim: config.attention_head_dim,
      patch_size: config.patch_size,
      sample_height: config.sample_height,
      sample_width: config.sample_width,
      patch_size_t: config.patch_size_t ?? null,
      theta: config.theta ?? 10000,
    };
    ropeAxisDims(config.attention_head_dim); // validate now
  }

  /** `{cos, sin}` `[tokens, headDim]`, fresh tensors owned by the caller. */
  forward(inputs: RoPE3DInputs): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    const opts = rope3dOptionsForConfig(
      this.config,
      inputs.frames,
      inputs.latentHeight,
      inputs.latentWidth,
      this.config.theta,
    );
    const key = JSON.stringify(opts);
    if (this.cache?.key !== key) this.cache = { key, data: rope3dData(opts) };
    const d = this.cache.data;
    return {
      cos: tf.tensor2d(d.cos, [d.rows, d.headDim], 'float32'),
      sin: tf.tensor2d(d.sin, [d.rows, d.headDim], 'float32'),
    };
  }

  /** tfjs-layers adapter: latents `[B, F, C, H, W]` in, `[cos, sin]` out. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    if (x.rank !== 5) throw new ShapeError('hidden_states', `expected [B, F, C, H, W], got [${x.shape}]`);
    const [, F, , H, W] = x.shape as [number, number, number, number, number];
    const { cos, sin } = this.forward({ frames: F, latentHeight: H, latentWidth: W });
    return [cos, sin];
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape[] {
    const shape = (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
    const [, F, , H, W] = shape;
    const c = this.config;
    const p = c.patch_size;
    const frames = F == null ? null : c.patch_size_t === null ? F : Math.ceil(F / c.patch_size_t);
    const tokens = frames == null || H == null || W == null ? null : frames * (H / p) * (W / p);
    return [
      [tokens, c.attention_head_dim],
      [tokens, c.attention_head_dim],
    ];
  }
}
tf.serialization.registerClass(RoPE3D, 'Mask2DiT');
