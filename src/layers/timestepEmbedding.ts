/**
 * Timestep conditioning of CogVideoX / Mask²DiT.
 *
 * - `timestepSinusoid` is diffusers' `get_timestep_embedding` (the model's `time_proj`, no weights):
 *   `half = dim/2`, `freq_i = exp(−ln(max_period)·i / (half − freq_shift))`, `arg = scale·t·freq_i`,
 *   output `[cos(arg) | sin(arg)]` with `flip_sin_to_cos`, else `[sin | cos]`; an odd `dim` gets a zero
 *   column at the end. The reference computes this line in float32 (even in a float64 model); here it
 *   is computed in float64 and rounded once, which stays within ~3e-5 of the reference at t ≈ 1000
 *   (two float32 implementations of it differ by up to ~5e-5).
 * - `TimestepEmbedding` (`time_embedding`): `linear_2(SiLU(linear_1(x)))`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import { M2Layer } from './layer.js';
import { Linear } from './linear.js';
import { silu } from './math.js';
import type { WeightSource } from './weightSource.js';

/** Extra knobs of `get_timestep_embedding` that CogVideoX leaves at their defaults. */
export interface SinusoidOptions {
  /** Multiplies the arguments (diffusers `scale`, default 1). */
  scale?: number;
  /** diffusers `max_period`, default 10000. */
  maxPeriod?: number;
}

/**
 * Sinusoidal timestep projection `[B, dim]` (float32), one row per timestep.
 * @param timesteps    one value per batch row (integers in practice; rounded to float32 first, like `t.float()`)
 * @param dim          embedding width (the model passes `inner_dim`)
 * @param flipSinToCos `[cos | sin]` when true (CogVideoX), `[sin | cos]` otherwise
 * @param freqShift    diffusers `downscale_freq_shift` (the config's `freq_shift`, 0 for CogVideoX)
 */
export function timestepSinusoid(
  timesteps: readonly number[],
  dim: number,
  flipSinToCos: boolean,
  freqShift: number,
  options: SinusoidOptions = {},
): tf.Tensor2D {
  if (!Number.isInteger(dim) || dim < 1)
    throw new ShapeError('time_proj', `embedding dim must be a positive integer, got ${dim}`);
  if (timesteps.length === 0) throw new ShapeError('timestep', 'expected at least one timestep');
  const bad = timesteps.findIndex((t) => !Number.isFinite(t));
  if (bad >= 0) throw new ShapeError('timestep', `value ${bad} is not a finite number: ${timesteps[bad]}`);
  const half = Math.floor(dim / 2);
  if (half === freqShift)
    throw new ShapeError(
      'time_proj',
      `half the embedding dim (${half}) equals freq_shift: the frequencies divide by zero`,
    );
  const scale = options.scale ?? 1;
  const logPeriod = Math.log(options.maxPeriod ?? 10000);
  const freqs = new Float64Array(half);
  for (let i = 0; i < half; i++) freqs[i] = Math.exp((-logPeriod * i) / (half - freqShift));

  const B = timesteps.length;
  const out = new Float32Array(B * dim); // the odd column (if any) stays zero
  const [first, second] = flipSinToCos ? [Math.cos, Math.sin] : [Math.sin, Math.cos];
  for (let b = 0; b < B; b++) {
    const t = Math.fround(timesteps[b]!);
    const row = b * dim;
    for (let i = 0; i < half; i++) {
      const arg = scale * (t * freqs[i]!);
      out[row + i] = first(arg);
      out[row + half + i] = second(arg);
    }
  }
  return tf.tensor2d(out, [B, dim], 'float32');
}

export interface TimestepEmbeddingConfig {
  /** Input width (the sinusoid width, `inner_dim` in the model). */
  inChannels: number;
  /** `linear_1` output width (`time_embed_dim`). */
  timeEmbedDim: number;
  /** `linear_2` output width; default `timeEmbedDim`. */
  outDim?: number;
  /** Bias on both linears (diffusers `sample_proj_bias`), default true. */
  sampleProjBias?: boolean;
  /** Activation between the linears; only SiLU (`timestep_activation_fn: "silu"`) is used by CogVideoX. */
  act?: 'silu';
}

type ResolvedConfig = Required<TimestepEmbeddingConfig>;

export class TimestepEmbedding extends M2Layer {
  static readonly className = 'M2TimestepEmbedding';
  readonly config: ResolvedConfig;
  readonly linear1: Linear;
  readonly linear2: Linear;

  constructor(config: TimestepEmbeddingConfig, ws: WeightSource) {
    super(ws.prefix || 'time_embedding');
    if (config.act !== undefined && config.act !== 'silu')
      throw new ShapeError('time_embedding', `unsupported activation ${String(config.act)} (only silu)`);
    this.config = {
      inChannels: config.inChannels,
      timeEmbedDim: config.timeEmbedDim,
      outDim: config.outDim ?? config.timeEmbedDim,
      sampleProjBias: config.sampleProjBias ?? true,
      act: 'silu',
    };
    const c = this.config;
    this.linear1 = this.child(
      'linear_1',
      new Linear({ inFeatures: c.inChannels, outFeatures: c.timeEmbedDim, bias: c.sampleProjBias }, ws.pp('linear_1')),
    );
    this.linear2 = this.child(
      'linear_2',
      new Linear({ inFeatures: c.timeEmbedDim, outFeatures: c.outDim, bias: c.sampleProjBias }, ws.pp('linear_2')),
    );
  }

  /** @param x `[B, inChannels]` (the sinusoid) → `[B, outDim]` */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.config.inChannels) {
      throw new ShapeError('time_proj', `expected [..., ${this.config.inChannels}], got [${x.shape}]`);
    }
    return tf.tidy(() => this.linear2.forward(silu(this.linear1.forward(x))));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
    return [...shape.slice(0, -1), this.config.outDim];
  }
}
tf.serialization.registerClass(TimestepEmbedding, 'Mask2DiT');
