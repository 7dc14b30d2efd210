/**
 * `CogVideoXUpsample3D` (Mask2DiT videox_fun/models/cogvideox_vae.py; diffusers upsampling.py):
 * nearest ×2 in H and W — and in time for the first `log2(temporal_compression_ratio)` decoder
 * blocks (`compress_time`) — then a per-frame 3×3 conv `conv` (`[Cout, Cin, 3, 3]`).
 *
 * How time is doubled depends on the frame batching (`TimeUpsampling`):
 * - `'none'`:   space only (Mask2DiT's first decoder call, latent frame 0 alone);
 * - `'double'`: every frame twice (Mask2DiT's later calls, whatever their length);
 * - `'auto'`:   the newer diffusers rule, per input: 1 frame → space only; an odd count → frame 0
 *               once, the rest twice; an even count → every frame twice.
 */
import * as tf from '@tensorflow/tfjs-core';
import { conv2d } from '../conv2d.js';
import * as tfl from '@tensorflow/tfjs-layers';
import { M2Layer } from '../layer.js';
import type { WeightSource } from '../weightSource.js';
import { ConvParams } from './causalConv3d.js';
import { gatherAxis, upsampleSpace2x } from './nearest.js';

export type TimeUpsampling = 'none' | 'double' | 'auto';

/** Source frame of each output frame when upsampling `T` frames in time under `mode`. */
export function timeUpsampleIndices(T: number, mode: TimeUpsampling): number[] {
  const double = (n: number, offset: number) => Array.from({ length: 2 * n }, (_, i) => offset + (i >> 1));
  if (mode === 'none' || (mode === 'auto' && T === 1)) return Array.from({ length: T }, (_, i) => i);
  if (mode === 'auto' && T % 2 === 1) return [0, ...double(T - 1, 1)];
  return double(T, 0);
}

export interface Upsample3DConfig {
  inChannels: number;
  outChannels: number;
  compressTime: boolean;
}

export class Upsample3D extends M2Layer {
  static readonly className = 'M2Upsample3D';
  readonly conv: ConvParams;

  constructor(
    readonly config: Upsample3DConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'upsample3d');
    this.conv = this.child('conv', new ConvParams(ws.pp('conv'), [config.outChannels, config.inChannels, 3, 3]));
  }

  /** `[B, T, H, W, C]` → `[B, T', 2H, 2W, Cout]`, `T'` per `time` (ignored unless compress_time). */
  forward(x: tf.Tensor, time: TimeUpsampling = 'none'): tf.Tensor {
    return tf.tidy(() => {
      const frames = this.config.compressTime ? gatherAxis(x, 1, timeUpsampleIndices(x.shape[1]!, time)) : x; // [B, T', H, W, C]
      const up = upsampleSpace2x(frames); // [B, T', 2H, 2W, C]
      const [B, T, H, W, C] = up.shape as [number, number, number, number, number];
      const y = conv2d(tf.reshape(up, [B * T, H, W, C]) as tf.Tensor4D, this.conv.weight as tf.Tensor4D, 1, 'same'); // [B·T', 2H, 2W, Cout]
      return tf.reshape(tf.add(y, this.conv.bias), [B, T, H, W, this.config.outChannels]);
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const [B, T, H, W] = (Array.isArray(s[0]) ? s[0] : s) as (number | null)[];
    const up = (d: number | null | undefined) => (d == null ? null : 2 * d);
    return [B ?? null, this.config.compressTime ? null : (T ?? null), up(H), up(W), this.config.outChannels];
  }
}
tf.serialization.registerClass(Upsample3D, 'Mask2DiT');
