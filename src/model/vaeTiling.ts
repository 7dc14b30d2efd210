/**
 * Spatial tiling of the VAE, exactly as diffusers 0.30.3 `AutoencoderKLCogVideoX.enable_tiling` /
 * `tiled_decode` / `tiled_encode` / `blend_v` / `blend_h` do it: the input is cut into overlapping
 * tiles, each tile runs through the decoder (or encoder) on its own, and the outputs are blended
 * across the overlaps and cropped, so peak memory is one tile's whatever the frame size.
 *
 * Decode tiles the latent, encode tiles the pixels; both blend and crop in output units:
 *
 *   decode                                        encode
 *   tile_in  = int(tile_sample_min / s)   latent   tile_in  = tile_sample_min           pixels
 *   stride   = int(tile_in · (1 − f))     latent   stride   = int(tile_in · (1 − f))    pixels
 *   blend e  = int(tile_sample_min · f)   pixels   blend e  = int(tile_latent_min · f)  latents
 *   keep     = tile_sample_min − e        pixels   keep     = tile_latent_min − e       latents
 *
 * (`s` = spatial compression 8, `f` = overlap factor, `tile_latent_min = int(tile_sample_min / s)`.)
 * Tiles start at `range(0, size, stride)` on each axis (edge tiles are smaller). In row-major order,
 * each tile is blended with the tile above (`blend_v`, rows) and then with the tile on its left
 * (`blend_h`, columns): `b[y] = a[−e + y]·(1 − y/e) + b[y]·(y/e)` for `y < e = min(a, b, e)`. The
 * reference writes the blend into the stored tile, so the tiles read as "above" and "left" are the
 * already-blended ones (a cascade; blending un-blended copies differs by up to 3.4 on the fixture).
 * Each tile then keeps `[:keep, :keep]`, and the kept parts are concatenated.
 *
 * Here only what later tiles read is kept: the bottom `e` rows and the right `e` columns of each
 * blended tile (`blend_v`/`blend_h` never read further), not the whole tiles.
 *
 * Layout: `[B, C, T, H, W]` throughout (the VAE's public layout).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { sliceAxis } from '../layers/axis.js';

/** diffusers' `enable_tiling` arguments (pixel sizes, overlap fractions). */
export interface VaeTiling {
  /** `tile_sample_min_height`: a tile's height in pixels. */
  tileSampleMinHeight: number;
  /** `tile_sample_min_width`: a tile's width in pixels. */
  tileSampleMinWidth: number;
  /** `tile_overlap_factor_height`: share of a tile's height that overlaps the next tile. */
  overlapFactorHeight: number;
  /** `tile_overlap_factor_width` */
  overlapFactorWidth: number;
}

/**
 * diffusers' defaults (0.30.x `AutoencoderKLCogVideoX.__init__`): tiles of half the config's sample
 * size (`sample_height // 2`, `sample_width // 2`: 240×360 for CogVideoX's 480×720), overlap 1/6 in
 * height and 1/5 in width — "chosen based on experimentation [...] for 720x480 (WxH)", per the
 * comment there. With them a 480×720 frame is 3×3 tiles of 30×45 latents, strides 25 and 36, which
 * keep exactly 200 and 288 pixels a tile (the stride in pixels), so the output is 480×720 again.
 * (Later diffusers replaced the overlap factors by `tile_sample_stride_*` arguments.)
 */
export function defaultVaeTiling(sampleHeight: number, sampleWidth: number): VaeTiling {
  return {
    tileSampleMinHeight: Math.floor(sampleHeight / 2),
    tileSampleMinWidth: Math.floor(sampleWidth / 2),
    overlapFactorHeight: 1 / 6,
    overlapFactorWidth: 1 / 5,
  };
}

