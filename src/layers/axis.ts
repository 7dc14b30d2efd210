/**
 * Slice, split and concatenate along one axis through the rank-3 view `[outer, n, inner]`.
 *
 * tfjs-backend-wasm slices rank ≤ 4 natively but sends a non-contiguous slice of rank 5+ to a
 * generic per-element path: on the VAE's `[B, T, H, W, C]` with B = 2 that made `Slice` and `SplitV`
 * (concat's gradient) 70% of a training step (15 s of 22 s). The reshapes are free; the gradients
 * (pad, split of a rank-3 concat) stay rank 3.
 */
import * as tf from '@tensorflow/tfjs-core';

/** `[outer, n, inner]` around `axis` (already non-negative). */
function view(shape: number[], axis: number): [number, number, number] {
  const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
  return [prod(shape.slice(0, axis)), shape[axis]!, prod(shape.slice(axis + 1))];
}

const positive = (rank: number, axis: number) => (axis < 0 ? rank + axis : axis);

/** `x[…, begin : begin + size, …]` along `axis`. */
export function sliceAxis(x: tf.Tensor, axis: number, begin: number, size: number): tf.Tensor {
  const ax = positive(x.rank, axis);
  const [outer, n, inner] = view(x.shape, ax);
  if (begin === 0 && size === n) return tf.clone(x);
  return tf.tidy(() => {
    const y = tf.slice(tf.reshape(x, [outer, n, inner]), [0, begin, 0], [outer, size, inner]); // [outer, size, inner]
    return tf.reshape(y, [...x.shape.slice(0, ax), size, ...x.shape.slice(ax + 1)]);
  });
}

/** `x` cut along `axis` into `parts` equal pieces. */
export function splitAxis(x: tf.Tensor, parts: number, axis: number): tf.Tensor[] {
  const ax = positive(x.rank, axis);
  const size = x.shape[ax]! / parts;
  return Array.from({ length: parts }, (_, i) => sliceAxis(x, ax, i * size, size));
}

/** `xs` joined along `axis` (all other dimensions equal). */
export function concatAxis(xs: tf.Tensor[], axis: number): tf.Tensor {
  const first = xs[0]!;
  if (xs.length === 1) return tf.clone(first);
  const ax = positive(first.rank, axis);
  const total = xs.reduce((s, x) => s + x.shape[ax]!, 0);
  return tf.tidy(() => {
    const views = xs.map((x) => tf.reshape(x, view(x.shape, ax))); // [outer, n_i, inner]
    return tf.reshape(tf.concat(views, 1), [...first.shape.slice(0, ax), total, ...first.shape.slice(ax + 1)]);
  });
}
