/**
 * `CogVideoXDecoder3D` (diffusers autoencoder_kl_cogvideox.py L796 at 58eb52c): `conv_in → mid_block
 * (2 resnets) → up_blocks (layers_per_block + 1 resnets, then an upsampler except in the last block)
 * → norm_out → SiLU → conv_out`. Every norm is a SpatialNorm3D conditioned on the latent of the
 * current call. One call decodes one latent frame batch; the causal conv cache carries the previous.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Container, M2Layer } from '../layer.js';
import { consume, silu } from '../math.js';
import type { WeightSource } from '../weightSource.js';
import type { VaeConfig } from '../../config/vaeConfig.js';
import type { ProbeScope } from '../probe.js';
import { MidBlock3D, UpBlock3D } from './blocks.js';
import { CausalConv3d, type ConvCache } from './causalConv3d.js';
import { captureNCDHW } from './encoder.js';
import { SpatialNorm3D } from './spatialNorm3d.js';
import type { TimeUpsampling } from './upsample3d.js';

export class Decoder3D extends M2Layer {
  static readonly className = 'M2Decoder3D';
  readonly convIn: CausalConv3d;
  readonly midBlock: MidBlock3D;
  readonly upBlocks: UpBlock3D[];
  readonly normOut: SpatialNorm3D;
  readonly convOut: CausalConv3d;

  constructor(
    readonly config: VaeConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'decoder');
    const c = config;
    const ch = [...c.block_out_channels].reverse();
    const zc = c.latent_channels;
    const common = { groups: c.norm_num_groups, eps: c.norm_eps, spatialNormDim: zc };
    this.convIn = this.child(
      'conv_in',
      new CausalConv3d({ inChannels: zc, outChannels: ch[0]!, kernelSize: 3 }, ws.pp('conv_in')),
    );
    this.midBlock = this.child(
      'mid_block',
      new MidBlock3D({ ...common, inChannels: ch[0]!, outChannels: ch[0]!, numLayers: 2 }, ws.pp('mid_block')),
    );
    const list = this.child('up_blocks', new Container(ws.pp('up_blocks').prefix));
    this.upBlocks = ch.map((out, i) =>
      list.add(
        String(i),
        new UpBlock3D(
          {
            ...common,
            inChannels: i === 0 ? ch[0]! : ch[i - 1]!,
            outChannels: out,
            numLayers: c.layers_per_block + 1,
            addUpsample: i < ch.length - 1,
            compressTime: i < c.temporalCompressLevel,
          },
          ws.pp('up_blocks').pp(i),
        ),
      ),
    );
    const last = ch[ch.length - 1]!;
    this.normOut = this.child(
      'norm_out',
      new SpatialNorm3D({ fChannels: last, zqChannels: zc, groups: c.norm_num_groups }, ws.pp('norm_out')),
    );
    this.convOut = this.child(
      'conv_out',
      new CausalConv3d({ inChannels: last, outChannels: c.out_channels, kernelSize: 3 }, ws.pp('conv_out')),
    );
  }

  /**
   * One decoder call.
   * @param z     `[B, t, h, w, latent_channels]` this call's latent frames (not disposed)
   * @param time  how the compress_time upsamplers treat time in this call (see Upsample3D)
   * @param cache causal conv state across calls, updated in place
   * @param probe at the decoder: captures `{conv_in,mid_block,up_blocks.i}.out` (layout `[B, C, T, H, W]`)
   * @returns frames `[B, T, 8h, 8w, out_channels]`
   */
  forward(z: tf.Tensor, time: TimeUpsampling, cache?: ConvCache, probe?: ProbeScope): tf.Tensor {
    // 1. conv_in
    let h = this.convIn.forward(z, cache); // [B, t, h, w, C0]
    captureNCDHW(probe, 'conv_in.out', h);
    // 2. mid block
    h = consume(h, (x) => this.midBlock.forward(x, z, cache));
    captureNCDHW(probe, 'mid_block.out', h);
    // 3. up blocks
    this.upBlocks.forEach((block, i) => {
      h = consume(h, (x) => block.forward(x, z, time, cache));
      captureNCDHW(probe, `up_blocks.${i}.out`, h);
    });
    // 4. norm_out → SiLU → conv_out
    h = consume(h, (x) => tf.tidy(() => silu(this.normOut.forward(x, z))));
    return consume(h, (x) => this.convOut.forward(x, cache)); // [B, T, H, W, out_channels]
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs, 'auto');
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      block_out_channels: this.config.block_out_channels,
      latent_channels: this.config.latent_channels,
    };
  }
}
tf.serialization.registerClass(Decoder3D, 'Mask2DiT');
