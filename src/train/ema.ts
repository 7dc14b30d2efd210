/** Exponential moving average of weights: `ema ← d·ema + (1−d)·p`, with d warmed up as min(decay, (1+t)/(10+t)). */
import * as tf from '@tensorflow/tfjs-core';

export class Ema {
  readonly shadow = new Map<string, tf.Variable>();

  constructor(
    readonly params: Map<string, tf.Variable>,
    readonly decay: number,
  ) {
    for (const [n, p] of params) this.shadow.set(n, tf.variable(tf.clone(p), false));
  }

  /** Decay used after `t` updates (small early, so the average does not remember the random init). */
  decayAt(t: number): number {
    return Math.min(this.decay, (1 + t) / (10 + t));
  }

  /** One averaging step; parameters in `fixed` (frozen: never updated) are left alone, so their average stays exactly them. */
  update(t: number, fixed: ReadonlySet<string> = new Set()): void {
    const d = this.decayAt(t);
    tf.tidy(() => {
      for (const [n, p] of this.params) {
        if (fixed.has(n)) continue;
        const s = this.shadow.get(n)!;
        s.assign(tf.add(tf.mul(s, d), tf.mul(p, 1 - d)));
      }
    });
  }

  dispose(): void {
    for (const v of this.shadow.values()) v.dispose();
    this.shadow.clear();
  }
}
