/**
 * Nearest-neighbour resampling as PyTorch's `F.interpolate(mode='nearest')` picks source indices
 * (aten/src/ATen/native/UpSample.h `nearest_idx`): same size → identity; twice the size → `i >> 1`;
 * otherwise `min(floor(i · float(in / out)), in - 1)` in float32. Written as gathers, so every
 * backend copies exactly the same elements.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Source index of each of `outSize` outputs when resizing `inSize` → `outSize`. */
export function nearestIndices(inSize: number, outSize: number): number[] {
  if (outSize === inSize) return Array.from({ length: outSize }, (_, i) => i);
  if (outSize === 2 * inSize) return Array.from({ length: outSize }, (_, i) => i >> 1);
  const scale = Math.fround(inSize / outSize);
  return Array.from({ length: outSize }, (_, i) => Math.min(Math.floor(Math.fround(i * scale)), inSize - 1));
}

/** `x` gathered along `axis` at `indices` (identity indices are skipped). */
export function gatherAxis(x: tf.Tensor, axis: number, indices: number[]): tf.Tensor {
  const n = x.shape[axis]!;
  if (indices.length === n && indices.every((v, i) => v === i)) return tf.clone(x);
  return tf.tidy(() => tf.gather(x, tf.tensor1d(indices, 'int32'), axis));
}

/** Nearest resize of `[B, T, H, W, C]` to `[B, T', H', W', C]` (one gather per axis that changes). */
export function resizeNearest(x: tf.Tensor, [T, H, W]: [number, number, number]): tf.Tensor {
  const [, t, h, w] = x.shape as [number, number, number, number, number];
  return tf.tidy(() => {
    let y = gatherAxis(x, 1, nearestIndices(t, T));
    y = gatherAxis(y, 2, nearestIndices(h, H));
    return gatherAxis(y, 3, nearestIndices(w, W));
  });
}

/** `x` ×2 in H and W (`F.interpolate(scale_factor=2)` on frames). `[B, T, H, W, C]` → `[B, T, 2H, 2W, C]`. */
export function upsampleSpace2x(x: tf.Tensor): tf.Tensor {
  const [, , h, w] = x.shape as [number, number, number, number, number];
  return tf.tidy(() => gatherAxis(gatherAxis(x, 2, nearestIndices(h, 2 * h)), 3, nearestIndices(w, 2 * w)));
}
