/**
 * How much memory one VAE decode or encode needs, checked before it runs, and the tiling that makes
 * it fit (diffusers' `enable_tiling`, vaeTiling.ts) when a whole frame does not.
 *
 * Memory is counted as the budget counts it, `tf.memory().numBytes`: every tensor handle with its
 * full size, so a reshape or clone (a view in the backend) counts again. The estimate walks the
 * decoder (or encoder) call by call and layer by layer on shapes alone and takes the largest sum of
 * what is live at once, read from the code of src/layers/vae (A = one activation of the step):
 *
 *   norm + SiLU     f + 7·A (SpatialNorm3D: scale, shift, the GroupNorm result, its 2-D view,
 *                   ·weight, +bias, the view back) or f + 5·A (GroupNorm)
 *   causal conv     t + P + acc + max(P + 2·t, 2·t + 2·kernel tap + 2·out): the input t, its
 *                   time-padded copy P = (T+2)/T·t, the tap sum acc, and either P's view with one
 *                   tap's frame slice and its reshape, or that slice, its 2-D view, the tap's kernel
 *                   slice and view, the conv2d output and the new acc
 *   resnet          the block input and the resnet input stay live through norm1, conv1, norm2
 *                   (+ h), conv2, and the shortcut (view, matMul, + bias, reshape, sum)
 *   upsampler       x repeated in time, then 5 of the upsampled size (×2 in H and W, its view, the
 *                   conv output, + bias, reshape)
 *   downsampler     5·x (frame-pair average: view, slice, pair slices, sum, mean, concat)
 *
 * plus what persists: every causal conv's cache (2 time-padded input frames each), the call's latent
 * or frames, the outputs of the calls so far, and at the end the concatenated result. Tiled: the
 * largest tile's own peak on top of the output kept so far, the tile's input and the blend strips;
 * then the blend/crop of a tile (4 of its size); at the end the concatenation (2× the output).
 * Checked against tf.profile (peak bytes above the bytes live before) on channels [4,4,8,8],
 * [8,8,16,16], [32,64,64,128] and the CogVideoX-5B widths [128,256,256,512], 1–13 latent frames,
 * every frame batching, tiled and not: the walk is 0.99–1.24× of the measured peak, and with
 * VAE_ESTIMATE_MARGIN 1.10–1.37× (test/vae/vaeMemory.test.ts prints the ratios). It does not count
 * memory a backend keeps outside tensors (XNNPACK's conv buffers on wasm).
 */
import type { VaeConfig } from '../config/vaeConfig.js';
import {
  MemoryBudgetError,
  checkMemoryBudget,
  memoryLimits,
  type MemoryLimits,
  type PeakEstimate,
} from '../backend/memoryBudget.js';
import { timeUpsampleIndices, type TimeUpsampling } from '../layers/vae/upsample3d.js';
import { decodeCallRanges, encodeCallRanges, type FrameBatching } from './vae.js';
import {
  defaultVaeTiling,
  needsTiling,
  planTiles,
  resolveVaeTiling,
  type TilePlan,
  type VaeTiling,
} from './vaeTiling.js';

const F32 = 4;

/**
 * The walk lands between 1 % under and 24 % over the measured peak; this margin makes it an upper
 * bound and covers what it leaves out (index tensors, the latent-resolution tensors of the spatial
 * norms' resizes). A probe's captures are not counted.
 */
export const VAE_ESTIMATE_MARGIN = 1.1;

/** A VAE decode: latents `[batch, latent_channels, frames, height, width]`. */
export interface VaeDecodeSize {
  kind: 'decode';
  batch?: number;
  frames: number;
  height: number;
  width: number;
  batching?: FrameBatching;
}

/** A VAE encode: pixels `[batch, in_channels, frames, height, width]`. */
export interface VaeEncodeSize {
  kind: 'encode';
  batch?: number;
  frames: number;
  height: number;
  width: number;
}

export type VaeWorkSize = VaeDecodeSize | VaeEncodeSize;

/** Running maximum of the live bytes, and the largest single tensor. */
class Peak {
  total = 0;
  largest = 0;
  /** `held` bytes stay live while a step adds `work` bytes at its peak; `tensors` are its largest tensors. */
  at(held: number, work: number, ...tensors: number[]): void {
    this.total = Math.max(this.total, held + work);
    this.largest = Math.max(this.largest, ...tensors);
  }
}

