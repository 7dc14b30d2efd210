/**
 * CogVideoX patch embedding (`patch_embed`): text tokens through `text_proj`, video latents cut into
 * `p × p` patches (per frame) and projected by `proj`, joined as `[text; video]`.
 *
 * - `proj` is the reference's Conv2d with kernel = stride = p, weight `[D, C, p, p]`; here it is
 *   patchify (each patch flattened in (channel, row, col) order) + one 2-D matMul with the weight
 *   reshaped to `[D, C·p·p]` and transposed once. Bias unless `patch_bias` is false.
 * - CogVideoX 1.5 (`patch_size_t`): patches span `p_t` frames too, flattened (channel, frame, row, col);
 *   `proj` is a Linear `[D, C·p_t·p·p]` that always has a bias (the reference ignores `patch_bias` there).
 * - Video token order: frame-major, then patch row, then patch column.
 * - 2B (`use_rotary_positional_embeddings: false`): a 3D sin-cos table is added to the video tokens
 *   (`sincosPosEmbed3d`); text rows get zeros. `use_learned_positional_embeddings` loads the table
 *   (`pos_embedding`, `[1, max_text_seq_length + base video tokens, D]`) from the checkpoint.
 *
 * How the table is sized follows the class named in `_class_name`:
 * - `CogVideoXTransformer3DModel` (diffusers 0.30.3): the table is rebuilt for the input's
 *   `(F, H/p, W/p)` whenever it differs from the sample size, so the sin-cos table always matches the
 *   input. It has `max_text_seq_length` text rows, so the text must have exactly that many tokens.
 *   A learned table only works at the sample height/width; with another frame count diffusers
 *   silently swaps in the sin-cos table (replicated).
 * - `MultiPromptCogVideoXTransformer3DModel` (Mask²DiT's own `CogVideoXPatchEmbed`): the sample-size
 *   table is resized with trilinear interpolation (align_corners=False) to `(T0·Lt/max_text, H/p, W/p)`
 *   frames (T0 = sample latent frames, i.e. T0 per scene), its text rows linearly to `Lt`, and cut to
 *   the input's token count.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError, ShapeError } from '../errors.js';
import { M2Layer } from './layer.js';
import { matMul2d } from './math.js';
import { Linear } from './linear.js';
import type { WeightSource } from './weightSource.js';

const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// 3D sin-cos table

/** 1-D part `[sin(x·ω_k) | cos(x·ω_k)]`, `ω_k = 10000^(−k/(d/2))`, written (float64 math) into `out` at `offset`, row stride `stride`. */
function sincos1d(out: Float64Array, positions: Float32Array, d: number, offset: number, stride: number): void {
  const half = d / 2;
  const omega = new Float64Array(half);
  for (let k = 0; k < half; k++) omega[k] = 1 / Math.pow(10000, k / half);
  for (let i = 0; i < positions.length; i++) {
    const base = i * stride + offset;
    const x = positions[i]!;
    for (let k = 0; k < half; k++) {
      const a = x * omega[k]!;
      out[base + k] = Math.sin(a);
      out[base + half + k] = Math.cos(a);
    }
  }
}

/**
 * diffusers' `get_3d_sincos_pos_embed(dim, (gridW, gridH), frames, spatialScale, temporalScale)`,
 * flattened to `[frames·gridH·gridW, dim]` (frame-major, then row, then column), float32.
 * Channels `[0, dim/4)`: temporal part from `frame / temporalScale`; `[dim/4, dim)`: spatial part
 * `[sincos(col / spatialScale) | sincos(row / spatialScale)]`. Positions are float32 (numpy
 * `arange(float32) / scale`), the trigonometry float64 (numpy), the result rounded to float32.
 */
