/**
 * The small interface every sampler implements, diffusers-style but addressed by step index:
 *
 *     sampler.setTimesteps(steps)
 *     for (i, t) of sampler.timesteps:
 *       v = model(sampler.scaleModelInput(x, i), t)
 *       { prevSample: x } = sampler.step(v, i, x)
 *
 * A sampler is stateful only where the method needs it (DPM keeps the previous x̂₀); `reset()` frees
 * that state and `setTimesteps` starts a new run. All tensors returned are owned by the caller.
 */
import type * as tf from '@tensorflow/tfjs-core';

export const SAMPLER_NAMES = ['ddim', 'dpm', 'flow-euler'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

export interface StepOutput {
  /** The sample of the next (less noisy) timestep. */
  prevSample: tf.Tensor;
  /** The sampler's estimate of the clean sample x̂₀ at this step. */
  predOriginalSample: tf.Tensor;
}

/**
 * Gaussian noise for samplers that draw inside `step` (CogVideoX DPM): a fresh N(0, 1) tensor of
 * `shape` for draw `draw` of step `step` (the reference draws up to twice per step).
 */
export type NoiseSource = (shape: number[], step: number, draw: number) => tf.Tensor;

export interface StepOptions {
  noise?: NoiseSource;
}

export interface Sampler {
  readonly name: SamplerName;
  /** Timesteps of the training schedule (1000 for CogVideoX). */
  readonly numTrainTimesteps: number;
  /** Standard deviation of the initial noise (1 for all samplers here). */
  readonly initNoiseSigma: number;
  /** Timestep values of the current schedule in order of use (what the model is given). */
  readonly timesteps: readonly number[];
  /** Build the schedule for `steps` model evaluations and forget any previous run. */
  setTimesteps(steps: number): void;
  /** Input scaling the model expects at step `stepIndex` (identity for these samplers). */
  scaleModelInput(sample: tf.Tensor, stepIndex: number): tf.Tensor;
  /** One update from the model output at step `stepIndex`. */
  step(modelOutput: tf.Tensor, stepIndex: number, sample: tf.Tensor, options?: StepOptions): StepOutput;
  /**
   * Forward diffusion: noise clean samples to the given timesteps (one per batch row, or one for all).
   * DDIM/DPM: `√ᾱ_t·x₀ + √(1−ᾱ_t)·ε`; flow matching: `σ·ε + (1−σ)·x₀`.
   */
  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: readonly number[]): tf.Tensor;
  /** Free tensors kept between steps. */
  reset(): void;
}

/** `[B, 1, 1, …]` view of per-row scalars for broadcasting over a tensor of `rank`. */
export function rowShape(batch: number, rank: number): number[] {
  return [batch, ...Array<number>(rank - 1).fill(1)];
}
