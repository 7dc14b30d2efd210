/**
 * AdamW (Loshchilov & Hutter; PyTorch's `torch.optim.AdamW` update), with its state as named tensors
 * so checkpoints can hold it:
 *
 *   p ← p − lr·λ·p                      (decoupled weight decay; only tensors with ≥ 2 dims)
 *   m ← β₁m + (1−β₁)g,   v ← β₂v + (1−β₂)g²
 *   p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export class AdamW {
  /** Steps taken (t in the bias corrections). */
  t = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    readonly params: Map<string, tf.Variable>,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One update with learning rate `lr`; `grads` by parameter name (missing names are skipped). */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.config;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (g === undefined) continue;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const decayed = p.rank >= 2 && weightDecay > 0 ? tf.mul(p, 1 - lr * weightDecay) : p;
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
      }
    });
  }

  /** The state as named tensors: `m.<param>`, `v.<param>` (views of the live variables). */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [n, t] of this.m) out.set(`m.${n}`, t);
    for (const [n, t] of this.v) out.set(`v.${n}`, t);
    return out;
  }

  /** Restore `state()` output (values are copied); every parameter's moments must be present with its shape. */
  loadState(state: Map<string, tf.Tensor>, t: number, source = 'checkpoint'): void {
    for (const [kind, store] of [
      ['m', this.m],
      ['v', this.v],
    ] as const) {
      for (const [name, variable] of store) {
        const s = state.get(`${kind}.${name}`);
        if (s === undefined)
          throw new Mask2DiTError('CHECKPOINT', `${source}: optimizer state ${kind}.${name} missing`);
        if (s.shape.join(',') !== variable.shape.join(','))
          throw new Mask2DiTError(
            'CHECKPOINT',
            `${source}: optimizer state ${kind}.${name} has shape [${s.shape}], expected [${variable.shape}]`,
          );
        variable.assign(s);
      }
    }
    this.t = t;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Scale gradients so their global L2 norm is at most `maxNorm` (in place in the map); returns the norm before clipping. */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const norm = tf.tidy(() =>
    Math.sqrt([...grads.values()].reduce((s, g) => s + (tf.sum(tf.square(g)).dataSync()[0] ?? 0), 0)),
  );
  if (Number.isFinite(maxNorm) && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const [n, g] of grads) {
      grads.set(n, tf.mul(g, scale));
      g.dispose();
    }
  }
  return norm;
}