/** `[B, T, H, W, C]` float32 bytes. */
const act = (B: number, T: number, H: number, W: number, C: number) => F32 * B * T * H * W * C;

/** Live tensors of a norm + SiLU beyond its input f, in units of f: SpatialNorm3D 7, GroupNorm 5 (file comment). */
const SPATIAL_NORM = 7;
const GROUP_NORM = 5;

/**
 * A causal conv (3×3×3, `cin → cout`) of `t` (`T` frames, `at` bytes) to `out` bytes on top of
 * `held`: t, its time-padded copy P, the tap sum acc, and at once either P's view + one tap's slice
 * and its reshape, or that slice, its 2-D view, the tap's kernel slice and its view, the conv2d
 * output and the new acc.
 */
function causalConv(p: Peak, held: number, T: number, at: number, out: number, cin: number, cout: number): void {
  const P = ((T + 2) / T) * at;
  const tap = F32 * 9 * cin * cout;
  p.at(held, at + P + out + Math.max(P + 2 * at, 2 * at + 2 * tap + 2 * out), P, out, tap);
}

/**
 * One resnet `Cin → Cout` at `T×H×W` on top of `held` (which includes the block input). `norm`:
 * SPATIAL_NORM (decoder) or GROUP_NORM (encoder).
 */
function resnet(p: Peak, held: number, [B, T, H, W]: number[], cin: number, cout: number, norm: number): void {
  const x = act(B!, T!, H!, W!, cin); // the resnet input, live to the end for the shortcut
  const y = act(B!, T!, H!, W!, cout);
  p.at(held + x, norm * x); // norm1 + SiLU
  causalConv(p, held + x, T!, x, y, cin, cout); // conv1
  p.at(held + x + y, norm * y); // norm2 + SiLU (its input h still live)
  causalConv(p, held + x, T!, y, y, cout, cout); // conv2
  p.at(held + x, cin === cout ? 2 * y : x + 4 * y); // h + x, or h + conv_shortcut(x) (view, matMul, + bias, reshape) + sum
}

/** A resnet stack (diffusers' blocks): the block input stays live, and the first resnet gets a copy of it. */
function resnets(p: Peak, held: number, shape: number[], cin: number, cout: number, n: number, norm: number): void {
  const blockIn = act(shape[0]!, shape[1]!, shape[2]!, shape[3]!, cin);
  for (let j = 0; j < n; j++) resnet(p, held + blockIn, shape, j === 0 ? cin : cout, cout, norm);
}

/** Bytes of every causal conv's cache (2 frames of its input) in the decoder, for latent `h×w`. */
function decoderCacheBytes(c: VaeConfig, B: number, h: number, w: number): number {
  const ch = [...c.block_out_channels].reverse();
  const cache = (s: number, cin: number) => act(B, 2, h * s, w * s, cin);
  let bytes = cache(1, c.latent_channels) + 4 * cache(1, ch[0]!); // conv_in, mid_block (2 resnets × 2 convs)
  ch.forEach((out, i) => {
    const cin = i === 0 ? ch[0]! : ch[i - 1]!;
    for (let j = 0; j <= c.layers_per_block; j++) bytes += cache(2 ** i, j === 0 ? cin : out) + cache(2 ** i, out);
  });
  return bytes + cache(c.spatialCompression, ch[ch.length - 1]!); // conv_out
}

/** Bytes of every causal conv's cache in the encoder, for pixels `H×W`. */
function encoderCacheBytes(c: VaeConfig, B: number, H: number, W: number): number {
  const ch = c.block_out_channels;
  const cache = (s: number, cin: number) => act(B, 2, Math.ceil(H / s), Math.ceil(W / s), cin);
  let bytes = cache(1, c.in_channels);
  ch.forEach((out, i) => {
    const cin = i === 0 ? ch[0]! : ch[i - 1]!;
    for (let j = 0; j < c.layers_per_block; j++) bytes += cache(2 ** i, j === 0 ? cin : out) + cache(2 ** i, out);
  });
  const top = ch[ch.length - 1]!;
  return bytes + 4 * cache(c.spatialCompression, top) + cache(c.spatialCompression, top); // mid_block, conv_out
}

function timeModeOf(batching: FrameBatching, call: number): TimeUpsampling {
  return batching === 'mask2dit' ? (call === 0 ? 'none' : 'double') : 'auto';
}