/** `enable_tiling(**partial)`: each missing (or 0, Python's `or`) argument takes the default. */
export function resolveVaeTiling(partial: Partial<VaeTiling>, defaults: VaeTiling): VaeTiling {
  const pick = (k: keyof VaeTiling) => (partial[k] === undefined || partial[k] === 0 ? defaults[k] : partial[k]);
  const t: VaeTiling = {
    tileSampleMinHeight: pick('tileSampleMinHeight'),
    tileSampleMinWidth: pick('tileSampleMinWidth'),
    overlapFactorHeight: pick('overlapFactorHeight'),
    overlapFactorWidth: pick('overlapFactorWidth'),
  };
  for (const k of ['tileSampleMinHeight', 'tileSampleMinWidth'] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 1)
      throw new ShapeError(`tiling.${k}`, `expected a positive integer (pixels), got ${t[k]}`);
  }
  for (const k of ['overlapFactorHeight', 'overlapFactorWidth'] as const) {
    if (!(t[k] >= 0 && t[k] < 1)) throw new ShapeError(`tiling.${k}`, `expected a fraction in [0, 1), got ${t[k]}`);
  }
  return t;
}

export type TilingKind = 'decode' | 'encode';

/** One axis of a tiling, derived as the reference derives it (see the file comment). */
export interface AxisTiling {
  /** Input extent of a full tile (latents for decode, pixels for encode). */
  tileIn: number;
  /** Distance between tile starts, input units. */
  strideIn: number;
  /** Blend extent, output units (before `min(a, b, e)`). */
  blendOut: number;
  /** Output rows/columns a tile keeps (`row_limit`), output units. */
  keepOut: number;
}

/** Output size of `n` encoder input pixels: each downsampler pads 1 and convolves 3×3 with stride 2. */
function encodedSize(n: number, spatialCompression: number): number {
  for (let s = spatialCompression; s > 1; s /= 2) n = Math.floor((n + 1 - 3) / 2) + 1;
  return n;
}

/** Output extent of a tile with `n` input rows (or columns). */
export function tileOutSize(kind: TilingKind, n: number, spatialCompression: number): number {
  return kind === 'decode' ? n * spatialCompression : encodedSize(n, spatialCompression);
}

/** The derived tiling of one axis: `tileSampleMin` pixels, overlap `factor`. */
export function axisTiling(
  kind: TilingKind,
  tileSampleMin: number,
  factor: number,
  spatialCompression: number,
): AxisTiling {
  const tileLatentMin = Math.trunc(tileSampleMin / spatialCompression);
  if (tileLatentMin < 1)
    throw new ShapeError(
      'tiling',
      `tile of ${tileSampleMin} pixels is under one latent pixel (${spatialCompression} pixels)`,
    );
  const [tileIn, outMin] = kind === 'decode' ? [tileLatentMin, tileSampleMin] : [tileSampleMin, tileLatentMin];
  const strideIn = Math.trunc(tileIn * (1 - factor));
  const blendOut = Math.trunc(outMin * factor);
  if (strideIn < 1)
    throw new ShapeError(
      'tiling',
      `overlap ${factor} of ${tileIn} leaves a stride of 0 (the reference's range() would fail)`,
    );
  return { tileIn, strideIn, blendOut, keepOut: outMin - blendOut };
}

/** One tile: where it reads the input and where its kept part lands in the output (`[start, end)`). */
export interface TileSpec {
  row: number;
  col: number;
  inRows: [number, number];
  inCols: [number, number];
  /** Output `[height, width]` of the whole tile. */
  outHW: [number, number];
  keptOutRows: [number, number];
  keptOutCols: [number, number];
}

export interface TilePlan {
  kind: TilingKind;
  height: AxisTiling;
  width: AxisTiling;
  /** Row-major. */
  tiles: TileSpec[];
  /** Output `[height, width]` of the assembled result. */
  outHW: [number, number];
}

/** Starts `range(0, n, stride)` with each tile's `[start, min(start + tile, n))` and its kept output extent. */
function axisTiles(
  kind: TilingKind,
  n: number,
  a: AxisTiling,
  s: number,
): { inRange: [number, number]; out: number; kept: [number, number] }[] {
  const tiles = [];
  let at = 0;
  for (let start = 0; start < n; start += a.strideIn) {
    const end = Math.min(start + a.tileIn, n);
    const out = tileOutSize(kind, end - start, s);
    if (out < 1)
      throw new ShapeError(
        'tiling',
        `the edge tile [${start}, ${end}) of ${n} is too small to encode; choose another tile size or overlap`,
      );
    const keep = Math.min(a.keepOut, out);
    tiles.push({ inRange: [start, end] as [number, number], out, kept: [at, at + keep] as [number, number] });
    at += keep;
  }
  return tiles;
}