export function sincosPosEmbed3d(
  dim: number,
  gridH: number,
  gridW: number,
  frames: number,
  spatialInterpolationScale = 1.875,
  temporalInterpolationScale = 1.0,
): Float32Array {
  if (!Number.isInteger(dim) || dim % 16 !== 0) {
    throw new ConfigError(
      '(config)',
      'num_attention_heads*attention_head_dim',
      `the 3D sin-cos table splits dim into dim/4 (temporal) and 3·dim/4 (two spatial halves), each with sin and cos halves, so dim must be a multiple of 16; got ${dim}`,
    );
  }
  for (const [k, v] of Object.entries({ gridH, gridW, frames })) {
    if (!Number.isInteger(v) || v < 1)
      throw new ShapeError('pos_embedding', `${k} must be a positive integer, got ${v}`);
  }
  const dt = dim / 4;
  const ds = (3 * dim) / 4;
  const spatial = f32(spatialInterpolationScale);
  const temporal = f32(temporalInterpolationScale);
  const posT = Float32Array.from({ length: frames }, (_, i) => i / temporal);
  const posR = Float32Array.from({ length: gridH }, (_, i) => i / spatial);
  const posC = Float32Array.from({ length: gridW }, (_, i) => i / spatial);

  // one frame's spatial table [gridH·gridW, ds] and the temporal table [frames, dt]
  const hw = gridH * gridW;
  const sp = new Float64Array(hw * ds);
  const colOf = new Float32Array(hw);
  const rowOf = new Float32Array(hw);
  for (let r = 0; r < gridH; r++) {
    for (let c = 0; c < gridW; c++) {
      colOf[r * gridW + c] = posC[c]!;
      rowOf[r * gridW + c] = posR[r]!;
    }
  }
  sincos1d(sp, colOf, ds / 2, 0, ds); // meshgrid(w, h)[0] = column positions come first
  sincos1d(sp, rowOf, ds / 2, ds / 2, ds);
  const tt = new Float64Array(frames * dt);
  sincos1d(tt, posT, dt, 0, dt);

  const out = new Float32Array(frames * hw * dim);
  for (let f = 0; f < frames; f++) {
    for (let s = 0; s < hw; s++) {
      const row = (f * hw + s) * dim;
      for (let k = 0; k < dt; k++) out[row + k] = tt[f * dt + k]!;
      for (let k = 0; k < ds; k++) out[row + dt + k] = sp[s * ds + k]!;
    }
  }
  return out;
}

/**
 * PyTorch `F.interpolate(mode='linear', align_corners=False)` along one axis as a matrix `[out, in]`:
 * `src = (in/out)·(o + 0.5) − 0.5` (clamped at 0), weights `1 − λ`, `λ` on `floor(src)` and the next index.
 */
export function linearResizeMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(scale * (o + 0.5) - 0.5, 0);
    const i0 = Math.floor(src);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    m[o * inSize + i0] = 1 - l1;
    m[o * inSize + i1] = m[o * inSize + i1]! + l1; // i1 == i0 at the last index: weights 1 − λ + λ
  }
  return m;
}

/** Resize axis `axis` of `x` by left-multiplying with `linearResizeMatrix` (no-op when the size is unchanged). */
function resizeAxis(x: tf.Tensor, axis: number, outSize: number): tf.Tensor {
  const inSize = x.shape[axis]!;
  if (inSize === outSize) return x;
  const perm = [axis, ...x.shape.map((_, i) => i).filter((i) => i !== axis)];
  const moved = axis === 0 ? x : tf.transpose(x, perm);
  const rest = moved.shape.slice(1);
  const m = tf.tensor2d(linearResizeMatrix(inSize, outSize), [outSize, inSize]);
  const y = tf.reshape(tf.matMul(m, tf.reshape(moved, [inSize, -1])), [outSize, ...rest]);
  if (axis === 0) return y;
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return tf.transpose(y, inverse);
}

// ---------------------------------------------------------------------------------------------
// the conv projection as a matMul

interface PatchConvConfig {
  inChannels: number;
  embedDim: number;
  patchSize: number;
  bias: boolean;
}

/** `proj` of CogVideoX 1.0: Conv2d weight `[D, C, p, p]` (+ bias `[D]`) applied to flattened patches. */
export class PatchConv extends M2Layer {
  static readonly className = 'M2PatchConv';
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;
  private weightT: tf.Tensor | undefined; // [C·p·p, D]

