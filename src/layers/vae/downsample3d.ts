/**
 * `CogVideoXDownsample3D` (diffusers downsampling.py): for the first
 * `log2(temporal_compression_ratio)` encoder blocks (`compress_time`) average frame pairs
 * (`avg_pool1d(k=2)`; with an odd count frame 0 is kept as is), then zero-pad right and bottom by
 * one and apply a per-frame 3×3 conv with stride 2 (`conv`, `[Cout, Cin, 3, 3]`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { conv2d } from '../conv2d.js';
import { M2Layer } from '../layer.js';
import type { WeightSource } from '../weightSource.js';
import { ConvParams } from './causalConv3d.js';
import { concatAxis, sliceAxis } from '../axis.js';

/** Frame-pair average, frame 0 kept when the count is odd: `[B, T, H, W, C]` → `[B, ⌈T/2⌉, H, W, C]`. */
export function averageFramePairs(x: tf.Tensor): tf.Tensor {
  const [B, T, H, W, C] = x.shape as [number, number, number, number, number];
  const odd = T % 2;
  if (T - odd === 0) return tf.clone(x);
  return tf.tidy(() => {
    const P = (T - odd) / 2;
    const rest = tf.reshape(sliceAxis(x, 1, odd, T - odd), [B, P, 2, H * W * C]); // [B, P, 2, HWC]
    const a = sliceAxis(rest, 2, 0, 1); // [B, P, 1, HWC]
    const b = sliceAxis(rest, 2, 1, 1);
    const mean = tf.reshape(tf.mul(tf.add(a, b), 0.5), [B, P, H, W, C]); // [B, P, H, W, C]
    return odd === 1 ? concatAxis([sliceAxis(x, 1, 0, 1), mean], 1) : mean;
  });
}

export interface Downsample3DConfig {
  inChannels: number;
  outChannels: number;
  compressTime: boolean;
}

export class Downsample3D extends M2Layer {
  static readonly className = 'M2Downsample3D';
  readonly conv: ConvParams;

  constructor(
    readonly config: Downsample3DConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'downsample3d');
    this.conv = this.child('conv', new ConvParams(ws.pp('conv'), [config.outChannels, config.inChannels, 3, 3]));
  }

  /** `[B, T, H, W, C]` → `[B, T', ⌊(H-1)/2⌋+1, ⌊(W-1)/2⌋+1, Cout]` (`T' = ⌈T/2⌉` with compress_time). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const frames = this.config.compressTime ? averageFramePairs(x) : x; // [B, T', H, W, C]
      const [B, T, H, W, C] = frames.shape as [number, number, number, number, number];
      const padded = tf.pad(tf.reshape(frames, [B * T, H, W, C]), [
        [0, 0],
        [0, 1],
        [0, 1],
        [0, 0],
      ]); // [B·T', H+1, W+1, C]
      const y = conv2d(padded as tf.Tensor4D, this.conv.weight as tf.Tensor4D, 2, 'valid'); // [B·T', H2, W2, Cout]
      const [, H2, W2] = y.shape;
      return tf.reshape(tf.add(y, this.conv.bias), [B, T, H2, W2, this.config.outChannels]);
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(Downsample3D, 'Mask2DiT');
