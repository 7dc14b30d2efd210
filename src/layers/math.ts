/**
 * The math as free functions (like flux's math.py): no parameters, no state.
 * Every function is synchronous and meant to run inside the caller's `tf.tidy`.
 */
import * as tf from '@tensorflow/tfjs-core';

/** `tf.matMul(a, b)` with explicit-transpose gradients (see `matMul2d`). */
const matMul2dWithGrad = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [as, bs] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D;
      return [tf.matMul(g, tf.transpose(bs)), tf.matMul(tf.transpose(as), g)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;

/**
 * `a · b` for `a` `[m, k]` and `b` `[k, n]`, whose gradients are 2-D non-transposed matMuls as well:
 *
 *   ∂a = dy · bᵀ,   ∂b = aᵀ · dy     (explicit transposes, then the plain kernel)
 *
 * tfjs' own gradient calls `matMul(dy, b, false, true)` and `matMul(a, dy, true, false)`, which on
 * wasm take a generic loop 4–20× slower than an explicit transpose plus the fast kernel (a DiT
 * training step spent 74 % of its time there; benchmarks/RESULTS.md, "Speed work", round 2).
 * Forward: exactly `tf.matMul(a, b)`.
 */
export function matMul2d(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  // the custom-gradient wrapper costs ~25 µs a call; skip it when no gradient is being recorded
  return tf.engine().isTapeOn() ? matMul2dWithGrad(a, b) : tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
}

/** `f(x)`, then `x` disposed: one step of a chain that keeps only the live activation. */
export function consume(x: tf.Tensor, f: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
  const y = f(x);
  x.dispose();
  return y;
}

/**
 * GELU with the tanh approximation, `0.5·x·(1 + tanh(a))`, `a = √(2/π)(x + 0.044715x³)`, computed
 * through the exact identity `0.5(1 + tanh a) = σ(2a)`: tanh is a slow scalar loop on wasm.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  // one temporary at a time (7 of x's size were alive at once; the MLP's [rows, 4D] made this its peak)
  let a = tf.mul(x, x);
  a = consume(a, (t) => tf.mul(t, x)); // x³
  a = consume(a, (t) => tf.mul(t, 0.044715));
  a = consume(a, (t) => tf.add(t, x)); // x + 0.044715x³
  a = consume(a, (t) => tf.mul(t, 2 * Math.sqrt(2 / Math.PI))); // 2a
  a = consume(a, (t) => tf.sigmoid(t));
  return consume(a, (t) => tf.mul(x, t));
}

/** SiLU: `x·σ(x)`. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * LayerNorm over the last axis without affine parameters (eps inside the square root, biased variance).
 * The centred copy is freed once scaled: one temporary of x's size at a time.
 */
export function layerNormPlain(x: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const centred = tf.sub(x, mean);
  const inv = tf.tidy(() => tf.rsqrt(tf.add(variance, eps))); // [..., 1]
  tf.dispose([mean, variance]);
  const y = tf.mul(centred, inv);
  tf.dispose([centred, inv]);
  return y;
}

/**
 * Rotary embedding on interleaved pairs (diffusers `apply_rotary_emb`, `use_real_unbind_dim=-1`):
 * `out[2k] = x[2k]·cos − x[2k+1]·sin`, `out[2k+1] = x[2k+1]·cos + x[2k]·sin`.
 * @param x   `[..., L, d]`
 * @param cos `[L, d]` (each frequency repeated twice: `[c0, c0, c1, c1, …]`)
 * @param sin `[L, d]`
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const d = shape[shape.length - 1]!;
  const rotated = tf.tidy(() => tf.reshape(matMul2d(tf.reshape(x, [-1, d]), pairRotation(d)), shape)); // [..., L, d]: (-x1, x0, -x3, x2, …)
  const rotSin = consume(rotated, (r) => tf.mul(r, sin));
  return consume(rotSin, (r) => tf.tidy(() => tf.add(tf.mul(x, cos), r)));
}

/** The values of `pairRotation(d)` by d (plain arrays: a cached tensor would belong to one backend). */
const pairRotations = new Map<number, Float32Array>();

/**
 * `R` `[d, d]` with `x·R = (−x1, x0, −x3, x2, …)`: R[2k+1, 2k] = −1, R[2k, 2k+1] = 1. One 2-D matMul
 * (exact: each output is ±one input plus zeros) instead of splitting the pairs, which on wasm is a
 * stride-2 slice of every element (5 ms per call at 196k elements, 10× the matMul).
 */
function pairRotation(d: number): tf.Tensor2D {
  let r = pairRotations.get(d);
  if (r === undefined) {
    r = new Float32Array(d * d);
    for (let k = 0; k < d / 2; k++) {
      r[(2 * k + 1) * d + 2 * k] = -1;
      r[2 * k * d + 2 * k + 1] = 1;
    }
    pairRotations.set(d, r);
  }
  return tf.tensor2d(r, [d, d]);
}
