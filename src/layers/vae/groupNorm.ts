/**
 * GroupNorm over channels-last activations (PyTorch `nn.GroupNorm` semantics: statistics per sample
 * and group over every other axis — here all frames of the current call, H and W —, biased
 * variance, eps inside the root), with affine `weight`/`bias` `[C]`. tfjs has no GroupNorm op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../../errors.js';
import { M2Layer } from '../layer.js';
import type { WeightSource } from '../weightSource.js';

/**
 * GroupNorm without the affine part.
 * @param x `[B, ..., C]`; statistics over all middle axes and the `C / groups` channels of a group.
 */
export function groupNormPlain(x: tf.Tensor, groups: number, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const shape = x.shape;
    const B = shape[0]!;
    const C = shape[shape.length - 1]!;
    const g = tf.reshape(x, [B, -1, groups, C / groups]); // [B, N, G, C/G]
    const { mean, variance } = tf.moments(g, [1, 3], true); // [B, 1, G, 1]
    const y = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps))); // [B, N, G, C/G]
    return tf.reshape(y, shape);
  });
}

export interface GroupNormConfig {
  channels: number;
  groups: number;
  eps: number;
}

export class GroupNorm extends M2Layer {
  static readonly className = 'M2GroupNorm';
  readonly weight: tf.Variable; // [C]
  readonly bias: tf.Variable; // [C]

  constructor(
    readonly config: GroupNormConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'group_norm');
    if (config.channels % config.groups !== 0)
      throw new ShapeError(this.name, `${config.channels} channels do not split into ${config.groups} groups`);
    this.weight = this.param('weight', ws.get('weight', [config.channels]));
    this.bias = this.param('bias', ws.get('bias', [config.channels]));
  }

  /** @param x `[B, ..., C]` → same shape */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.config.channels)
      throw new ShapeError(this.name, `expected ${this.config.channels} channels last, got [${x.shape}]`);
    return tf.tidy(() => {
      const C = this.config.channels;
      const n = tf.reshape(groupNormPlain(x, this.config.groups, this.config.eps), [-1, C]); // [B·…, C]: a 2-D broadcast (tfjs-webgpu's rank-5 broadcast shaders do not compile)
      return tf.reshape(tf.add(tf.mul(n, this.weight), this.bias), x.shape);
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(GroupNorm, 'Mask2DiT');