/** Peak of an untiled decode of latents `[B, Cz, F, h, w]`. */
function decodePeak(c: VaeConfig, B: number, F: number, h: number, w: number, batching: FrameBatching): Peak {
  const p = new Peak();
  const ch = [...c.block_out_channels].reverse();
  const s = c.spatialCompression;
  const cacheBytes = decoderCacheBytes(c, B, h, w);
  let outputs = 0; // the chunks decoded so far
  decodeCallRanges(F, batching).forEach(([a, b], call) => {
    const mode = timeModeOf(batching, call);
    let T = b - a;
    const zq = act(B, T, h, w, c.latent_channels);
    const held = cacheBytes + outputs + 2 * zq; // + this call's latent, sliced and transposed
    causalConv(p, held, T, zq, act(B, T, h, w, ch[0]!), c.latent_channels, ch[0]!); // conv_in
    resnets(p, held + act(B, T, h, w, ch[0]!), [B, T, h, w], ch[0]!, ch[0]!, 2, SPATIAL_NORM); // mid_block
    ch.forEach((out, i) => {
      const [H, W] = [h * 2 ** i, w * 2 ** i];
      const cin = i === 0 ? ch[0]! : ch[i - 1]!;
      const blockIn = act(B, T, H, W, cin);
      resnets(p, held, [B, T, H, W], cin, out, c.layers_per_block + 1, SPATIAL_NORM);
      if (i < ch.length - 1) {
        // upsampler: block input + its resnets' output x, x repeated in time, ×2 in H and W (and a view), conv, + bias, reshape
        const T2 = i < c.temporalCompressLevel ? timeUpsampleIndices(T, mode).length : T;
        const x = act(B, T, H, W, out);
        const up = act(B, T2, 2 * H, 2 * W, out);
        p.at(held + blockIn + x, (T2 === T ? 0 : (T2 / T) * x) + 5 * up, up);
        T = T2;
      }
    });
    const [H, W] = [h * s, w * s];
    const last = act(B, T, H, W, ch[ch.length - 1]!);
    const frames = act(B, T, H, W, c.out_channels);
    p.at(held + last, SPATIAL_NORM * last); // norm_out + SiLU
    causalConv(p, held, T, last, frames, ch[ch.length - 1]!, c.out_channels); // conv_out
    p.at(cacheBytes + outputs, 2 * frames); // the call's result, channels-last and transposed
    outputs += frames;
  });
  p.at(0, 2 * outputs, outputs); // the chunks and their concatenation
  return p;
}

/** Peak of an untiled encode of pixels `[B, C, F, H, W]`. */
function encodePeak(c: VaeConfig, B: number, F: number, H0: number, W0: number): Peak {
  const p = new Peak();
  const ch = c.block_out_channels;
  const cacheBytes = encoderCacheBytes(c, B, H0, W0);
  let outputs = 0; // the moments of the calls so far
  for (const [a, b] of encodeCallRanges(F)) {
    let T = b - a;
    let [H, W] = [H0, W0];
    const frames = act(B, T, H, W, c.in_channels);
    p.at(cacheBytes + outputs, 4 * frames); // the call's frames: view, slice, reshape, transpose
    const held = cacheBytes + outputs + frames;
    causalConv(p, held, T, frames, act(B, T, H, W, ch[0]!), c.in_channels, ch[0]!); // conv_in
    ch.forEach((out, i) => {
      const cin = i === 0 ? ch[0]! : ch[i - 1]!;
      resnets(p, held, [B, T, H, W], cin, out, c.layers_per_block, GROUP_NORM);
      if (i < ch.length - 1) {
        // downsampler: block input + x; frame-pair average (view, slice, reshape, pair slices, sum, mean, concat), pad, conv
        const x = act(B, T, H, W, out);
        p.at(held + act(B, T, H, W, cin) + x, (i < c.temporalCompressLevel ? 5 : 3) * x, x);
        if (i < c.temporalCompressLevel) T = Math.ceil(T / 2);
        [H, W] = [Math.floor((H - 2) / 2) + 1, Math.floor((W - 2) / 2) + 1];
      }
    });
    const top = ch[ch.length - 1]!;
    resnets(p, held, [B, T, H, W], top, top, 2, GROUP_NORM); // mid_block
    const last = act(B, T, H, W, top);
    const moments = act(B, T, H, W, 2 * c.latent_channels);
    p.at(held + last, GROUP_NORM * last); // norm_out + SiLU
    causalConv(p, held, T, last, moments, top, 2 * c.latent_channels); // conv_out
    outputs += moments;
  }
  p.at(0, 3 * outputs, outputs); // the parts, their concatenation, its transpose
  return p;
}

