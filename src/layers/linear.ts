/**
 * Linear layer with the reference parameters `weight` `[out, in]` and optional `bias` `[out]`.
 *
 * One copy of the weight, held in the layout of its use:
 * - inference: `[in, out]` (the kernel), so the forward is a plain 2-D, non-transposed matMul — the
 *   only fast matMul on wasm (BACKENDS.md §1). Loading asks the WeightSource for it directly
 *   (`getTransposed`: a checkpoint is transposed in JS while it is widened, nothing twice in the backend).
 * - reference `[out, in]`: whenever the weight meets the outside by name (`namedWeights`,
 *   `weightByName`, `variables`: save, checkpoints, inspection) and for training (`trainable`: the
 *   optimizer, EMA and checkpoints see the reference layout; each forward transposes a temporary).
 * Switching transposes once and disposes the old variable; an inference forward switches back.
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

type Layout = 'kernel' | 'reference';

export class Linear extends M2Layer {
  static readonly className = 'M2Linear';
  readonly bias: tf.Variable | undefined; // [out]
  /** The one copy of the weight: `[in, out]` (kernel) or `[out, in]` (reference). */
  private held: tf.Variable;
  private layout: Layout;

  constructor(
    readonly config: LinearConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'linear');
    this.held = this.param('weight', ws.getTransposed('weight', [config.outFeatures, config.inFeatures])); // [in, out]
    this.layout = 'kernel';
    this.bias = config.bias ? this.param('bias', ws.get('bias', [config.outFeatures])) : undefined;
  }

  /** The weight in the reference layout `[out, in]` (switches the held copy to it). */
  get weight(): tf.Variable {
    this.use('reference');
    return this.held;
  }

  /** Which layout the one copy is in now (tests, memory accounting). */
  get heldLayout(): Layout {
    return this.layout;
  }

  /** Transpose the held copy into `layout` (once), disposing the other. */
  private use(layout: Layout): void {
    if (this.layout === layout) return;
    const t = tf.tidy(() => tf.transpose(this.held)); // [in, out] ↔ [out, in]
    this.held = this.replaceParam('weight', t);
    this.layout = layout;
  }

  protected override referenceLayout(): void {
    this.use('reference');
  }

  protected override trainableChanged(on: boolean): void {
    // `held` is unset while the base constructor runs
    if (on && (this as unknown as { held?: tf.Variable }).held !== undefined) this.use('reference');
  }

  /** @param x `[..., in]` → `[..., out]` */
  forward(x: tf.Tensor): tf.Tensor {
    this.use(this.trainable ? 'reference' : 'kernel');
    return tf.tidy(() => {
      const shape = x.shape;
      const flat = tf.reshape(x, [-1, this.config.inFeatures]); // [N, in]
      // training: a temporary transpose of the reference variable, so gradients reach it
      const w = this.trainable ? tf.transpose(this.held) : this.held; // [in, out]
      let y: tf.Tensor = matMul2d(flat, w); // [N, out]
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
}
tf.serialization.registerClass(Linear, 'Mask2DiT');
