/**
 * Finite-difference gradient check of every parameter tensor of a layer: for a random direction u
 * of each parameter p, the analytic directional derivative ⟨∂L/∂p, u⟩ from tfjs autograd must match
 * the central difference (L(p + εu) − L(p − εu)) / 2ε.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { M2Layer } from '../../src/layers/layer.js';

export interface GradCheckRow {
  name: string;
  analytic: number;
  numeric: number;
  relErr: number;
}

/** @param loss builds the scalar loss from the layer's current variables (called many times). */
export function gradCheck(layer: M2Layer, loss: () => tf.Scalar, opts: { eps?: number; seed?: number; only?: (name: string) => boolean } = {}): GradCheckRow[] {
  const eps = opts.eps ?? 1e-2;
  layer.setTrainable(true);
  const vars = [...layer.variables()].filter(([n]) => opts.only?.(n) ?? true);
  const { grads, value } = tf.variableGrads(loss, vars.map(([, v]) => v));
  value.dispose();
  const rows: GradCheckRow[] = [];
  vars.forEach(([name, v], i) => {
    const u = tf.randomNormal(v.shape, 0, 1, 'float32', (opts.seed ?? 1) * 7919 + i);
    const g = grads[v.name];
    const analytic = g === undefined ? 0 : tf.tidy(() => tf.sum(tf.mul(g, u)).dataSync()[0]!);
    const original = tf.clone(v);
    const at = (s: number) => {
      v.assign(tf.tidy(() => tf.add(original, tf.mul(u, s))));
      return tf.tidy(() => loss().dataSync()[0]!);
    };
    const numeric = (at(eps) - at(-eps)) / (2 * eps);
    v.assign(original);
    tf.dispose([u, original]);
    rows.push({ name, analytic, numeric, relErr: Math.abs(analytic - numeric) / Math.max(1e-3, Math.abs(numeric)) });
  });
  tf.dispose(Object.values(grads));
  layer.setTrainable(false);
  return rows;
}
