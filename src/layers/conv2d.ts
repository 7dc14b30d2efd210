/**
 * 2-D convolution (NHWC, HWIO filter) whose gradient works on every backend.
 *
 * tfjs-backend-wasm has no `Conv2DBackpropFilter` kernel, so `tf.conv2d` cannot be trained there.
 * This wrapper keeps `tf.conv2d` for the forward pass and the input gradient
 * (`Conv2DBackpropInput`, which wasm has), and computes the filter gradient as a sum over kernel taps
 * of plain matMuls: dW[i, j] = patch(x, i, j)ᵀ · dy, where patch(x, i, j) `[N·Ho·Wo, Cin]` is the
 * (padded, strided) input seen by tap (i, j).
 */
import * as tf from '@tensorflow/tfjs-core';

type Pad = 'same' | 'valid';

/** Top/left padding and output size of one spatial axis, as tfjs computes them. */
function axisPlan(size: number, k: number, stride: number, pad: Pad): { before: number; after: number; out: number } {
  if (pad === 'valid') return { before: 0, after: 0, out: Math.floor((size - k) / stride) + 1 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  return { before: Math.floor(total / 2), after: total - Math.floor(total / 2), out };
}

/** ∂L/∂W `[kh, kw, Cin, Cout]` from the input `x` `[N, H, W, Cin]` and `dy` `[N, Ho, Wo, Cout]`. */
export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number], stride: number, pad: Pad): tf.Tensor4D {
  return tf.tidy(() => {
    const [N, H, W, C] = x.shape;
    const [kh, kw, , Co] = filterShape;
    const ph = axisPlan(H, kh, stride, pad);
    const pw = axisPlan(W, kw, stride, pad);
    const xp = tf.pad(x, [[0, 0], [ph.before, ph.after], [pw.before, pw.after], [0, 0]]); // [N, H', W', C]
    const dy2 = tf.reshape(dy, [N * ph.out * pw.out, Co]); // [M, Co]
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const end = [N, i + (ph.out - 1) * stride + 1, j + (pw.out - 1) * stride + 1, C];
        const patch = tf.stridedSlice(xp, [0, i, j, 0], end, [1, stride, stride, 1]); // [N, Ho, Wo, C]
        taps.push(tf.matMul(tf.reshape(patch, [N * ph.out * pw.out, C]), dy2, true, false)); // [C, Co]
      }
    }
    return tf.reshape(tf.stack(taps), [kh, kw, C, Co]) as tf.Tensor4D;
  });
}

/** `tf.conv2d(x, w, stride, pad)` with a backend-independent gradient. */
export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: Pad): tf.Tensor4D {
  const f = tf.customGrad(((xi: tf.Tensor, wi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xi, wi]);
    return {
      value: tf.conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, stride, pad),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const g = dy as tf.Tensor4D;
        return [tf.conv2dTranspose(g, ws, xs.shape, stride, pad), conv2dFilterGrad(xs, g, ws.shape, stride, pad)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, w) as tf.Tensor4D;
}
