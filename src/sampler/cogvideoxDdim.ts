/**
 * CogVideoX DDIM (diffusers `CogVideoXDDIMScheduler`), the sampler of the official Mask²DiT release.
 *
 * Schedule (float64, as the reference):
 *   β = linspace(√β_start, √β_end, T)²,  ᾱ = cumprod(1 − β)
 *   SNR shift (SD3):         ᾱ ← ᾱ / (s + (1 − s)·ᾱ)            (s = snr_shift_scale)
 *   zero terminal SNR:       √ᾱ ← (√ᾱ − √ᾱ_T) · √ᾱ_0 / (√ᾱ_0 − √ᾱ_T)   (so ᾱ[T−1] = 0)
 *   trailing timesteps:      round(arange(T, 0, −T/n)) − 1
 *
 * Step (deterministic; `eta` does not exist in this scheduler):
 *   x̂₀ = √ᾱ_t·x − √(1−ᾱ_t)·v                      (v-prediction)
 *   x' = a·x + b·x̂₀,  a = √((1−ᾱ_prev)/(1−ᾱ_t)),  b = √ᾱ_prev − √ᾱ_t·a
 * with `prev_t = t − ⌊T/n⌋` and ᾱ_prev = 1 when prev_t < 0 (`set_alpha_to_one`). Coefficients are
 * float64 scalars rounded to float32 before they multiply the float32 latents, as PyTorch does.
 *
 * Reference quirk (`prevTimestep: 'reference'`, the default): `prev_t = t − ⌊T/n⌋` is not the next
 * timestep of the schedule when T/n is not an integer (n = 3: the step at t = 666 moves to ᾱ[333] but
 * the next step evaluates t = 332), and when `prev_t` lands on 0 instead of −1 (n = 6, 7, 9, …) the last
 * step returns `a·x + b·x̂₀` with ᾱ_prev = ᾱ[0] instead of x̂₀ (2.9 % of the noise estimate stays in).
 * `prevTimestep: 'schedule'` uses the next timestep of the schedule (−1 after the last).
 *
 * numpy's float `arange` gives n + 1 trailing timesteps for 62 step counts ≤ 1000 (61, 103, 121, …),
 * the extra one being −1 (which the reference then indexes as ᾱ[T−1] = 0). It is dropped here.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CogVideoXSchedulerConfig } from '../config/schedulerConfig.js';
import { Mask2DiTError } from '../errors.js';
import { log } from '../log.js';
import { rowShape, type Sampler, type SamplerName, type StepOptions, type StepOutput } from './sampler.js';

const f32 = Math.fround;

export type PrevTimestepRule = 'reference' | 'schedule';

export interface CogVideoXSamplerOptions {
  /** How the step's target timestep is found (see the file header). Default 'reference'. */
  prevTimestep?: PrevTimestepRule;
}

/** torch.linspace in float64: the first half from the start, the second half from the end. */
function torchLinspace(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? start + step * i : end - step * (n - 1 - i);
  return out;
}

/** ᾱ_t for t = 0 … T−1 after the SNR shift and (optionally) the zero-terminal-SNR rescale (float64). */
export function cogvideoxAlphasCumprod(c: CogVideoXSchedulerConfig): Float64Array {
  const T = c.num_train_timesteps;
  const sqrtBetas = torchLinspace(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), T);
  const ac = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) {
    prod *= 1 - sqrtBetas[i]! ** 2;
    ac[i] = prod;
  }
  const s = c.snr_shift_scale;
  for (let i = 0; i < T; i++) ac[i] = ac[i]! / (s + (1 - s) * ac[i]!);
  if (c.rescale_betas_zero_snr) {
    const sq = ac.map(Math.sqrt);
    const s0 = sq[0]!;
    const sT = sq[T - 1]!;
    for (let i = 0; i < T; i++) {
      const shifted = sq[i]! - sT;
      ac[i] = (shifted * (s0 / (s0 - sT))) ** 2;
    }
  }
  return ac;
}

/** numpy `arange(start, stop, step)` for floats: length ⌈(stop−start)/step⌉, values `start + i·δ`, δ = (start+step) − start. */
function numpyArange(start: number, stop: number, step: number): number[] {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length: n }, (_, i) => (i === 0 ? start : start + i * delta));
}

/** numpy `round` (half to even) for float64. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The inference timesteps for `n` steps under `timestep_spacing`, as the reference computes them. */
export function cogvideoxTimesteps(c: CogVideoXSchedulerConfig, n: number): number[] {
  const T = c.num_train_timesteps;
  if (!Number.isInteger(n) || n < 1 || n > T)
    throw new Mask2DiTError('STEPS', `steps must be an integer in [1, ${T}] (num_train_timesteps), got ${n}`);
  let ts: number[];
  if (c.timestep_spacing === 'linspace') {
    const step = n === 1 ? 0 : (T - 1) / (n - 1); // numpy linspace(0, T − 1, n): i·step, last = T − 1
    ts = Array.from({ length: n }, (_, i) => roundHalfEven(i === n - 1 && n > 1 ? T - 1 : i * step)).reverse();
  } else if (c.timestep_spacing === 'leading') {
    const ratio = Math.floor(T / n);
    ts = Array.from({ length: n }, (_, i) => i * ratio + c.steps_offset).reverse();
  } else {
    ts = numpyArange(T, 0, -T / n).map((v) => roundHalfEven(v) - 1);
  }
  if (ts.length > n && ts[ts.length - 1]! < 0) {
    log.debug(
      `trailing timesteps for ${n} steps: numpy's arange yields an extra timestep ${ts[ts.length - 1]}; dropped`,
    );
    ts = ts.filter((t) => t >= 0).slice(0, n);
  }
  return ts;
}