  constructor(
    readonly config: PatchConvConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'proj');
    const { inChannels: C, embedDim: D, patchSize: p } = config;
    this.weight = this.param('weight', ws.get('weight', [D, C, p, p]));
    this.bias = config.bias ? this.param('bias', ws.get('bias', [D])) : undefined;
  }

  private transposed(): tf.Tensor {
    const { inChannels: C, embedDim: D, patchSize: p } = this.config;
    if (this.trainable) return tf.transpose(tf.reshape(this.weight, [D, C * p * p]));
    if (this.weightT === undefined || this.weightT.isDisposed) {
      this.weightT = tf.keep(tf.tidy(() => tf.transpose(tf.reshape(this.weight, [D, C * p * p]))));
    }
    return this.weightT;
  }

  /** @param patches `[N, C·p·p]` (channel, row, col order) → `[N, D]` */
  forward(patches: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const y = matMul2d(patches, this.transposed()); // [N, D]
      return this.bias !== undefined ? tf.add(y, this.bias) : y;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
    return [shape[0] ?? null, this.config.embedDim];
  }

  protected override releaseCaches(): void {
    this.weightT?.dispose();
    this.weightT = undefined;
  }
}
tf.serialization.registerClass(PatchConv, 'Mask2DiT');

// ---------------------------------------------------------------------------------------------
// the patch embedding

/** The transformer-config keys the patch embedding reads (reference names; defaults = diffusers class defaults). */
export interface PatchEmbedConfig {
  /** Selects how the position table is resized (see the file comment); default `CogVideoXTransformer3DModel`. */
  _class_name?: string;
  num_attention_heads: number;
  attention_head_dim: number;
  in_channels: number;
  text_embed_dim: number;
  patch_size: number;
  patch_size_t?: number | null;
  patch_bias?: boolean;
  sample_width?: number;
  sample_height?: number;
  sample_frames?: number;
  temporal_compression_ratio?: number;
  max_text_seq_length?: number;
  spatial_interpolation_scale?: number;
  temporal_interpolation_scale?: number;
  use_rotary_positional_embeddings?: boolean;
  use_learned_positional_embeddings?: boolean;
  /** The patch-embed argument; the transformer passes `!use_rotary_positional_embeddings` (the default here). */
  use_positional_embeddings?: boolean;
}

export interface ResolvedPatchEmbedConfig {
  _class_name: string;
  num_attention_heads: number;
  attention_head_dim: number;
  in_channels: number;
  text_embed_dim: number;
  patch_size: number;
  patch_size_t: number | null;
  patch_bias: boolean;
  sample_width: number;
  sample_height: number;
  sample_frames: number;
  temporal_compression_ratio: number;
  max_text_seq_length: number;
  spatial_interpolation_scale: number;
  temporal_interpolation_scale: number;
  use_rotary_positional_embeddings: boolean;
  use_learned_positional_embeddings: boolean;
  use_positional_embeddings: boolean;
}

export function resolvePatchEmbedConfig(c: PatchEmbedConfig): ResolvedPatchEmbedConfig {
  const rope = c.use_rotary_positional_embeddings ?? false;
  return {
    _class_name: c._class_name ?? 'CogVideoXTransformer3DModel',
    num_attention_heads: c.num_attention_heads,
    attention_head_dim: c.attention_head_dim,
    in_channels: c.in_channels,
    text_embed_dim: c.text_embed_dim,
    patch_size: c.patch_size,
    patch_size_t: c.patch_size_t ?? null,
    patch_bias: c.patch_bias ?? true,
    sample_width: c.sample_width ?? 90,
    sample_height: c.sample_height ?? 60,
    sample_frames: c.sample_frames ?? 49,
    temporal_compression_ratio: c.temporal_compression_ratio ?? 4,
    max_text_seq_length: c.max_text_seq_length ?? 226,
    spatial_interpolation_scale: c.spatial_interpolation_scale ?? 1.875,
    temporal_interpolation_scale: c.temporal_interpolation_scale ?? 1.0,
    use_rotary_positional_embeddings: rope,
    use_learned_positional_embeddings: c.use_learned_positional_embeddings ?? false,
    use_positional_embeddings: c.use_positional_embeddings ?? !rope,
  };
}

