/**
 * Flow-matching Euler sampler (diffusers `FlowMatchEulerDiscreteScheduler`, 0.30.3) for models that
 * predict the velocity v = ε − x₀ of the path x_σ = (1 − σ)·x₀ + σ·ε.
 *
 *   shift:     σ ↦ shift·σ / (1 + (shift − 1)·σ)
 *   training:  σ_k = shift((T − k)/T), k = 0 … T−1 (float32)      σ_max = σ_0 = 1, σ_min = σ_{T−1}
 *   schedule:  σ_i = shift(linspace(σ_max·T, σ_min·T, n)/T) (float64 → float32), then σ_n = 0
 *   timestep given to the model: t_i = σ_i·T (float32)
 *   step:      x ← x + (σ_{i+1} − σ_i)·v   (float32)
 *   prediction_type 'sample' (a mask2dit extension): the model predicts x̂₀, v = (x − x̂₀)/σ, so the
 *              step is x ← x̂₀ + (σ_{i+1}/σ_i)·(x − x̂₀)
 *   stochastic_sampling (diffusers ≥ 0.33): x̂₀ as above, then fresh noise instead of the implied one:
 *              x ← (1 − σ_{i+1})·x̂₀ + σ_{i+1}·ε_i   (ε_i from `options.noise`, draw 0 of step i)
 *
 * Reference quirk (`schedule: 'reference'`, default): σ_min is already shifted at construction and
 * `set_timesteps` shifts again, so for shift ≠ 1 the smallest non-zero σ is shifted twice (and the
 * intermediate ones are shifted versions of points between 1 and an already-shifted σ_min).
 * `schedule: 'shift-once'` interpolates between the unshifted end points 1 and 1/T and shifts once.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FlowMatchSchedulerConfig } from '../config/schedulerConfig.js';
import { Mask2DiTError } from '../errors.js';
import { rowShape, type Sampler, type StepOptions, type StepOutput } from './sampler.js';

const f32 = Math.fround;

/**
 * x̂₀ from a flow model's output at noise level σ (a number, or a tensor broadcasting over `sample`):
 * the output itself for `prediction_type: "sample"`, else x − σ·v. Always a new tensor.
 */
export function flowX0(
  output: tf.Tensor,
  sample: tf.Tensor,
  sigma: number | tf.Tensor,
  prediction: FlowMatchSchedulerConfig['prediction_type'],
): tf.Tensor {
  return prediction === 'sample' ? tf.clone(output) : tf.sub(sample, tf.mul(output, sigma));
}

export interface FlowMatchEulerOptions {
  /** 'reference' (σ_min shifted twice, as diffusers 0.30.3) or 'shift-once'. */
  schedule?: 'reference' | 'shift-once';
}

/** numpy `linspace(start, stop, n)` (endpoint included) in float64. */
function numpyLinspace(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (stop - start) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? stop : i * step + start));
}

export class FlowMatchEulerSampler implements Sampler {
  readonly name = 'flow-euler' as const;
  readonly numTrainTimesteps: number;
  readonly initNoiseSigma = 1;
  readonly schedule: 'reference' | 'shift-once';
  /** σ of the training schedule after construction (float32 values), σ_max first. */
  readonly trainSigmas: Float32Array;
  /** σ of the current schedule (float32 values), with the final 0. */
  sigmas: number[] = [];
  private ts: number[] = [];

  constructor(
    readonly config: FlowMatchSchedulerConfig,
    options: FlowMatchEulerOptions = {},
  ) {
    this.numTrainTimesteps = config.num_train_timesteps;
    this.schedule = options.schedule ?? 'reference';
    const T = config.num_train_timesteps;
    const shift = f32(config.shift);
    // float32 tensor ops of the reference constructor: shift·s / (1 + (shift − 1)·s)
    this.trainSigmas = Float32Array.from({ length: T }, (_, k) => {
      const s = f32((T - k) / T);
      return f32(f32(shift * s) / f32(1 + f32(f32(shift - 1) * s)));
    });
  }

  get timesteps(): readonly number[] {
    return this.ts;
  }

  private shift(s: number): number {
    const k = this.config.shift;
    return (k * s) / (1 + (k - 1) * s);
  }