/** Shared schedule and forward-process math of the CogVideoX DDIM and DPM samplers. */
export abstract class CogVideoXSamplerBase implements Sampler {
  abstract readonly name: SamplerName;
  readonly numTrainTimesteps: number;
  readonly initNoiseSigma = 1;
  readonly alphasCumprod: Float64Array;
  readonly finalAlphaCumprod: number;
  readonly prevTimestepRule: PrevTimestepRule;
  protected schedule: number[] = [];

  constructor(
    readonly config: CogVideoXSchedulerConfig,
    options: CogVideoXSamplerOptions = {},
  ) {
    this.numTrainTimesteps = config.num_train_timesteps;
    this.alphasCumprod = cogvideoxAlphasCumprod(config);
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    this.prevTimestepRule = options.prevTimestep ?? 'reference';
  }

  get timesteps(): readonly number[] {
    return this.schedule;
  }

  setTimesteps(steps: number): void {
    this.reset();
    this.schedule = cogvideoxTimesteps(this.config, steps);
  }

  scaleModelInput(sample: tf.Tensor, _stepIndex: number): tf.Tensor {
    return tf.clone(sample);
  }

  abstract step(modelOutput: tf.Tensor, stepIndex: number, sample: tf.Tensor, options?: StepOptions): StepOutput;

  reset(): void {}

  /** Timestep and target timestep of step i (the latter may be negative: past the end). */
  protected timestepPair(i: number): { t: number; prevT: number } {
    const n = this.schedule.length;
    if (n === 0) throw new Mask2DiTError('STEPS', `${this.name}: call setTimesteps before step`);
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new Mask2DiTError('STEPS', `${this.name}: step index must be in [0, ${n}), got ${i}`);
    const t = this.schedule[i]!;
    const prevT =
      this.prevTimestepRule === 'reference' ? t - Math.floor(this.numTrainTimesteps / n) : (this.schedule[i + 1] ?? -1);
    return { t, prevT };
  }

  /** ᾱ at a timestep; `final` (ᾱ = 1 with set_alpha_to_one) for negative ones. */
  protected alphaAt(t: number): number {
    return t >= 0 ? this.alphasCumprod[t]! : this.finalAlphaCumprod;
  }

  /** x̂₀ from the model output (float32 tensor ops, float64 coefficients rounded to float32). */
  protected predictOriginal(modelOutput: tf.Tensor, sample: tf.Tensor, acT: number): tf.Tensor {
    const betaT = 1 - acT;
    switch (this.config.prediction_type) {
      case 'v_prediction':
        return tf.sub(tf.mul(sample, Math.sqrt(acT)), tf.mul(modelOutput, Math.sqrt(betaT)));
      case 'epsilon':
        return tf.div(tf.sub(sample, tf.mul(modelOutput, Math.sqrt(betaT))), Math.sqrt(acT));
      case 'sample':
        return tf.clone(modelOutput);
    }
  }

  /** √ᾱ and √(1−ᾱ) per batch row, with ᾱ cast to float32 before the roots (reference `add_noise`). */
  private rowCoefficients(timesteps: readonly number[], batch: number, rank: number): [tf.Tensor, tf.Tensor] {
    if (timesteps.length !== batch && timesteps.length !== 1)
      throw new Mask2DiTError('STEPS', `addNoise: expected 1 or ${batch} timesteps, got ${timesteps.length}`);
    const ts = timesteps.length === 1 ? Array<number>(batch).fill(timesteps[0]!) : timesteps;
    const a = ts.map((t) => {
      if (!Number.isInteger(t) || t < 0 || t >= this.numTrainTimesteps)
        throw new Mask2DiTError('STEPS', `timestep must be an integer in [0, ${this.numTrainTimesteps}), got ${t}`);
      return f32(this.alphasCumprod[t]!);
    });
    const sqrtA = tf.tensor(
      a.map((x) => f32(Math.sqrt(x))),
      rowShape(batch, rank),
    );
    const sqrtB = tf.tensor(
      a.map((x) => f32(Math.sqrt(f32(1 - x)))),
      rowShape(batch, rank),
    );
    return [sqrtA, sqrtB];
  }

  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: readonly number[]): tf.Tensor {
    return tf.tidy(() => {
      const [sa, sb] = this.rowCoefficients(timesteps, original.shape[0]!, original.rank);
      return tf.add(tf.mul(sa, original), tf.mul(sb, noise));
    });
  }

  /** The v-prediction training target `√ᾱ·ε − √(1−ᾱ)·x₀` (reference `get_velocity`). */
  getVelocity(sample: tf.Tensor, noise: tf.Tensor, timesteps: readonly number[]): tf.Tensor {
    return tf.tidy(() => {
      const [sa, sb] = this.rowCoefficients(timesteps, sample.shape[0]!, sample.rank);
      return tf.sub(tf.mul(sa, noise), tf.mul(sb, sample));
    });
  }
}

export class CogVideoXDDIMSampler extends CogVideoXSamplerBase {
  readonly name = 'ddim' as const;

  step(modelOutput: tf.Tensor, stepIndex: number, sample: tf.Tensor): StepOutput {
    const { t, prevT } = this.timestepPair(stepIndex);
    const acT = this.alphaAt(t);
    const acPrev = this.alphaAt(prevT);
    const a = Math.sqrt((1 - acPrev) / (1 - acT));
    const b = Math.sqrt(acPrev) - Math.sqrt(acT) * a;
    return tf.tidy(() => {
      const x0 = this.predictOriginal(modelOutput, sample, acT);
      const prev = tf.add(tf.mul(sample, a), tf.mul(x0, b)); // x' = a·x + b·x̂₀
      return { prevSample: prev, predOriginalSample: x0 };
    });
  }
}