function outputShape(c: VaeConfig, size: VaeWorkSize): [number, number] {
  return size.kind === 'decode'
    ? [size.height * c.spatialCompression, size.width * c.spatialCompression]
    : [Math.floor(size.height / c.spatialCompression), Math.floor(size.width / c.spatialCompression)];
}

function describeWork(c: VaeConfig, size: VaeWorkSize, plan: TilePlan | null): string {
  const [oh, ow] = outputShape(c, size);
  const what =
    size.kind === 'decode'
      ? `VAE decode of ${size.frames}×${size.height}×${size.width} latents (${oh}×${ow} pixels)`
      : `VAE encode of ${size.frames}×${size.height}×${size.width} pixels`;
  if (plan === null) return what;
  const t = plan.tiles[0]!;
  return `${what}, tiled (${plan.tiles.length} tiles of up to ${t.inRows[1] - t.inRows[0]}×${t.inCols[1] - t.inCols[0]})`;
}

/**
 * The peak memory of one `CogVideoXVAE.decode` / `encode` (all its calls, the conv caches and the
 * assembled output) above what is live before it, for `size` and `tiling` (null: untiled; an input
 * that fits one tile is untiled, as in the reference).
 */
export function vaePeakEstimate(config: VaeConfig, size: VaeWorkSize, tiling: VaeTiling | null = null): PeakEstimate {
  const B = size.batch ?? 1;
  const s = config.spatialCompression;
  const batching = size.kind === 'decode' ? (size.batching ?? 'mask2dit') : 'mask2dit';
  const walks = new Map<string, Peak>(); // tiles come in at most 4 sizes
  const untiled = (h: number, w: number): Peak => {
    const key = `${h}×${w}`;
    if (!walks.has(key))
      walks.set(
        key,
        size.kind === 'decode'
          ? decodePeak(config, B, size.frames, h, w, batching)
          : encodePeak(config, B, size.frames, h, w),
      );
    return walks.get(key)!;
  };
  const plan =
    tiling !== null && needsTiling(size.kind, [size.height, size.width], tiling, s)
      ? planTiles(size.kind, [size.height, size.width], tiling, s)
      : null;
  const hint =
    size.kind === 'decode'
      ? 'decode with tiling (smaller tiles need less), use fewer frames per call (batching mask2dit or auto_split, not one_call), a smaller size, or a backend with more memory'
      : 'encode with tiling (smaller tiles need less), a smaller size, or a backend with more memory';
  if (plan === null) {
    const p = untiled(size.height, size.width);
    return { totalBytes: VAE_ESTIMATE_MARGIN * p.total, largestTensorBytes: p.largest, hint };
  }
  // one tile at a time on top of the kept output so far, the tile's input and the strips later tiles
  // blend with (two rows of them); then the blend and crop of the tile; at the end the concatenation
  const T = size.kind === 'decode' ? decodedFrames(config, size.frames, batching) : encodedFrames(config, size.frames);
  const [Cin, Cout] =
    size.kind === 'decode'
      ? [config.latent_channels, config.out_channels]
      : [config.in_channels, 2 * config.latent_channels];
  const out = act(B, T, plan.outHW[0], plan.outHW[1], Cout);
  const tileIn = Math.max(
    ...plan.tiles.map((t) => act(B, size.frames, t.inRows[1] - t.inRows[0], t.inCols[1] - t.inCols[0], Cin)),
  );
  const tileOut = Math.max(...plan.tiles.map((t) => act(B, T, t.outHW[0], t.outHW[1], Cout)));
  const [tileH, tileW] = [
    Math.max(...plan.tiles.map((t) => t.outHW[0])),
    Math.max(...plan.tiles.map((t) => t.outHW[1])),
  ];
  const strips =
    2 * act(B, T, Math.min(plan.height.blendOut, tileH), plan.outHW[1], Cout) +
    2 * act(B, T, tileH, Math.min(plan.width.blendOut, tileW), Cout);
  const tilePeaks = plan.tiles.map((t) => untiled(t.inRows[1] - t.inRows[0], t.inCols[1] - t.inCols[0]));
  const held = out + tileIn + strips;
  const total = held + Math.max(Math.max(...tilePeaks.map((p) => p.total)), 4 * tileOut);
  return {
    totalBytes: VAE_ESTIMATE_MARGIN * Math.max(total, 2 * out),
    largestTensorBytes: Math.max(out, ...tilePeaks.map((p) => p.largest)),
    hint,
  };
}

