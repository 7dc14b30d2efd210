/**
 * The rectified-flow (flow-matching) training objective for the Mask²DiT transformer, with both masks.
 *
 *   σ ~ U(0, 1) per clip (or logit-normal: σ = sigmoid(m + n), n ~ N(0, 1), as SD3; with location m = 0 it
 *   spends the steps on mid σ, where samplers go wrong, instead of σ → 0, where x_σ ≈ x₀ is easy; m > 0
 *   moves them towards high σ, where a sample's layout and motion are decided),
 *   ε ~ N(0, I),  x_σ = (1 − σ)·x₀ + σ·ε,  target velocity v* = ε − x₀
 *   loss = mean ‖f(x_σ, text, t = 1000σ) − v*‖²      (or Σ w·(f − v*)² / Σ w with per-latent-pixel weights w)
 *        (+ λ · temporalDifferenceError(x̂₀, x₀) with `temporalWeight` λ: the error of the motion alone)
 *
 * or, with prediction `sample`, the target x₀ instead of v* (the sampler then takes v = (x_σ − f)/σ).
 *
 * which is what the flow-matching Euler sampler integrates (x ← x + (σ_next − σ)·f, t = 1000σ).
 * - Joint objective (mask 1): all scenes share σ and are denoised together under the symmetric mask.
 * - Weights (optional, `[B, F, 1, h, w]`, broadcast over channels) let the character's few latent pixels
 *   count more than the background that otherwise dominates the mean.
 * - Segment-level conditional objective (mask 2), with probability `pConditional` per batch: a target
 *   scene c ∈ [1, S) is noised, the earlier and later scenes stay clean (x₀) and are modulated with the
 *   conditioning timestep 0 (`clipIdx = c`, `timestepCond = 0`), and the loss covers scene c's frames only.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Mask2DiTTransformer } from '../model/transformer.js';
import { flowX0 } from '../sampler/flowMatchEuler.js';
import { sceneFrameRange } from '../scene/layout.js';
import type { StepRng } from './rng.js';

export interface FlowBatch {
  /** Clean latents `[B, F, C, H, W]`, scenes' frames concatenated. */
  latents: tf.Tensor;
  /** Prompt embeddings `[B, S·T, textDim]`. */
  text: tf.Tensor;
  scenes: number;
  /** Optional loss weights per latent pixel `[B, F, 1, h, w]`. */
  weights?: tf.Tensor;
  /** What the model predicts: the velocity ε − x₀ (default) or the clean latents x₀ (`sample`). */
  prediction?: 'flow_prediction' | 'sample';
  /** λ of the motion term `λ · temporalDifferenceError(x̂₀, x₀)` added to the loss (default 0: none). */
  temporalWeight?: number;
}

/** mean((a − b)²), or Σ w·(a − b)² / (Σ w · C) with weights `w` `[B, F, 1, h, w]` over `[B, F, C, h, w]`. */
export function meanSquaredError(a: tf.Tensor, b: tf.Tensor, w: tf.Tensor | undefined): tf.Scalar {
  const se = tf.square(tf.sub(a, b));
  if (w === undefined) return tf.mean(se) as tf.Scalar;
  return tf.div(tf.sum(tf.mul(se, w)), tf.mul(tf.sum(w), a.shape[2]!)) as tf.Scalar;
}

/**
 * The error of the predicted motion alone: mean over consecutive latent frames within each scene of
 * ((x̂₀[f+1] − x̂₀[f]) − (x₀[f+1] − x₀[f]))². Whatever is the same in every frame of a scene (the
 * background, a static smear) cancels, so this counts only how the prediction changes over time. Pairs
 * across a cut are left out. `pred`, `target`: `[B, F, C, h, w]` with F = scenes · f.
 */
export function temporalDifferenceError(pred: tf.Tensor, target: tf.Tensor, scenes: number): tf.Scalar {
  return tf.tidy(() => {
    const [B, F, C, h, w] = pred.shape as [number, number, number, number, number];
    const f = F / scenes;
    if (!Number.isInteger(f)) throw new Error(`${F} latent frames do not split into ${scenes} scenes`);
    if (f < 2) return tf.scalar(0);
    const steps = (x: tf.Tensor) => {
      const s = tf.reshape(x, [B * scenes, f, C * h * w]); // [B·S, f, C·h·w]: a scene's frames are contiguous
      return tf.sub(tf.slice(s, [0, 1, 0], [-1, f - 1, -1]), tf.slice(s, [0, 0, 0], [-1, f - 1, -1])); // [B·S, f − 1, C·h·w]
    };
    return tf.mean(tf.square(tf.sub(steps(pred), steps(target)))) as tf.Scalar;
  });
}