/**
 * Whether the reference tiles an input of `[h, w]` (latent for decode, pixels for encode): only when
 * it is larger than one tile along either axis.
 */
export function needsTiling(
  kind: TilingKind,
  [h, w]: [number, number],
  tiling: VaeTiling,
  spatialCompression: number,
): boolean {
  const min = (px: number) => (kind === 'decode' ? Math.trunc(px / spatialCompression) : px);
  return h > min(tiling.tileSampleMinHeight) || w > min(tiling.tileSampleMinWidth);
}

/** The tiles of an input of spatial size `[h, w]` (latent for decode, pixels for encode). */
export function planTiles(
  kind: TilingKind,
  [h, w]: [number, number],
  tiling: VaeTiling,
  spatialCompression: number,
): TilePlan {
  const height = axisTiling(kind, tiling.tileSampleMinHeight, tiling.overlapFactorHeight, spatialCompression);
  const width = axisTiling(kind, tiling.tileSampleMinWidth, tiling.overlapFactorWidth, spatialCompression);
  const rows = axisTiles(kind, h, height, spatialCompression);
  const cols = axisTiles(kind, w, width, spatialCompression);
  const tiles = rows.flatMap((r, row) =>
    cols.map((c, col): TileSpec => ({
      row,
      col,
      inRows: r.inRange,
      inCols: c.inRange,
      outHW: [r.out, c.out],
      keptOutRows: r.kept,
      keptOutCols: c.kept,
    })),
  );
  return { kind, height, width, tiles, outHW: [rows[rows.length - 1]!.kept[1], cols[cols.length - 1]!.kept[1]] };
}

/**
 * The reference's blend along `axis` (3 = rows: `blend_v`, 4 = columns: `blend_h`) of `[B, C, T, H, W]`:
 * the first `e = min(a, b, extent)` entries of `b` become `a[−e + y]·(1 − y/e) + b[y]·(y/e)`. `a` may
 * be just the last entries of the neighbour (at least `min(a, extent)` of them): nothing else is read.
 * Returns the new `b` (inputs not disposed). The weights are float64 `1 − y/e` and `y/e` rounded to
 * float32, as PyTorch multiplies a float32 tensor by a Python float.
 */
export function blendAlong(a: tf.Tensor, b: tf.Tensor, extent: number, axis: 3 | 4): tf.Tensor {
  const nb = b.shape[axis]!;
  const e = Math.min(a.shape[axis]!, nb, extent);
  if (e <= 0) return tf.clone(b);
  return tf.tidy(() => {
    // rank-3 views [outer, e, inner] (rows) or rank-2 [outer, e] (columns): no rank-5 broadcasts
    const view = (t: tf.Tensor) => (axis === 3 ? tf.reshape(t, [-1, e, t.shape[4]!]) : tf.reshape(t, [-1, e]));
    const wShape = axis === 3 ? [e, 1] : [e];
    const wA = tf.tensor(
      Float32Array.from({ length: e }, (_, y) => 1 - y / e),
      wShape,
    ); // 1 − y/e
    const wB = tf.tensor(
      Float32Array.from({ length: e }, (_, y) => y / e),
      wShape,
    ); // y/e
    const aTail = view(sliceAxis(a, axis, a.shape[axis]! - e, e)); // a[..., −e:]
    const bHead = view(sliceAxis(b, axis, 0, e)); // b[..., :e]
    const mixed = tf.reshape(tf.add(tf.mul(aTail, wA), tf.mul(bHead, wB)), [
      ...b.shape.slice(0, axis),
      e,
      ...b.shape.slice(axis + 1),
    ]);
    return e === nb ? mixed : tf.concat([mixed, sliceAxis(b, axis, e, nb - e)], axis); // (tf.concat: no views of the parts)
  });
}