/** Output frames of decoding `F` latent frames. */
function decodedFrames(c: VaeConfig, F: number, batching: FrameBatching): number {
  return decodeCallRanges(F, batching).reduce((sum, [a, b], call) => {
    let T = b - a;
    for (let l = 0; l < c.temporalCompressLevel; l++) T = timeUpsampleIndices(T, timeModeOf(batching, call)).length;
    return sum + T;
  }, 0);
}

/** Latent frames of encoding `F` frames. */
function encodedFrames(c: VaeConfig, F: number): number {
  return encodeCallRanges(F).reduce((sum, [a, b]) => {
    let T = b - a;
    for (let l = 0; l < c.temporalCompressLevel; l++) T = Math.ceil(T / 2);
    return sum + T;
  }, 0);
}

export interface VaeMemoryOptions {
  /** null or unset: untiled. */
  tiling?: VaeTiling | null;
  /** The budget (default: the current backend's, `memoryLimits()`). */
  limits?: MemoryLimits;
  /**
   * Plan against this many bytes already live instead of the machine's state: only the limits'
   * arithmetic is applied. Unset: `checkMemoryBudget` decides (`tf.memory().numBytes` live, and on
   * wasm its heap margin and free-block probe), as for the transformer.
   */
  liveBytes?: number;
}

const GiB = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** The MemoryBudgetError `est` earns against `limits`, or undefined if it fits (see VaeMemoryOptions.liveBytes). */
function overBudget(
  what: string,
  est: PeakEstimate,
  limits: MemoryLimits,
  live: number | undefined,
): MemoryBudgetError | undefined {
  if (live === undefined) {
    try {
      checkMemoryBudget(what, est, limits);
      return undefined;
    } catch (e) {
      if (e instanceof MemoryBudgetError) return e;
      throw e;
    }
  }
  if (limits.totalBytes !== undefined && live + est.totalBytes > limits.totalBytes) {
    return new MemoryBudgetError(
      what,
      live + est.totalBytes,
      limits.totalBytes,
      limits.backend,
      `${GiB(live)} already live + about ${GiB(est.totalBytes)} for the VAE; ${est.hint}`,
    );
  }
  if (limits.perTensorBytes !== undefined && est.largestTensorBytes > limits.perTensorBytes) {
    return new MemoryBudgetError(
      what,
      est.largestTensorBytes,
      limits.perTensorBytes,
      `${limits.backend} (one tensor)`,
      `its largest tensor is about ${GiB(est.largestTensorBytes)}; ${est.hint}`,
    );
  }
  return undefined;
}

/** Throw a MemoryBudgetError (naming the VAE, the size and what to change) if the work does not fit. */
export function checkVaeMemory(config: VaeConfig, size: VaeWorkSize, options: VaeMemoryOptions = {}): void {
  const tiling = options.tiling ?? null;
  const s = config.spatialCompression;
  const hw: [number, number] = [size.height, size.width];
  const plan = tiling !== null && needsTiling(size.kind, hw, tiling, s) ? planTiles(size.kind, hw, tiling, s) : null;
  const err = overBudget(
    describeWork(config, size, plan),
    vaePeakEstimate(config, size, tiling),
    options.limits ?? memoryLimits(),
    options.liveBytes,
  );
  if (err !== undefined) throw err;
}

/**
 * Tile sizes (pixels, multiples of the compression, up to `max`) whose kept part is exactly one
 * stride, so the tiled output has the untiled size (as 240 with 1/6 and 360 with 1/5 do); largest first.
 */
function exactTileSizes(kind: 'decode' | 'encode', factor: number, s: number, max: number): number[] {
  const sizes: number[] = [];
  for (let px = Math.floor(max / s) * s; px >= s; px -= s) {
    const a = Math.trunc(px / s);
    const stride = Math.trunc((kind === 'decode' ? a : px) * (1 - factor));
    const keep = kind === 'decode' ? px - Math.trunc(px * factor) : a - Math.trunc(a * factor);
    if (stride >= 1 && (kind === 'decode' ? keep === stride * s : stride === keep * s)) sizes.push(px);
  }
  return sizes;
}

/**
 * The smaller tiling (same overlap factors) that fits and keeps the output size with the fewest
 * tiles (then the largest tile); undefined if none does.
 */