export interface PatchEmbedInputs {
  /** Latents `[B, F, C, H, W]`. */
  latents: tf.Tensor;
  /** Prompt embeddings `[B, Lt, textDim]`. */
  text: tf.Tensor;
}

/** Position rows for the text and video tokens (`text` absent where the table's text rows are zero). */
type PositionRows = {
  text: tf.Tensor | undefined; // [Lt, D]
  video: tf.Tensor; // [Nv, D]
};

export class CogVideoXPatchEmbed extends M2Layer {
  static readonly className = 'M2CogVideoXPatchEmbed';
  readonly config: ResolvedPatchEmbedConfig;
  /** Token width `D = heads·head_dim`. */
  readonly dim: number;
  readonly proj: PatchConv | Linear;
  readonly textProj: Linear;
  /** The persisted table `[1, max_text + base video tokens, D]` (learned positional embeddings only). */
  readonly posEmbedding: tf.Variable | undefined;
  private posCache: { key: string; rows: PositionRows } | undefined;

  constructor(config: PatchEmbedConfig, ws: WeightSource) {
    super(ws.prefix || 'patch_embed');
    const c = (this.config = resolvePatchEmbedConfig(config));
    const D = (this.dim = c.num_attention_heads * c.attention_head_dim);
    const p = c.patch_size;
    const pt = c.patch_size_t;
    if (this.hasPositions()) {
      if (pt !== null)
        throw new ConfigError(
          '(config)',
          'patch_size_t',
          'sin-cos / learned positional embeddings with temporal patching (CogVideoX 1.5) are unsupported; 1.5 checkpoints use RoPE',
        );
      if (D % 16 !== 0)
        throw new ConfigError(
          '(config)',
          'num_attention_heads*attention_head_dim',
          `the 3D sin-cos position table needs the inner dim to be a multiple of 16, got ${D}`,
        );
    }
    if (pt === null) {
      this.proj = this.child(
        'proj',
        new PatchConv({ inChannels: c.in_channels, embedDim: D, patchSize: p, bias: c.patch_bias }, ws.pp('proj')),
      );
    } else {
      this.proj = this.child(
        'proj',
        new Linear({ inFeatures: c.in_channels * pt * p * p, outFeatures: D, bias: true }, ws.pp('proj')),
      );
    }
    this.textProj = this.child(
      'text_proj',
      new Linear({ inFeatures: c.text_embed_dim, outFeatures: D, bias: true }, ws.pp('text_proj')),
    );
    this.posEmbedding = c.use_learned_positional_embeddings
      ? this.param('pos_embedding', ws.get('pos_embedding', [1, c.max_text_seq_length + this.baseTokens(), D]))
      : undefined;
  }

  private hasPositions(): boolean {
    return this.config.use_positional_embeddings || this.config.use_learned_positional_embeddings;
  }

  /** `[T0, h0, w0]`: latent frames and patch grid of the sample size. */
  private baseGrid(): [number, number, number] {
    const c = this.config;
    return [
      Math.floor((c.sample_frames - 1) / c.temporal_compression_ratio) + 1,
      Math.floor(c.sample_height / c.patch_size),
      Math.floor(c.sample_width / c.patch_size),
    ];
  }

  private baseTokens(): number {
    const [t, h, w] = this.baseGrid();
    return t * h * w;
  }

  /** Check the inputs; returns `[B, F, C, H, W, Lt]`. */
  private check(inputs: PatchEmbedInputs): [number, number, number, number, number, number] {
    const c = this.config;
    const { latents, text } = inputs;
    if (latents.rank !== 5) throw new ShapeError('hidden_states', `expected [B, F, C, H, W], got [${latents.shape}]`);
    const [B, F, C, H, W] = latents.shape as [number, number, number, number, number];
    if (C !== c.in_channels)
      throw new ShapeError('hidden_states', `expected ${c.in_channels} channels, got ${C} in [${latents.shape}]`);
    if (H % c.patch_size !== 0 || W % c.patch_size !== 0)
      throw new ShapeError(
        'hidden_states',
        `height ${H} and width ${W} must be multiples of patch_size ${c.patch_size}`,
      );
    if (c.patch_size_t !== null && F % c.patch_size_t !== 0)
      throw new ShapeError(
        'hidden_states',
        `${F} frames are not a multiple of patch_size_t ${c.patch_size_t} (pad the latents first, as the reference does)`,
      );
    if (text.rank !== 3 || text.shape[0] !== B || text.shape[2] !== c.text_embed_dim) {
      throw new ShapeError('encoder_hidden_states', `expected [${B}, Lt, ${c.text_embed_dim}], got [${text.shape}]`);
    }
    return [B, F, C, H, W, text.shape[1]!];
  }

