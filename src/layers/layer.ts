/**
 * M2Layer: the tfjs-layers shell every component extends ("Layer outside, module inside").
 *
 * tfjs-layers renames variables (`weight_1`), loses the weights of nested layers and cannot dispose
 * a layer built by hand. So each M2Layer keeps its own registry: parameters under
 * their reference leaf names (`weight`, `bias`) and children under their reference attribute names
 * (`to_q`, `0`). The walker `namedWeights()` yields the dotted reference names
 * (`transformer_blocks.3.attn1.to_q.weight`) that checkpoints use; `weights`, `countParams()` and
 * `dispose()` are answered from it. Layers are built with their weights in hand (a WeightSource),
 * so `built` is true from construction and `call()` is a thin adapter over a typed `forward()`.
 *
 * A parameter may be held in another layout than the reference one (Linear keeps `[in, out]` for its
 * forward). Whatever meets the outside by name — `namedWeights()`, `weightByName()`, `variables()` —
 * is in the reference layout: such a layer switches its one copy back first (`referenceLayout()`).
 * `countParams()`, `weights` and `dispose()` read the registry as held, switching nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export type LayerVariable = tfl.LayerVariable;

export abstract class M2Layer extends tfl.layers.Layer {
  private readonly paramsByName = new Map<string, tfl.LayerVariable>();
  private readonly children = new Map<string, M2Layer>();

  protected constructor(name: string) {
    super({ name, trainable: false }); // inference by default; training sets `trainable = true`
    this.built = true;
  }

  /** Register a parameter under its reference leaf name; takes ownership of `value`. */
  protected param(ref: string, value: tf.Tensor): tf.Variable {
    if (this.paramsByName.has(ref)) throw new Error(`${this.name}: parameter ${ref} registered twice`);
    return this.hold(ref, value);
  }

  /**
   * Replace parameter `ref` by `value` (e.g. the same weight in another layout); the old variable is
   * disposed, so anyone still holding it holds a disposed tensor. Takes ownership of `value`.
   */
  protected replaceParam(ref: string, value: tf.Tensor): tf.Variable {
    const old = this.paramsByName.get(ref);
    if (old === undefined) throw new Error(`${this.name}: no parameter ${ref} to replace`);
    const v = this.hold(ref, value);
    old.dispose();
    return v;
  }

  private hold(ref: string, value: tf.Tensor): tf.Variable {
    const v = new tfl.LayerVariable(value, 'float32', ref, true);
    value.dispose(); // the variable holds its own reference to the data
    this.paramsByName.set(ref, v);
    return v.read() as tf.Variable;
  }

  /** Register a child component under its reference attribute name. */
  protected child<T extends M2Layer>(ref: string, layer: T): T {
    if (this.children.has(ref)) throw new Error(`${this.name}: child ${ref} registered twice`);
    this.children.set(ref, layer);
    return layer;
  }

  /** Make every own parameter hold the reference layout (a layer keeping another layout overrides this). */
  protected referenceLayout(): void {}

  /** Every parameter as held (layouts untouched), with its dotted name and owning layer. */
  private *heldWeights(prefix = ''): Generator<[string, tfl.LayerVariable, M2Layer]> {
    for (const [k, v] of this.paramsByName) yield [prefix + k, v, this];
    for (const [k, c] of this.children) yield* c.heldWeights(`${prefix}${k}.`);
  }

  /**
   * Every parameter with its dotted reference name and in the reference layout, own parameters first,
   * then children in order. A layer holding another layout switches to the reference one as it is
   * reached (one transpose; its next inference forward switches back).
   */
  *namedWeights(prefix = ''): Generator<[string, tfl.LayerVariable]> {
    this.referenceLayout();
    for (const [k, v] of this.paramsByName) yield [prefix + k, v];
    for (const [k, c] of this.children) yield* c.namedWeights(`${prefix}${k}.`);
  }

  /** A child by dotted path (`transformer_blocks.3.attn1`), for introspection. */
  sublayer(path: string): M2Layer | undefined {
    return path.split('.').reduce<M2Layer | undefined>((cur, part) => cur?.children.get(part), this);
  }

  /** The variable behind a dotted reference name (in the reference layout), or undefined. */
  weightByName(name: string): tf.Variable | undefined {
    for (const [n, , owner] of this.heldWeights()) {
      if (n !== name) continue;
      owner.referenceLayout(); // switches only the owner
      return owner.paramsByName.get(name.slice(name.lastIndexOf('.') + 1))!.read() as tf.Variable;
    }
    return undefined;
  }

  override get trainableWeights(): tfl.LayerVariable[] {
    return this.trainable ? [...this.heldWeights()].map(([, v]) => v).filter((v) => v.trainable) : [];
  }

  override get nonTrainableWeights(): tfl.LayerVariable[] {
    return [...this.heldWeights()].map(([, v]) => v).filter((v) => !this.trainable || !v.trainable);
  }

  override get weights(): tfl.LayerVariable[] {
    return [...this.heldWeights()].map(([, v]) => v);
  }

  override countParams(): number {
    let n = 0;
    for (const [, v] of this.heldWeights()) n += v.read().size;
    return n;
  }

  /** Shape-preserving by default (norms, blocks); layers that change the shape override it. */
  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
  }

  /** tfjs-layers' config plus the layer's own typed `config` (every component keeps one). */
  override getConfig(): tf.serialization.ConfigDict {
    const own = (this as { config?: object }).config;
    return { ...super.getConfig(), ...((own ?? {}) as tf.serialization.ConfigDict) };
  }

  /** Free caches a subclass holds besides its parameters (cached transposes, position tables). */
  protected releaseCaches(): void {}

  /** Drop every cache derived from the weights, in the whole tree (after assigning new weight values). */
  invalidateCaches(): void {
    this.releaseCaches();
    for (const [, c] of this.children) c.invalidateCaches();
  }

  /**
   * Switch the whole tree between inference (weight-derived caches allowed) and training (every
   * forward reads the variables, so gradients reach them). Caches are dropped either way.
   */
  setTrainable(trainable: boolean): void {
    this.trainable = trainable;
    this.releaseCaches();
    for (const [, c] of this.children) c.setTrainable(trainable);
  }

  override get trainable(): boolean {
    return super.trainable;
  }
  /** Also reached by `layer.trainable = on` (T5Encoder sets its parts that way). */
  override set trainable(on: boolean) {
    super.trainable = on;
    this.trainableChanged(on);
  }

  /** Called whenever `trainable` is set (a layer holding another layout switches to the reference one for training). */
  protected trainableChanged(_on: boolean): void {}

  /**
   * The tf.Variables of the whole tree by dotted reference name, in the reference layout (for
   * optimizers and checkpoints). Valid until an inference forward switches a layout back: fetch them
   * after `setTrainable(true)` for training, or use them before the next forward.
   */
  variables(): Map<string, tf.Variable> {
    return new Map([...this.namedWeights()].map(([n, v]) => [n, v.read() as tf.Variable]));
  }

  /** Dispose this layer's parameters and caches, then every child's (each child's own dispose runs). */
  override dispose(): { refCountAfterDispose: number; numDisposedVariables: number } {
    let n = 0;
    for (const [, v] of this.paramsByName) {
      v.dispose();
      n++;
    }
    this.releaseCaches();
    for (const [, c] of this.children) n += c.dispose().numDisposedVariables;
    this.paramsByName.clear();
    this.children.clear();
    return { refCountAfterDispose: 0, numDisposedVariables: n };
  }
}

/** A parameter-free node of the tree, so child names read like the reference (`net.0.proj`, `to_out.0`). */
export class Container extends M2Layer {
  static readonly className = 'M2Container';
  constructor(name: string) {
    super(name);
  }
  /** Register `layer` under `ref` and return it. */
  add<T extends M2Layer>(ref: string, layer: T): T {
    return this.child(ref, layer);
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    return inputs;
  }
}
