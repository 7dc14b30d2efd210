/**
 * Linear layer in the reference layout: `weight` `[out, in]`, optional `bias` `[out]`.
 * The weight is stored transposed once at construction (`[in, out]`) so the forward is a plain
 * 2-D, non-transposed matMul — the only fast matMul on wasm (BACKENDS.md §1).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { M2Layer } from './layer.js';
import { matMul2d } from './math.js';
import type { WeightSource } from './weightSource.js';

export interface LinearConfig {
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
}

export class Linear extends M2Layer {
  static readonly className = 'M2Linear';
  readonly weight: tf.Variable; // [out, in] (reference layout)
  readonly bias: tf.Variable | undefined; // [out]
  private weightT: tf.Tensor | undefined; // [in, out], cached transpose

  constructor(
    readonly config: LinearConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'linear');
    this.weight = this.param('weight', ws.get('weight', [config.outFeatures, config.inFeatures]));
    this.bias = config.bias ? this.param('bias', ws.get('bias', [config.outFeatures])) : undefined;
  }

  /** `[in, out]` view of the weight; recomputed if the variable was reassigned (training). */
  private transposed(): tf.Tensor {
    if (this.weightT === undefined || this.weightT.isDisposed || this.trainable) {
      if (this.trainable) return tf.transpose(this.weight);
      this.weightT = tf.keep(tf.transpose(this.weight));
    }
    return this.weightT;
  }

  /** @param x `[..., in]` → `[..., out]` */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = x.shape;
      const flat = tf.reshape(x, [-1, this.config.inFeatures]); // [N, in]
      let y: tf.Tensor = matMul2d(flat, this.transposed()); // [N, out]
      if (this.bias !== undefined) y = tf.add(y, this.bias);
      return tf.reshape(y, [...shape.slice(0, -1), this.config.outFeatures]);
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
    return [...shape.slice(0, -1), this.config.outFeatures];
  }

  protected override releaseCaches(): void {
    this.weightT?.dispose();
    this.weightT = undefined;
  }
}
tf.serialization.registerClass(Linear, 'Mask2DiT');