  /** Video tokens `[B, Nv, D]`. */
  private embedVideo(latents: tf.Tensor): tf.Tensor {
    const [B, F, C, H, W] = latents.shape as [number, number, number, number, number];
    const p = this.config.patch_size;
    const [h, w] = [H / p, W / p];
    const pt = this.config.patch_size_t;
    let patches: tf.Tensor;
    if (pt === null) {
      const x = tf.reshape(latents, [B * F, C, h, p, w, p]);
      patches = tf.reshape(tf.transpose(x, [0, 2, 4, 1, 3, 5]), [B * F * h * w, C * p * p]); // (channel, row, col)
    } else {
      const x = tf.reshape(latents, [(B * F) / pt, pt, C, h, p, w, p]);
      patches = tf.reshape(tf.transpose(x, [0, 3, 5, 2, 1, 4, 6]), [((B * F) / pt) * h * w, C * pt * p * p]); // (channel, frame, row, col)
    }
    const y = this.proj.forward(patches); // [B·F'·h·w, D]
    return tf.reshape(y, [B, -1, this.dim]);
  }

  /**
   * The position table the reference adds for this input: `[1, Lt + Nv, D]` (a fresh tensor owned by
   * the caller), or undefined when the model adds none (RoPE models).
   */
  positionalEmbedding(textLen: number, frames: number, height: number, width: number): tf.Tensor | undefined {
    if (!this.hasPositions()) return undefined;
    return tf.tidy(() => {
      const rows = this.positionRows(textLen, frames, height, width);
      const text = rows.text ?? tf.zeros([textLen, this.dim]);
      return tf.expandDims(tf.concat([text, rows.video], 0), 0);
    });
  }

  /** The rows to add (cached per input size: the sampler calls with one size every step). */
  private positionRows(Lt: number, F: number, H: number, W: number): PositionRows {
    const key = `${Lt},${F},${H},${W}`;
    if (this.posCache?.key === key) return this.posCache.rows;
    const rows = tf.tidy(() =>
      this.config._class_name === 'MultiPromptCogVideoXTransformer3DModel'
        ? this.rowsVideoXFun(Lt, F, H, W)
        : this.rowsDiffusers(Lt, F, H, W),
    );
    if (this.trainable && this.posEmbedding !== undefined) return rows; // the table may change: no cache (caller's tidy frees it)
    if (this.posCache !== undefined) {
      this.posCache.rows.text?.dispose();
      this.posCache.rows.video.dispose();
    }
    tf.keep(rows.video);
    if (rows.text !== undefined) tf.keep(rows.text);
    this.posCache = { key, rows };
    return rows;
  }

  /** diffusers 0.30.3 `CogVideoXPatchEmbed.forward`. */
  private rowsDiffusers(Lt: number, F: number, H: number, W: number): PositionRows {
    const c = this.config;
    const D = this.dim;
    const p = c.patch_size;
    if (Lt !== c.max_text_seq_length) {
      throw new ShapeError(
        'encoder_hidden_states',
        `the reference adds a [1, max_text_seq_length + video tokens, D] position table, so the text must have exactly max_text_seq_length = ${c.max_text_seq_length} tokens; got ${Lt}`,
      );
    }
    if (c.use_learned_positional_embeddings && (H !== c.sample_height || W !== c.sample_width)) {
      throw new ShapeError(
        'hidden_states',
        `learned positional embeddings only exist for the sample size ${c.sample_height}×${c.sample_width} latents; got ${H}×${W}`,
      );
    }
    const preCompressionFrames = (F - 1) * c.temporal_compression_ratio + 1;
    if (
      H !== c.sample_height ||
      W !== c.sample_width ||
      preCompressionFrames !== c.sample_frames ||
      this.posEmbedding === undefined
    ) {
      // rebuilt for the input (diffusers does this even for a learned table when only the frame count differs)
      const video = tf.tensor2d(
        sincosPosEmbed3d(
          D,
          Math.floor(H / p),
          Math.floor(W / p),
          F,
          c.spatial_interpolation_scale,
          c.temporal_interpolation_scale,
        ),
        [F * (H / p) * (W / p), D],
      );
      return { text: undefined, video };
    }
    const table = tf.reshape(this.posEmbedding, [-1, D]);
    return { text: tf.slice(table, [0, 0], [Lt, D]), video: tf.slice(table, [Lt, 0], [-1, D]) };
  }

