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

/**
 * `x` gathered along `axis` at `indices` (identity indices are skipped). The gradient is a one-hot
 * matMul (tfjs-backend-wasm has no `UnsortedSegmentSum`, the kernel of tf.gather's gradient):
 * dx = Sᵀ·dy with S `[out, in]`, S[o, indices[o]] = 1, applied with `axis` moved to the front.
 */
export function gatherAxis(x: tf.Tensor, axis: number, indices: number[]): tf.Tensor {
  const n = x.shape[axis]!;
  if (indices.length === n && indices.every((v, i) => v === i)) return tf.clone(x);
  // the index tensor lives outside the custom-gradient scope (tfjs counts tensors made inside as leaked)
  const idx = tf.tensor1d(indices, 'int32');
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    return {
      value: tf.gather(xi, idx, axis),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
        const g = dy as tf.Tensor;
        const perm = [axis, ...g.shape.map((_, i) => i).filter((i) => i !== axis)];
        const front = tf.transpose(g, perm); // [out, ...rest]
        const rest = front.shape.slice(1);
        const selT = new Float32Array(n * indices.length); // Sᵀ [in, out], built in JS (wasm's float oneHot is unreliable)
        indices.forEach((src, o) => (selT[src * indices.length + o] = 1));
        const dx = tf.matMul(tf.tensor2d(selT, [n, indices.length]), tf.reshape(front, [indices.length, -1])); // [in, rest]
        const inv = perm.map((_, i) => perm.indexOf(i));
        return [tf.transpose(tf.reshape(dx, [n, ...rest]), inv)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  try {
    return f(x);
  } finally {
    idx.dispose();
  }
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