/** The frame loss plus, with `temporalWeight` λ > 0, λ times the motion term on x̂₀ (x − σ·v for a velocity model). */
function predictionLoss(
  pred: tf.Tensor,
  target: tf.Tensor,
  weights: tf.Tensor | undefined,
  b: { prediction?: FlowBatch['prediction']; temporalWeight?: number },
  x0: { noisy: tf.Tensor; clean: tf.Tensor; sigma: tf.Tensor; scenes: number },
): tf.Scalar {
  const frames = meanSquaredError(pred, target, weights);
  const lambda = b.temporalWeight ?? 0;
  if (lambda === 0) return frames;
  const x0Hat = flowX0(pred, x0.noisy, x0.sigma, b.prediction ?? 'flow_prediction'); // [B, F, C, h, w]
  return tf.add(frames, tf.mul(lambda, temporalDifferenceError(x0Hat, x0.clean, x0.scenes))) as tf.Scalar;
}

export interface FlowDraw {
  sigma: number[];
  /** Target scene when the conditional objective was drawn. */
  target?: number;
}

export type SigmaSampling = 'uniform' | 'logit-normal';

/** σ per clip: uniform, or the sigmoid of `location` + a standard normal from the step's Gaussian stream. */
function drawSigmas(rng: StepRng, batch: number, sampling: SigmaSampling, location: number): number[] {
  if (sampling === 'uniform') return Array.from(rng.uniforms(batch));
  return Array.from(rng.gaussians(batch), (n) => 1 / (1 + Math.exp(-(location + n))));
}

/** Draw σ per clip, the objective and ε for one step (deterministic from the step's rng). */
export function drawFlow(
  rng: StepRng,
  batch: number,
  scenes: number,
  pConditional: number,
  sampling: SigmaSampling = 'uniform',
  location = 0,
): FlowDraw {
  const sigma = drawSigmas(rng, batch, sampling, location).map((u) => Math.min(0.999, Math.max(0.001, u)));
  const cond = scenes > 1 && rng.uniforms(1)[0]! < pConditional;
  return cond ? { sigma, target: rng.int(1, scenes) } : { sigma };
}

/** The loss (a scalar) for one batch; call inside `tf.variableGrads`. */
export function flowMatchingLoss(
  model: Mask2DiTTransformer,
  b: FlowBatch,
  draw: FlowDraw,
  noise: tf.Tensor,
): tf.Scalar {
  return tf.tidy(() => {
    const [B, F] = b.latents.shape as [number, number];
    const sigma = tf.reshape(tf.tensor1d(draw.sigma), [B, 1, 1, 1, 1]); // [B, 1, 1, 1, 1]
    let noisy = tf.add(tf.mul(tf.sub(1, sigma), b.latents), tf.mul(sigma, noise)); // [B, F, C, H, W]
    const target = b.prediction === 'sample' ? b.latents : tf.sub(noise, b.latents); // x₀ or v* = ε − x₀: [B, F, C, H, W]
    const timestep = draw.sigma.map((s) => 1000 * s);
    if (draw.target === undefined) {
      const pred = model.forward({ hiddenStates: noisy, encoderHiddenStates: b.text, timestep });
      return predictionLoss(pred, target, b.weights, b, { noisy, clean: b.latents, sigma, scenes: b.scenes });
    }
    // conditional: only the target's frames are noised and scored
    const { start: s0, end: s1 } = sceneFrameRange(F, b.scenes, draw.target);
    const perScene = s1 - s0;
    const frames = (x: tf.Tensor, a: number, n: number) => tf.slice(x, [0, a, 0, 0, 0], [-1, n, -1, -1, -1]);
    noisy = tf.concat(
      [frames(b.latents, 0, s0), frames(noisy, s0, perScene), frames(b.latents, s1, F - s1)].filter(
        (t) => t.shape[1]! > 0,
      ),
      1,
    );
    const pred = model.forward({
      hiddenStates: noisy,
      encoderHiddenStates: b.text,
      timestep,
      clipIdx: draw.target,
      timestepCond: 0,
    });
    const w = b.weights !== undefined ? frames(b.weights, s0, perScene) : undefined;
    const scene = (x: tf.Tensor) => frames(x, s0, perScene); // [B, f, C, h, w]
    return predictionLoss(scene(pred), scene(target), w, b, {
      noisy: scene(noisy),
      clean: scene(b.latents),
      sigma,
      scenes: 1,
    });
  });
}