  /** Mask²DiT (videox_fun) `CogVideoXPatchEmbed.forward`: resize the sample-size table. */
  private rowsVideoXFun(Lt: number, F: number, H: number, W: number): PositionRows {
    const c = this.config;
    const D = this.dim;
    const p = c.patch_size;
    const maxText = c.max_text_seq_length;
    const [T0, h0, w0] = this.baseGrid();
    const [h, w] = [Math.floor(H / p), Math.floor(W / p)];
    const T1 = Math.floor((T0 * Lt) / maxText);
    if (T1 < F) {
      throw new ShapeError(
        'hidden_states',
        `Mask²DiT's position table covers ${T0} latent frames per ${maxText} text tokens, i.e. ${T1} frames for ${Lt} text tokens; got ${F} frames`,
      );
    }
    let textRows: tf.Tensor | undefined;
    let video: tf.Tensor; // [T, h, w, D]
    if (this.posEmbedding !== undefined) {
      const table = tf.reshape(this.posEmbedding, [-1, D]);
      textRows = resizeAxis(tf.slice(table, [0, 0], [maxText, D]), 0, Lt);
      video = tf.reshape(tf.slice(table, [maxText, 0], [-1, D]), [T0, h0, w0, D]);
    } else {
      video = tf.tensor4d(
        sincosPosEmbed3d(D, h0, w0, T0, c.spatial_interpolation_scale, c.temporal_interpolation_scale),
        [T0, h0, w0, D],
      );
    }
    video = resizeAxis(resizeAxis(resizeAxis(video, 0, T1), 1, h), 2, w);
    video = tf.reshape(tf.slice(video, [0, 0, 0, 0], [F, h, w, D]), [F * h * w, D]);
    return { text: textRows, video };
  }

  /** `[B, Lt + Nv, D]`: `[text_proj(text); proj(patches) (+ positions)]`. */
  forward(inputs: PatchEmbedInputs): tf.Tensor {
    const [, F, , H, W, Lt] = this.check(inputs);
    return tf.tidy(() => {
      let text = this.textProj.forward(inputs.text);
      let video = this.embedVideo(inputs.latents);
      if (this.hasPositions()) {
        const pos = this.positionRows(Lt, F, H, W);
        video = tf.add(video, pos.video);
        if (pos.text !== undefined) text = tf.add(text, pos.text);
      }
      return tf.concat([text, video], 1);
    });
  }

  /** tfjs-layers adapter: `apply([latents, text])`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [latents, text] = inputs as tf.Tensor[];
    if (latents === undefined || text === undefined)
      throw new ShapeError('patch_embed inputs', 'expected [latents, text]');
    return this.forward({ latents, text });
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const [ls, ts] = s as tfl.Shape[];
    const [B, F, , H, W] = ls!;
    const Lt = ts![1];
    const c = this.config;
    const p = c.patch_size;
    const pt = c.patch_size_t ?? 1;
    const nv = F == null || H == null || W == null ? null : (F / pt) * (H / p) * (W / p);
    return [B ?? null, Lt == null || nv === null ? null : Lt + nv, this.dim];
  }

  protected override releaseCaches(): void {
    this.posCache?.rows.text?.dispose();
    this.posCache?.rows.video.dispose();
    this.posCache = undefined;
  }
}
tf.serialization.registerClass(CogVideoXPatchEmbed, 'Mask2DiT');
