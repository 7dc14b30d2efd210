/**
 * CogVideoX DPM (diffusers `CogVideoXDPMScheduler`): a stochastic second-order DPM-Solver++ step on
 * the same schedule as CogVideoX DDIM (see cogvideoxDdim.ts for ᾱ, timesteps and `prev_t`).
 *
 * With λ = log √(ᾱ/(1−ᾱ)), h = λ_prev − λ_t and, from the second step on, r = (λ_t − λ_back)/h
 * (λ_back: the previous step's timestep):
 *   mult1 = √((1−ᾱ_prev)/(1−ᾱ_t))·e^(−h),   mult2 = expm1(−2h)·√ᾱ_prev,
 *   mult3 = 1 + 1/(2r),  mult4 = 1/(2r),      σ_noise = √(1−ᾱ_prev)·√(1 − e^(−2h))
 *   first and last step:  x' = mult1·x − mult2·x̂₀ + σ_noise·ε
 *   otherwise:            x' = mult1·x − mult2·(mult3·x̂₀ − mult4·x̂₀_old) + σ_noise·ε
 * The step always adds noise (`eta` is ignored by the reference); the noise comes from `options.noise`.
 * At t = T−1 ᾱ_t = 0 (zero terminal SNR), so λ_t = −∞, h = +∞ and r = +∞ on the next step: the
 * multipliers follow IEEE infinity arithmetic exactly as in float64 PyTorch (mult1 = 0,
 * mult2 = −√ᾱ_prev, mult3 = 1, mult4 = 0).
 *
 * Noise draws: the reference draws ε once on the first and last step, and twice otherwise, using only
 * the second draw. Here draw 0 is requested in the first case and draw 1 in the second, so a replay of
 * the reference's draws (`noise.<step>.<draw>`) lines up, and the discarded draw is never computed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { CogVideoXSamplerBase } from './cogvideoxDdim.js';
import type { StepOptions, StepOutput } from './sampler.js';

const lambda = (ac: number) => Math.log(Math.sqrt(ac / (1 - ac)));

export class CogVideoXDPMSampler extends CogVideoXSamplerBase {
  readonly name = 'dpm' as const;
  private oldX0: tf.Tensor | undefined;
  private nextIndex = 0;

  override reset(): void {
    this.oldX0?.dispose();
    this.oldX0 = undefined;
    this.nextIndex = 0;
  }

  step(modelOutput: tf.Tensor, stepIndex: number, sample: tf.Tensor, options: StepOptions = {}): StepOutput {
    const { t, prevT } = this.timestepPair(stepIndex);
    if (stepIndex !== this.nextIndex)
      throw new Mask2DiTError(
        'STEPS',
        `dpm: steps must be taken in order (expected step ${this.nextIndex}, got ${stepIndex}); call setTimesteps to restart`,
      );
    if (options.noise === undefined)
      throw new Mask2DiTError('STEPS', 'dpm: this sampler adds noise at every step; pass options.noise');
    const acT = this.alphaAt(t);
    const acPrev = this.alphaAt(prevT);
    const lamb = lambda(acT);
    const h = lambda(acPrev) - lamb;
    const mult1 = Math.sqrt((1 - acPrev) / (1 - acT)) * Math.exp(-h);
    const mult2 = Math.expm1(-2 * h) * Math.sqrt(acPrev);
    const sigmaNoise = Math.sqrt(1 - acPrev) * Math.sqrt(1 - Math.exp(-2 * h));
    const firstOrder = this.oldX0 === undefined || prevT < 0;

    const noise = options.noise(sample.shape, stepIndex, firstOrder ? 0 : 1);
    const out = tf.tidy(() => {
      const x0 = this.predictOriginal(modelOutput, sample, acT);
      let denoised = x0;
      if (!firstOrder) {
        const tBack = this.schedule[stepIndex - 1]!;
        const r = (lamb - lambda(this.alphaAt(tBack))) / h;
        const mult3 = 1 + 1 / (2 * r);
        const mult4 = 1 / (2 * r);
        denoised = tf.sub(tf.mul(x0, mult3), tf.mul(this.oldX0!, mult4));
      }
      const prev = tf.add(tf.sub(tf.mul(sample, mult1), tf.mul(denoised, mult2)), tf.mul(noise, sigmaNoise));
      return { prevSample: prev, predOriginalSample: x0 };
    });
    noise.dispose();
    this.oldX0?.dispose();
    this.oldX0 = tf.keep(tf.clone(out.predOriginalSample));
    this.nextIndex = stepIndex + 1;
    return out;
  }
}
