/**
 * Finite-difference gradient check of every parameter tensor of a layer: for a random direction u
 * of each parameter p, the analytic directional derivative a = ⟨∂L/∂p, u⟩ from tfjs autograd must
 * match the numeric one n, as numpy's allclose does:
 *
 *   |a − n| ≤ atol + rtol·|n|
 *
 * The numeric derivative is the Richardson-extrapolated central difference (the 4-point stencil)
 *   D(h) = (L(p + hu) − L(p − hu)) / 2h,   n = (4·D(h) − D(2h)) / 3,
 * whose truncation error is O(h⁴) where D(h)'s is O(h²): on the transformer fixtures D(1e-2) alone is
 * off by up to 1 % of the gradient (a relative tolerance that loose hides a gradient scaled by 0.99),
 * the 4-point value by at most 0.12 %.
 *
 * `rtol` covers that truncation error. `atol` must sit above the float32 noise of n and below the
 * gradients worth checking: a loss evaluated in float32 is reproducible only to σ_L (a few tens of
 * ulps of the summed terms), so n carries noise ≈ 1.34·σ_L/(√2·h) whatever the true gradient is.
 * Each caller measures that noise for its loss and step and states it next to its `atol` (see
 * test/train/gradients.test.ts). There is no relative floor: the former criterion,
 * |a − n| / max(1e-3, |n|) ≤ 2e-2, let any analytic value pass within 2e-5 of n on a small-gradient
 * parameter — a fully detached gradient (a = 0) on a parameter whose gradient is 1e-5 passed it.
 *
 * A row also fails when autograd reached no gradient to the parameter (none, or all zeros) while
 * the loss moves with it (n ≠ 0): a detached parameter, whatever the size of its gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { M2Layer } from '../../src/layers/layer.js';

export interface GradCheckRow {
  name: string;
  /** ⟨∂L/∂p, u⟩ from autograd. */
  analytic: number;
  /** The 4-point finite-difference estimate of the same. */
  numeric: number;
  /** |analytic − numeric|. */
  error: number;
  /** atol + rtol·|numeric|: what `error` may be. */
  tol: number;
  /** Autograd returned a gradient with a nonzero entry for this parameter. */
  reached: boolean;
  /** error ≤ tol, and the gradient reached the parameter (or the loss does not move with it at all). */
  ok: boolean;
}

export interface GradCheckOptions {
  /** Absolute tolerance: a few times the finite-difference noise of this loss at step `eps` (measure it). */
  atol: number;
  /** Relative tolerance for the truncation error left in the 4-point stencil (default 5e-3). */
  rtol?: number;
  /** The step h along u (default 1e-2); the stencil evaluates the loss at ±h and ±2h. */
  eps?: number;
  seed?: number;
  only?: (name: string) => boolean;
}

/** @param loss builds the scalar loss from the layer's current variables (called many times). */
export function gradCheck(layer: M2Layer, loss: () => tf.Scalar, opts: GradCheckOptions): GradCheckRow[] {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 5e-3;
  const { atol } = opts;
  layer.setTrainable(true);
  const vars = [...layer.variables()].filter(([n]) => opts.only?.(n) ?? true);
  const { grads, value } = tf.variableGrads(
    loss,
    vars.map(([, v]) => v),
  );
  value.dispose();
  const rows: GradCheckRow[] = [];
  vars.forEach(([name, v], i) => {
    const u = tf.randomNormal(v.shape, 0, 1, 'float32', (opts.seed ?? 1) * 7919 + i);
    const g = grads[v.name] ?? null; // null: variableGrads found no path from the parameter to the loss
    const analytic = g === null ? 0 : tf.tidy(() => tf.sum(tf.mul(g, u)).dataSync()[0]!);
    const reached = g !== null && tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) > 0;
    const original = tf.clone(v);
    const at = (s: number) => {
      v.assign(tf.tidy(() => tf.add(original, tf.mul(u, s))));
      return tf.tidy(() => loss().dataSync()[0]!);
    };
    const central = (h: number) => (at(h) - at(-h)) / (2 * h);
    const numeric = (4 * central(eps) - central(2 * eps)) / 3;
    v.assign(original);
    tf.dispose([u, original]);
    const error = Math.abs(analytic - numeric);
    const tol = atol + rtol * Math.abs(numeric);
    rows.push({ name, analytic, numeric, error, tol, reached, ok: error <= tol && (reached || numeric === 0) });
  });
  tf.dispose(Object.values(grads).filter((g): g is tf.Tensor => g != null));
  layer.setTrainable(false);
  return rows;
}

/** One line per failed row (empty when every row passed), for an error message or `toEqual([])`. */
export function gradMismatches(rows: GradCheckRow[]): string[] {
  return rows
    .filter((r) => !r.ok)
    .map(
      (r) =>
        `${r.name}: analytic ${r.analytic.toExponential(3)}, numeric ${r.numeric.toExponential(3)}: ` +
        (r.error > r.tol
          ? `|difference| ${r.error.toExponential(2)} > ${r.tol.toExponential(2)}`
          : 'within tolerance') +
        (r.reached ? '' : ', and no gradient reached it (detached)'),
    );
}

/**
 * tf.stopGradient, which tfjs lacks: the value of x, with a zero gradient. For tests that cut a
 * parameter's gradient on purpose.
 */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
