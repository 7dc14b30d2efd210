/**
 * The VAE's resnet stacks (diffusers `CogVideoXDownBlock3D`, `CogVideoXMidBlock3D`,
 * `CogVideoXUpBlock3D`): `resnets.{i}` in sequence, then an optional `downsamplers.0` /
 * `upsamplers.0`. Only the live activation is kept between steps.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Container, M2Layer } from '../layer.js';
import type { WeightSource } from '../weightSource.js';
import type { ConvCache } from './causalConv3d.js';
import { Downsample3D } from './downsample3d.js';
import { ResnetBlock3D } from './resnetBlock3d.js';
import { consume } from '../math.js';
import { Upsample3D, type TimeUpsampling } from './upsample3d.js';

export interface ResnetStackConfig {
  inChannels: number;
  outChannels: number;
  numLayers: number;
  groups: number;
  eps: number;
  /** Latent channels for the decoder's spatial norms; undefined in the encoder. */
  spatialNormDim?: number;
}

/** A stack of resnets plus an optional resampler; the shared body of the three block kinds. */
abstract class ResnetStack extends M2Layer {
  readonly resnets: ResnetBlock3D[];

  protected constructor(
    readonly config: ResnetStackConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'block');
    const list = this.child('resnets', new Container(ws.pp('resnets').prefix));
    const { inChannels, outChannels, numLayers, groups, eps, spatialNormDim } = config;
    this.resnets = Array.from({ length: numLayers }, (_, i) =>
      list.add(
        String(i),
        new ResnetBlock3D(
          {
            inChannels: i === 0 ? inChannels : outChannels,
            outChannels,
            groups,
            eps,
            ...(spatialNormDim !== undefined ? { spatialNormDim } : {}),
          },
          ws.pp('resnets').pp(i),
        ),
      ),
    );
  }

  /** The resnets in order: `x` `[B, T, H, W, Cin]` (not disposed) → `[B, T, H, W, Cout]`. */
  protected runResnets(x: tf.Tensor, zq: tf.Tensor | undefined, cache?: ConvCache): tf.Tensor {
    let h = tf.clone(x);
    for (const r of this.resnets) h = consume(h, (t) => r.forward(t, zq, cache));
    return h;
  }
}

export class DownBlock3D extends ResnetStack {
  static readonly className = 'M2DownBlock3D';
  readonly downsampler: Downsample3D | undefined;

  constructor(config: ResnetStackConfig & { addDownsample: boolean; compressTime: boolean }, ws: WeightSource) {
    super(config, ws);
    const c = config.outChannels;
    this.downsampler = config.addDownsample
      ? this.child('downsamplers', new Container(ws.pp('downsamplers').prefix)).add(
          '0',
          new Downsample3D(
            { inChannels: c, outChannels: c, compressTime: config.compressTime },
            ws.pp('downsamplers').pp(0),
          ),
        )
      : undefined;
  }

  /** `[B, T, H, W, Cin]` → `[B, T', H', W', Cout]` */
  forward(x: tf.Tensor, cache?: ConvCache): tf.Tensor {
    const h = this.runResnets(x, undefined, cache);
    return this.downsampler === undefined ? h : consume(h, (t) => this.downsampler!.forward(t));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(DownBlock3D, 'Mask2DiT');

export class MidBlock3D extends ResnetStack {
  static readonly className = 'M2MidBlock3D';

  constructor(config: ResnetStackConfig, ws: WeightSource) {
    super(config, ws);
  }

  /** `[B, T, H, W, C]` → same shape; `zq` conditions the decoder's norms. */
  forward(x: tf.Tensor, zq: tf.Tensor | undefined, cache?: ConvCache): tf.Tensor {
    return this.runResnets(x, zq, cache);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, zq] = Array.isArray(inputs) ? inputs : [inputs];
    return this.forward(x!, zq);
  }
}
tf.serialization.registerClass(MidBlock3D, 'Mask2DiT');

export class UpBlock3D extends ResnetStack {
  static readonly className = 'M2UpBlock3D';
  readonly upsampler: Upsample3D | undefined;

  constructor(config: ResnetStackConfig & { addUpsample: boolean; compressTime: boolean }, ws: WeightSource) {
    super(config, ws);
    const c = config.outChannels;
    this.upsampler = config.addUpsample
      ? this.child('upsamplers', new Container(ws.pp('upsamplers').prefix)).add(
          '0',
          new Upsample3D(
            { inChannels: c, outChannels: c, compressTime: config.compressTime },
            ws.pp('upsamplers').pp(0),
          ),
        )
      : undefined;
  }

  /** `[B, T, H, W, Cin]` → `[B, T', 2H, 2W, Cout]` (or same size without an upsampler). */
  forward(x: tf.Tensor, zq: tf.Tensor, time: TimeUpsampling, cache?: ConvCache): tf.Tensor {
    const h = this.runResnets(x, zq, cache);
    return this.upsampler === undefined ? h : consume(h, (t) => this.upsampler!.forward(t, time));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, zq] = inputs as tf.Tensor[];
    return this.forward(x!, zq!, 'auto');
  }
}
tf.serialization.registerClass(UpBlock3D, 'Mask2DiT');