/** `blend_v(a, b, extent)`: rows (axis 3). */
export const blendV = (a: tf.Tensor, b: tf.Tensor, extent: number) => blendAlong(a, b, extent, 3);
/** `blend_h(a, b, extent)`: columns (axis 4). */
export const blendH = (a: tf.Tensor, b: tf.Tensor, extent: number) => blendAlong(a, b, extent, 4);

/** `x[..., r0:r1, c0:c1]` of `[B, C, T, H, W]`. */
export function cropHW(x: tf.Tensor, [r0, r1]: [number, number], [c0, c1]: [number, number]): tf.Tensor {
  return tf.tidy(() => sliceAxis(sliceAxis(x, 3, r0, r1 - r0), 4, c0, c1 - c0));
}

/**
 * Run `fn` tile by tile over `x` `[B, C, T, H, W]` and assemble the blended, cropped outputs as the
 * reference does (`fn` maps a tile `[B, C, T, h, w]` to `[B, C', T', h', w']`; its result is
 * disposed here). Holds at most one tile's output, the kept parts, and the `e`-wide strips later
 * tiles blend with. Returns `[B, C', T', ΣkeptRows, ΣkeptCols]`.
 */
export function runTiled(x: tf.Tensor, plan: TilePlan, fn: (tile: tf.Tensor, spec: TileSpec) => tf.Tensor): tf.Tensor {
  const eH = plan.height.blendOut;
  const eW = plan.width.blendOut;
  const cols = Math.max(...plan.tiles.map((t) => t.col)) + 1;
  let above: tf.Tensor[] = []; // bottom min(h', eH) rows of each blended tile of the previous row
  const resultRows: tf.Tensor[] = []; // [B, C', T', keptRows_i, ΣkeptCols]
  try {
    for (let r = 0; r * cols < plan.tiles.length; r++) {
      const below: tf.Tensor[] = [];
      const kept: tf.Tensor[] = [];
      let left: tf.Tensor | undefined; // right min(w', eW) columns of the blended tile on the left
      try {
        for (const spec of plan.tiles.slice(r * cols, (r + 1) * cols)) {
          const input = cropHW(x, spec.inRows, spec.inCols); // [B, C, T, h, w]
          let tile: tf.Tensor;
          try {
            tile = fn(input, spec); // [B, C', T', h', w']
          } finally {
            input.dispose();
          }
          const [, , , h, w] = tile.shape as [number, number, number, number, number];
          if (h !== spec.outHW[0] || w !== spec.outHW[1]) {
            tile.dispose();
            throw new ShapeError(
              `tile (${spec.row}, ${spec.col})`,
              `expected output ${spec.outHW.join('×')}, got ${h}×${w}`,
            );
          }
          if (r > 0) tile = consumeTile(tile, (t) => blendV(above[spec.col]!, t, eH));
          if (spec.col > 0) tile = consumeTile(tile, (t) => blendH(left!, t, eW));
          below.push(sliceAxis(tile, 3, h - Math.min(h, eH), Math.min(h, eH)));
          left?.dispose();
          left = sliceAxis(tile, 4, w - Math.min(w, eW), Math.min(w, eW));
          const rowsKept = spec.keptOutRows[1] - spec.keptOutRows[0];
          const colsKept = spec.keptOutCols[1] - spec.keptOutCols[0];
          kept.push(cropHW(tile, [0, rowsKept], [0, colsKept]));
          tile.dispose();
        }
        resultRows.push(kept.length === 1 ? tf.clone(kept[0]!) : tf.concat(kept, 4)); // (tf.concat: no views of the parts)
      } catch (e) {
        tf.dispose(below);
        throw e;
      } finally {
        left?.dispose();
        tf.dispose(kept);
      }
      tf.dispose(above);
      above = below;
    }
    return resultRows.length === 1 ? tf.clone(resultRows[0]!) : tf.concat(resultRows, 3);
  } finally {
    tf.dispose(above);
    tf.dispose(resultRows);
  }
}

function consumeTile(t: tf.Tensor, f: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  try {
    return f(t);
  } finally {
    t.dispose();
  }
}
