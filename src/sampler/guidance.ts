/**
 * Classifier-free guidance. The model runs on the unconditional (negative-prompt) and conditional
 * inputs; the guided prediction is `v = v_u + g·(v_c − v_u)` (float32; g rounded to float32 as PyTorch
 * does with a Python float). Guidance is on when the base scale is > 1, as in the reference.
 *
 * CogVideoX dynamic CFG varies g over the run: `g_t = 1 + g·(1 − cos(π·x⁵))/2`.
 * - `'reference'`: x = (N − t)/N with t the timestep VALUE (e.g. 999) and N the number of steps, as
 *   the CogVideoX and Mask²DiT pipelines compute it. x is then a large negative number, so g_t jumps
 *   pseudo-randomly within [1, 1 + g] instead of ramping (e.g. N = 3: g_t ≈ 1.00, 7.00, 3.75 for
 *   t = 999, 666, 332 at g = 6).
 * - `'normalized'`: x = (T − t)/T with T = num_train_timesteps, the intended ramp from 1 (t ≈ T) to
 *   1 + g (t = 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';

export type DynamicCfg = 'off' | 'reference' | 'normalized';

export interface GuidanceSchedule {
  /** Base guidance scale g (no guidance when ≤ 1). */
  scale: number;
  dynamic: DynamicCfg;
  /** Number of inference steps N. */
  steps: number;
  /** num_train_timesteps T (for 'normalized'). */
  numTrainTimesteps: number;
}

/** Whether the unconditional branch runs at all (`g > 1`). */
export function usesGuidance(g: GuidanceSchedule): boolean {
  return g.scale > 1;
}

/** The guidance scale applied at timestep value t (float64). */
export function guidanceScaleAt(g: GuidanceSchedule, t: number): number {
  if (g.dynamic === 'off') return g.scale;
  const x = g.dynamic === 'reference' ? (g.steps - t) / g.steps : (g.numTrainTimesteps - t) / g.numTrainTimesteps;
  return 1 + (g.scale * (1 - Math.cos(Math.PI * x ** 5))) / 2;
}

/** `v_u + g·(v_c − v_u)` for unconditional and conditional predictions of the same shape. */
export function combineGuidance(uncond: tf.Tensor, cond: tf.Tensor, scale: number): tf.Tensor {
  if (uncond.shape.join() !== cond.shape.join())
    throw new ShapeError(
      'guidance',
      `unconditional [${uncond.shape}] and conditional [${cond.shape}] predictions differ in shape`,
    );
  return tf.tidy(() => tf.add(uncond, tf.mul(tf.sub(cond, uncond), scale)));
}

/** Guidance on a batched prediction `[2B, …]`: rows `[0, B)` unconditional, `[B, 2B)` conditional. */
export function combineBatchedGuidance(out: tf.Tensor, scale: number): tf.Tensor {
  const B2 = out.shape[0]!;
  if (B2 % 2 !== 0)
    throw new ShapeError('guidance', `batched prediction needs an even batch (uncond rows, then cond rows), got ${B2}`);
  return tf.tidy(() => {
    const [u, c] = tf.split(out, 2, 0);
    return combineGuidance(u!, c!, scale);
  });
}
