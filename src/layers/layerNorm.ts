/**
 * LayerNorm over the last axis (PyTorch semantics: biased variance, eps inside the root), with
 * optional elementwise affine `weight`/`bias` `[dim]`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { M2Layer } from './layer.js';
import { layerNormPlain } from './math.js';
import type { WeightSource } from './weightSource.js';

export interface LayerNormConfig {
  dim: number;
  eps: number;
  elementwiseAffine: boolean;
  /** Whether the affine part has a bias (PyTorch `bias=True`). */
  bias: boolean;
}

export class LayerNorm extends M2Layer {
  static readonly className = 'M2LayerNorm';
  readonly weight: tf.Variable | undefined;
  readonly bias: tf.Variable | undefined;

  constructor(
    readonly config: LayerNormConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'layer_norm');
    this.weight = config.elementwiseAffine ? this.param('weight', ws.get('weight', [config.dim])) : undefined;
    this.bias = config.elementwiseAffine && config.bias ? this.param('bias', ws.get('bias', [config.dim])) : undefined;
  }

  /** @param x `[..., dim]` → `[..., dim]` */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = layerNormPlain(x, this.config.eps);
      if (this.weight !== undefined) y = tf.mul(y, this.weight);
      if (this.bias !== undefined) y = tf.add(y, this.bias);
      return y;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(LayerNorm, 'Mask2DiT');
