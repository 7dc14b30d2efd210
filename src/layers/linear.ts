/**
 * Linear layer with the reference parameters `weight` `[out, in]` and optional `bias` `[out]`.
 *
 * One copy of the weight, held in the layout of its use:
 * - inference: `[in, out]` (the kernel), so the forward is a plain 2-D, non-transposed matMul — the
 *   only fast matMul on wasm (benchmarks/RESULTS.md, "Speed work", round 2). Loading asks the WeightSource for it directly
 *   (`getTransposed`: a checkpoint is transposed in JS while it is widened, nothing twice in the backend).
 * - reference `[out, in]`: whenever the weight meets the outside by name (`namedWeights`,
 *   `weightByName`, `variables`: save, checkpoints, inspection) and for training (`trainable`: the
 *   optimizer, EMA and checkpoints see the reference layout; each forward transposes a temporary).
 * Switching transposes once and disposes the old variable; an inference forward switches back.
 *
 * Streamed (built from a `ws.streaming()` source: an offloaded block): no copy at all — each forward
 * reads the `[in, out]` kernel from the checkpoint, multiplies and frees it, so a running block holds
 * one matrix (and on wasm its XNNPACK packed copy) instead of all of them.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { M2Layer } from './layer.js';
import { matMul2d } from './math.js';
import { Mask2DiTError } from '../errors.js';
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
  /** The one copy of the weight: `[in, out]` (kernel) or `[out, in]` (reference); unset when streamed. */
  private held!: tf.Variable;
  private layout: Layout;
  /** Streamed: reads the `[in, out]` kernel for one forward. */
  private readonly loadKernel: (() => tf.Tensor) | undefined;

  constructor(
    readonly config: LinearConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'linear');
    const shape: [number, number] = [config.outFeatures, config.inFeatures];
    if (ws.streamsKernels) this.loadKernel = ws.kernelLoader('weight', shape);
    else this.held = this.param('weight', ws.getTransposed('weight', shape)); // [in, out]
    this.layout = 'kernel';
    this.bias = config.bias ? this.param('bias', ws.get('bias', [config.outFeatures])) : undefined;
  }

  /** The weight in the reference layout `[out, in]` (switches the held copy to it). */
  get weight(): tf.Variable {
    this.use('reference');
    return this.held;
  }

  /** True when the kernel is read from the checkpoint at each forward (offloaded block). */
  get streamed(): boolean {
    return this.loadKernel !== undefined;
  }

  /** Which layout the one copy is in now (tests, memory accounting). */
  get heldLayout(): Layout {
    return this.layout;
  }

  /** Transpose the held copy into `layout` (once), disposing the other. */
  private use(layout: Layout): void {
    if (this.layout === layout) return;
    if (this.loadKernel !== undefined)
      throw new Mask2DiTError(
        'OFFLOAD',
        `${this.name}: its weight is read from the checkpoint at each forward (an offloaded block): it has no held copy to name, save or train`,
      );
    const t = tf.tidy(() => tf.transpose(this.held)); // [in, out] ↔ [out, in]
    this.held = this.replaceParam('weight', t);
    this.layout = layout;
  }

  protected override referenceLayout(): void {
    if (this.loadKernel === undefined) this.use('reference'); // streamed: nothing held to switch
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
      // training: a temporary transpose of the reference variable, so gradients reach it;
      // streamed: read for this forward, freed by the tidy (with XNNPACK's packed copy of it)
      const w = this.loadKernel?.() ?? (this.trainable ? tf.transpose(this.held) : this.held); // [in, out]
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
