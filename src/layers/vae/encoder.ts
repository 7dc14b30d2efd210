/**
 * `CogVideoXEncoder3D` (diffusers autoencoder_kl_cogvideox.py): `conv_in → down_blocks (resnets +
 * downsampler, except the last) → mid_block (2 resnets) → norm_out (GroupNorm, eps 1e-6) → SiLU →
 * conv_out` to `2 · latent_channels` moments (mean, then log-variance). One call encodes one frame
 * batch; the causal conv cache carries the previous batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Container, M2Layer } from '../layer.js';
import { consume, silu } from '../math.js';
import type { WeightSource } from '../weightSource.js';
import type { VaeConfig } from '../../config/vaeConfig.js';
import type { ProbeScope } from '../probe.js';
import { DownBlock3D, MidBlock3D } from './blocks.js';
import { CausalConv3d, type ConvCache } from './causalConv3d.js';
import { GroupNorm } from './groupNorm.js';

/** Capture `x` `[B, T, H, W, C]` under `name` (in `probe`'s scope) in the reference layout `[B, C, T, H, W]`. */
export function captureNCDHW(probe: ProbeScope | undefined, name: string, x: tf.Tensor): void {
  if (probe?.wants(name) === true) tf.tidy(() => probe.capture(name, tf.transpose(x, [0, 4, 1, 2, 3])));
}

export class Encoder3D extends M2Layer {
  static readonly className = 'M2Encoder3D';
  readonly convIn: CausalConv3d;
  readonly downBlocks: DownBlock3D[];
  readonly midBlock: MidBlock3D;
  readonly normOut: GroupNorm;
  readonly convOut: CausalConv3d;

  constructor(
    readonly config: VaeConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'encoder');
    const c = config;
    const ch = c.block_out_channels;
    const common = { groups: c.norm_num_groups, eps: c.norm_eps };
    this.convIn = this.child(
      'conv_in',
      new CausalConv3d({ inChannels: c.in_channels, outChannels: ch[0]!, kernelSize: 3 }, ws.pp('conv_in')),
    );
    const list = this.child('down_blocks', new Container(ws.pp('down_blocks').prefix));
    this.downBlocks = ch.map((out, i) =>
      list.add(
        String(i),
        new DownBlock3D(
          {
            ...common,
            inChannels: i === 0 ? ch[0]! : ch[i - 1]!,
            outChannels: out,
            numLayers: c.layers_per_block,
            addDownsample: i < ch.length - 1,
            compressTime: i < c.temporalCompressLevel,
          },
          ws.pp('down_blocks').pp(i),
        ),
      ),
    );
    const top = ch[ch.length - 1]!;
    this.midBlock = this.child(
      'mid_block',
      new MidBlock3D({ ...common, inChannels: top, outChannels: top, numLayers: 2 }, ws.pp('mid_block')),
    );
    this.normOut = this.child(
      'norm_out',
      new GroupNorm({ channels: top, groups: c.norm_num_groups, eps: 1e-6 }, ws.pp('norm_out')),
    );
    this.convOut = this.child(
      'conv_out',
      new CausalConv3d({ inChannels: top, outChannels: 2 * c.latent_channels, kernelSize: 3 }, ws.pp('conv_out')),
    );
  }

  /**
   * One encoder call.
   * @param x     `[B, T, H, W, in_channels]` video frames (not disposed)
   * @param cache causal conv state across calls, updated in place
   * @param probe at the encoder: captures `{conv_in,down_blocks.i,mid_block,conv_out}.out` (layout `[B, C, T, H, W]`)
   * @returns moments `[B, T', H/8, W/8, 2·latent_channels]`
   */
  forward(x: tf.Tensor, cache?: ConvCache, probe?: ProbeScope): tf.Tensor {
    // 1. conv_in
    let h = this.convIn.forward(x, cache); // [B, T, H, W, C0]
    captureNCDHW(probe, 'conv_in.out', h);
    // 2. down blocks
    this.downBlocks.forEach((block, i) => {
      h = consume(h, (t) => block.forward(t, cache));
      captureNCDHW(probe, `down_blocks.${i}.out`, h);
    });
    // 3. mid block
    h = consume(h, (t) => this.midBlock.forward(t, undefined, cache));
    captureNCDHW(probe, 'mid_block.out', h);
    // 4. norm_out → SiLU → conv_out
    h = consume(h, (t) => tf.tidy(() => silu(this.normOut.forward(t))));
    h = consume(h, (t) => this.convOut.forward(t, cache)); // [B, T', h, w, 2·Cz]
    captureNCDHW(probe, 'conv_out.out', h);
    return h;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      block_out_channels: this.config.block_out_channels,
      latent_channels: this.config.latent_channels,
    };
  }
}
tf.serialization.registerClass(Encoder3D, 'Mask2DiT');
