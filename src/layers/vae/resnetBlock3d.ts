/**
 * `CogVideoXResnetBlock3D` (diffusers autoencoder_kl_cogvideox.py): `norm1 → SiLU → conv1 → norm2 →
 * SiLU → conv2`, plus the input (through the 1×1×1 `conv_shortcut` when the channel count changes).
 * The encoder's norms are GroupNorms; the decoder's are SpatialNorm3D conditioned on the call's
 * latent `zq`. The VAE has no time embedding (`temb_channels = 0`) and no dropout at inference.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { M2Layer } from '../layer.js';
import { consume, silu } from '../math.js';
import type { WeightSource } from '../weightSource.js';
import { CausalConv3d, ConvParams, type ConvCache } from './causalConv3d.js';
import { GroupNorm } from './groupNorm.js';
import { SpatialNorm3D } from './spatialNorm3d.js';

export interface ResnetBlock3DConfig {
  inChannels: number;
  outChannels: number;
  groups: number;
  eps: number;
  /** Channels of the latent conditioning the decoder's SpatialNorm3D; undefined: plain GroupNorm (encoder). */
  spatialNormDim?: number;
}

export class ResnetBlock3D extends M2Layer {
  static readonly className = 'M2ResnetBlock3D';
  readonly norm1: GroupNorm | SpatialNorm3D;
  readonly conv1: CausalConv3d;
  readonly norm2: GroupNorm | SpatialNorm3D;
  readonly conv2: CausalConv3d;
  readonly convShortcut: ConvParams | undefined;

  constructor(
    readonly config: ResnetBlock3DConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'resnet');
    const { inChannels: i, outChannels: o, groups, eps, spatialNormDim: zc } = config;
    const norm = (ref: string, channels: number) =>
      zc === undefined
        ? new GroupNorm({ channels, groups, eps }, ws.pp(ref))
        : new SpatialNorm3D({ fChannels: channels, zqChannels: zc, groups }, ws.pp(ref));
    this.norm1 = this.child('norm1', norm('norm1', i));
    this.conv1 = this.child(
      'conv1',
      new CausalConv3d({ inChannels: i, outChannels: o, kernelSize: 3 }, ws.pp('conv1')),
    );
    this.norm2 = this.child('norm2', norm('norm2', o));
    this.conv2 = this.child(
      'conv2',
      new CausalConv3d({ inChannels: o, outChannels: o, kernelSize: 3 }, ws.pp('conv2')),
    );
    this.convShortcut =
      i !== o ? this.child('conv_shortcut', new ConvParams(ws.pp('conv_shortcut'), [o, i, 1, 1, 1])) : undefined;
  }

  /** SiLU(norm(x)) with the norm's conditioning. */
  private normAct(norm: GroupNorm | SpatialNorm3D, x: tf.Tensor, zq: tf.Tensor | undefined): tf.Tensor {
    return tf.tidy(() => silu(norm instanceof SpatialNorm3D ? norm.forward(x, zq!) : norm.forward(x)));
  }

  /**
   * @param x     `[B, T, H, W, Cin]` (not disposed)
   * @param zq    `[B, t, h, w, Cz]` the decoder call's latent (decoder only)
   * @param cache causal conv state, updated in place
   * @returns `[B, T, H, W, Cout]`
   */
  forward(x: tf.Tensor, zq: tf.Tensor | undefined, cache?: ConvCache): tf.Tensor {
    let h = this.normAct(this.norm1, x, zq); // [B, T, H, W, Cin]
    h = consume(h, (t) => this.conv1.forward(t, cache)); // [B, T, H, W, Cout]
    h = consume(h, (t) => this.normAct(this.norm2, t, zq));
    h = consume(h, (t) => this.conv2.forward(t, cache));
    const shortcut = this.convShortcut;
    return consume(h, (t) => tf.tidy(() => tf.add(t, shortcut === undefined ? x : shortcut.forward(x))));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, zq] = Array.isArray(inputs) ? inputs : [inputs];
    return this.forward(x!, zq);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
    return [...shape.slice(0, -1), this.config.outChannels];
  }
}
tf.serialization.registerClass(ResnetBlock3D, 'Mask2DiT');
