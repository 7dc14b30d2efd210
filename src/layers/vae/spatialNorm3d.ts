/**
 * The decoder's spatially conditioned norm (diffusers `CogVideoXSpatialNorm3D`, L147 at 58eb52c;
 * https://arxiv.org/abs/2209.09002): `GroupNorm(f; eps 1e-6) · conv_y(zq) + conv_b(zq)`, `zq` the
 * latent of the current decoder call nearest-resized to f's `(T, H, W)`. When f has an odd number of
 * frames > 1, frame 0 and the rest are resized separately (the causal first frame).
 *
 * conv_y/conv_b are 1×1×1 convolutions, and a nearest resize only copies pixels, so they are applied
 * at latent resolution first and resized after: the same numbers, computed on `H·W/64` the pixels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../../errors.js';
import { M2Layer } from '../layer.js';
import type { WeightSource } from '../weightSource.js';
import { CausalConv3d } from './causalConv3d.js';
import { GroupNorm } from './groupNorm.js';
import { gatherAxis, nearestIndices, resizeNearest } from './nearest.js';

/** Source frame of each of `outT` frames: the reference's first-frame split for odd `outT > 1`. */
export function zqFrameIndices(inT: number, outT: number): number[] {
  if (outT > 1 && outT % 2 === 1) {
    if (inT < 2)
      throw new ShapeError('zq', `cannot split ${inT} latent frame(s) into first and rest for ${outT} frames`);
    return [0, ...nearestIndices(inT - 1, outT - 1).map((i) => i + 1)];
  }
  return nearestIndices(inT, outT);
}

/** `zq` `[B, t, h, w, C]` resized to `[B, T, H, W, C]` as the reference does it. */
export function resizeZq(zq: tf.Tensor, [T, H, W]: [number, number, number]): tf.Tensor {
  return tf.tidy(() => {
    const frames = gatherAxis(zq, 1, zqFrameIndices(zq.shape[1]!, T)); // [B, T, h, w, C]
    return resizeNearest(frames, [T, H, W]); // [B, T, H, W, C]
  });
}

export interface SpatialNorm3DConfig {
  /** Channels of f (normalised, and the output). */
  fChannels: number;
  /** Channels of the conditioning latent zq. */
  zqChannels: number;
  groups: number;
}

export class SpatialNorm3D extends M2Layer {
  static readonly className = 'M2SpatialNorm3D';
  readonly normLayer: GroupNorm;
  readonly convY: CausalConv3d;
  readonly convB: CausalConv3d;

  constructor(
    readonly config: SpatialNorm3DConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'spatial_norm');
    const { fChannels: f, zqChannels: z, groups } = config;
    this.normLayer = this.child('norm_layer', new GroupNorm({ channels: f, groups, eps: 1e-6 }, ws.pp('norm_layer')));
    this.convY = this.child(
      'conv_y',
      new CausalConv3d({ inChannels: z, outChannels: f, kernelSize: 1 }, ws.pp('conv_y')),
    );
    this.convB = this.child(
      'conv_b',
      new CausalConv3d({ inChannels: z, outChannels: f, kernelSize: 1 }, ws.pp('conv_b')),
    );
  }

  /**
   * @param f  `[B, T, H, W, C]`
   * @param zq `[B, t, h, w, Cz]` the decoder call's latent
   * @returns `[B, T, H, W, C]`
   */
  forward(f: tf.Tensor, zq: tf.Tensor): tf.Tensor {
    const [, T, H, W] = f.shape as [number, number, number, number, number];
    return tf.tidy(() => {
      const scale = resizeZq(this.convY.forward(zq), [T, H, W]); // [B, T, H, W, C]
      const shift = resizeZq(this.convB.forward(zq), [T, H, W]); // [B, T, H, W, C]
      return tf.add(tf.mul(this.normLayer.forward(f), scale), shift);
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [f, zq] = inputs as tf.Tensor[];
    return this.forward(f!, zq!);
  }
}
tf.serialization.registerClass(SpatialNorm3D, 'Mask2DiT');