function smallerFittingTiling(
  c: VaeConfig,
  size: VaeWorkSize,
  t: VaeTiling,
  fits: (t: VaeTiling) => boolean,
): VaeTiling | undefined {
  const s = c.spatialCompression;
  const hw: [number, number] = [size.height, size.width];
  const exact: [number, number] =
    size.kind === 'decode'
      ? [size.height * s, size.width * s]
      : [Math.floor(size.height / s), Math.floor(size.width / s)];
  const area = (x: VaeTiling) => x.tileSampleMinHeight * x.tileSampleMinWidth;
  const candidates = exactTileSizes(size.kind, t.overlapFactorHeight, s, t.tileSampleMinHeight)
    .flatMap((h) =>
      exactTileSizes(size.kind, t.overlapFactorWidth, s, t.tileSampleMinWidth).map((w): VaeTiling => ({
        ...t,
        tileSampleMinHeight: h,
        tileSampleMinWidth: w,
      })),
    )
    .filter((x) => area(x) < area(t) && needsTiling(size.kind, hw, x, s))
    .flatMap((x) => {
      try {
        const plan = planTiles(size.kind, hw, x, s);
        return plan.outHW[0] === exact[0] && plan.outHW[1] === exact[1]
          ? [{ tiling: x, tiles: plan.tiles.length }]
          : [];
      } catch {
        return []; // an edge tile too small to encode
      }
    })
    .sort((a, b) => a.tiles - b.tiles || area(b.tiling) - area(a.tiling));
  return candidates.find((x) => fits(x.tiling))?.tiling;
}

export interface ChooseVaeTilingOptions extends Omit<VaeMemoryOptions, 'tiling'> {
  /** Tiling parameters over diffusers' defaults for this config (`defaultVaeTiling`). */
  tiling?: Partial<VaeTiling>;
  /**
   * When those tiles do not fit either: false (default) throws a MemoryBudgetError naming the tile
   * size that would fit; true returns that smaller tiling (no longer diffusers' numbers).
   */
  shrink?: boolean;
}

/**
 * The tiling to decode (or encode) `size` with: null when the whole frame fits the budget, else
 * diffusers' `enable_tiling()` parameters for this config (`options.tiling` over the defaults of
 * `defaultVaeTiling`: half the sample size, overlap 1/6 × 1/5). If even those tiles do not fit, a
 * MemoryBudgetError that names the work and the largest tile size that would fit (if any), or with
 * `shrink`, that smaller tiling.
 */
export function chooseVaeTiling(
  config: VaeConfig,
  size: VaeWorkSize,
  options: ChooseVaeTilingOptions = {},
): VaeTiling | null {
  const limits = options.limits ?? memoryLimits();
  const live = options.liveBytes;
  const s = config.spatialCompression;
  const hw: [number, number] = [size.height, size.width];
  const fits = (t: VaeTiling | null) => overBudget('', vaePeakEstimate(config, size, t), limits, live) === undefined;
  if (fits(null)) return null;
  const tiling = resolveVaeTiling(options.tiling ?? {}, defaultVaeTiling(config.sample_height, config.sample_width));
  const tiles = needsTiling(size.kind, hw, tiling, s);
  if (tiles && fits(tiling)) return tiling;
  const smaller = smallerFittingTiling(config, size, tiling, fits);
  if (smaller !== undefined && options.shrink === true) return smaller;
  const err = overBudget(
    describeWork(config, size, tiles ? planTiles(size.kind, hw, tiling, s) : null),
    vaePeakEstimate(config, size, tiling),
    limits,
    live,
  )!;
  const tile = `${tiling.tileSampleMinHeight}×${tiling.tileSampleMinWidth}`;
  const advice =
    smaller === undefined
      ? 'no smaller tile fits either: use a smaller size, fewer frames, or a backend with more memory'
      : `tiles of ${smaller.tileSampleMinHeight}×${smaller.tileSampleMinWidth} pixels would fit: tiling { tileSampleMinHeight: ${smaller.tileSampleMinHeight}, tileSampleMinWidth: ${smaller.tileSampleMinWidth} } (or chooseVaeTiling with shrink)`;
  throw new MemoryBudgetError(
    err.what,
    err.neededBytes,
    err.limitBytes,
    err.backend,
    `${tiles ? `even tiles of ${tile} pixels do not fit` : `the input is not larger than one ${tile}-pixel tile`}; ${advice}`,
  );
}