  setTimesteps(steps: number): void {
    if (!Number.isInteger(steps) || steps < 1)
      throw new Mask2DiTError('STEPS', `steps must be a positive integer, got ${steps}`);
    const T = this.numTrainTimesteps;
    const [hi, lo] = this.schedule === 'reference' ? [this.trainSigmas[0]!, this.trainSigmas[T - 1]!] : [1, 1 / T];
    const sig = numpyLinspace(hi * T, lo * T, steps).map((t) => f32(this.shift(t / T)));
    this.sigmas = [...sig, 0];
    this.ts = sig.map((s) => f32(s * T));
  }

  scaleModelInput(sample: tf.Tensor, _stepIndex: number): tf.Tensor {
    return tf.clone(sample);
  }

  step(modelOutput: tf.Tensor, stepIndex: number, sample: tf.Tensor, options: StepOptions = {}): StepOutput {
    const n = this.ts.length;
    if (n === 0) throw new Mask2DiTError('STEPS', 'flow-euler: call setTimesteps before step');
    if (!Number.isInteger(stepIndex) || stepIndex < 0 || stepIndex >= n)
      throw new Mask2DiTError('STEPS', `flow-euler: step index must be in [0, ${n}), got ${stepIndex}`);
    const sigma = this.sigmas[stepIndex]!;
    const next = this.sigmas[stepIndex + 1]!;
    const dt = f32(next - sigma);
    if (this.config.stochastic_sampling)
      return this.stochasticStep(modelOutput, sigma, next, stepIndex, sample, options);
    if (this.config.prediction_type === 'sample') {
      // the model predicts x̂₀: v = (x − x̂₀)/σ, so x + (σ_next − σ)·v = x̂₀ + (σ_next/σ)·(x − x̂₀)
      return tf.tidy(() => ({
        prevSample: tf.add(modelOutput, tf.mul(tf.sub(sample, modelOutput), f32(next / sigma))),
        predOriginalSample: tf.clone(modelOutput),
      }));
    }
    return tf.tidy(() => ({
      prevSample: tf.add(sample, tf.mul(modelOutput, dt)), // x + (σ_next − σ)·v
      predOriginalSample: flowX0(modelOutput, sample, sigma, 'flow_prediction'), // x̂₀ = x − σ·v
    }));
  }

  /** x ← (1 − σ_next)·x̂₀ + σ_next·ε with fresh ε (none drawn at the last step, where σ_next = 0). */
  private stochasticStep(
    modelOutput: tf.Tensor,
    sigma: number,
    next: number,
    stepIndex: number,
    sample: tf.Tensor,
    options: StepOptions,
  ): StepOutput {
    if (next > 0 && options.noise === undefined)
      throw new Mask2DiTError('STEPS', 'flow-euler: stochastic_sampling draws noise at every step; pass options.noise');
    const noise = next > 0 ? options.noise!(sample.shape, stepIndex, 0) : null;
    const out = tf.tidy(() => {
      const x0 = flowX0(modelOutput, sample, sigma, this.config.prediction_type);
      const prev = noise === null ? tf.clone(x0) : tf.add(tf.mul(x0, f32(1 - next)), tf.mul(noise, next));
      return { prevSample: prev, predOriginalSample: x0 };
    });
    noise?.dispose();
    return out;
  }

  /**
   * `σ·ε + (1 − σ)·x₀` (reference `scale_noise`); σ is looked up by timestep value in the current
   * schedule when it is one of its timesteps, else σ = t/T.
   */
  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: readonly number[]): tf.Tensor {
    const B = original.shape[0]!;
    if (timesteps.length !== B && timesteps.length !== 1)
      throw new Mask2DiTError('STEPS', `addNoise: expected 1 or ${B} timesteps, got ${timesteps.length}`);
    const ts = timesteps.length === 1 ? Array<number>(B).fill(timesteps[0]!) : timesteps;
    const sig = ts.map((t) => {
      const i = this.ts.indexOf(f32(t));
      return i >= 0 ? this.sigmas[i]! : f32(t / this.numTrainTimesteps);
    });
    return tf.tidy(() => {
      const s = tf.tensor(sig, rowShape(B, original.rank));
      const oneMinus = tf.tensor(
        sig.map((v) => f32(1 - v)),
        rowShape(B, original.rank),
      );
      return tf.add(tf.mul(s, noise), tf.mul(oneMinus, original));
    });
  }

  reset(): void {}
}
