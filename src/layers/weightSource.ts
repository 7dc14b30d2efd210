/**
 * Where a layer gets its weights when it is built: modules are constructed with their weights in
 * hand (candle's VarBuilder), never randomly initialised and then overwritten.
 *
 * `ws.pp('transformer_blocks').pp(3).get('attn1.to_q.weight', [D, D])` fetches
 * `transformer_blocks.3.attn1.to_q.weight` and checks its shape. Problems (missing, wrongly shaped)
 * are collected, not thrown one at a time: `finish()` reports them all, with unused keys, in one
 * `WeightLoadError`.
 *
 * Sources: `fromTensors` (a map), `fromReader` (a checkpoint read tensor by tensor as the layers ask:
 * nothing is held twice), `random`, `zeros`. `getTransposed` hands a Linear its `[in, out]` kernel of a
 * reference `[out, in]` weight (a reader transposes in JS while widening); `checkOnly()` checks names
 * and shapes without reading (offloaded blocks are validated this way at load); `streaming()` makes
 * Linears take a loader for their kernel instead of the kernel (`kernelLoader`: an offloaded block's
 * matrices are read at each use and freed after it, one at a time).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';

/** Missing, unexpected and wrongly shaped parameters, each listed by name. */
export class WeightLoadError extends Mask2DiTError {
  constructor(
    readonly source: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly wrongShape: { name: string; expected: number[]; got: number[] }[],
  ) {
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`missing ${missing.length}: ${missing.join(', ')}`);
    if (wrongShape.length > 0)
      parts.push(
        `wrong shape ${wrongShape.length}: ${wrongShape.map((w) => `${w.name} expected [${w.expected}] got [${w.got}]`).join(', ')}`,
      );
    if (unexpected.length > 0) parts.push(`unexpected ${unexpected.length}: ${unexpected.join(', ')}`);
    super('WEIGHTS', `${source}: ${parts.join('; ')}`);
  }
}

/**
 * Tensors readable synchronously by reference name (a checkpoint on disk, read tensor by tensor as
 * the layers ask for them): shapes without reading, values widened to float32.
 */
export interface TensorReader {
  readonly label: string;
  names(): string[];
  /** The stored (reference-layout) shape, or undefined when absent. */
  shape(name: string): readonly number[] | undefined;
  /**
   * The values as float32, transposed (`[in, out]` of a 2-D `[out, in]`) when asked; `transient`:
   * the result may be a view the next such read overwrites (the caller copies it at once).
   */
  readF32(name: string, transpose: boolean, transient?: boolean): Float32Array;
}

/** Shared state of one load: the tensors, what was taken, what went wrong. */
interface LoadState {
  readonly label: string;
  /** The stored shape of `name` (reference layout), or undefined when absent. */
  shapeOf(name: string, requested: readonly number[]): readonly number[] | undefined;
  /** `name`, its shape already checked, as a fresh tensor the caller owns; `[in, out]` when `transpose`. */
  fetch(name: string, shape: readonly number[], transpose: boolean): tf.Tensor;
  /** Every name the source can provide (for the unexpected-key report); empty for generated sources. */
  available(): string[];
  readonly used: Set<string>;
  /** Dispose whatever the source still holds (called by finish). */
  release(): void;
  readonly missing: string[];
  readonly wrongShape: { name: string; expected: number[]; got: number[] }[];
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** `[out, in]` → `[in, out]`. */
const swapped = (shape: readonly number[]): number[] => [shape[1]!, shape[0]!];

const newState = (label: string, parts: Pick<LoadState, 'shapeOf' | 'fetch' | 'available' | 'release'>): LoadState => ({
  label,
  ...parts,
  used: new Set(),
  missing: [],
  wrongShape: [],
});

export class WeightSource {
  private constructor(
    private readonly state: LoadState,
    readonly prefix: string,
    /** Check names and shapes only: every `get` returns an empty placeholder (validating offloaded blocks). */
    private readonly checkOnlyMode = false,
    /** Linears ask `kernelLoader` for their kernel, read at each forward (see `streaming`). */
    readonly streamsKernels = false,
  ) {}

  /** Push a path component: `ws.pp('transformer_blocks').pp(3)`. */
  pp(part: string | number): WeightSource {
    return new WeightSource(this.state, this.full(String(part)), this.checkOnlyMode, this.streamsKernels);
  }

  /**
   * The same load, but a Linear built from it holds no kernel: it keeps `kernelLoader`'s function and
   * reads its `[in, out]` kernel at each forward, freeing it after (offloaded blocks: one matrix in the
   * backend at a time, and on wasm one XNNPACK packed copy, instead of the whole block's).
   */
  streaming(): WeightSource {
    return new WeightSource(this.state, this.prefix, this.checkOnlyMode, true);
  }

  /**
   * The same load, but `get` only records and checks names and shapes and returns an empty `[0]`
   * placeholder: building a block from it validates the block's parameters without reading them.
   */
  checkOnly(): WeightSource {
    return new WeightSource(this.state, this.prefix, true);
  }

  /** The dotted reference name of `name` under this prefix. */
  full(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  has(name: string): boolean {
    return this.state.available().includes(this.full(name));
  }

  /**
   * The tensor `prefix.name` with the given shape; the caller owns it. A missing or wrongly shaped
   * tensor is recorded and zeros are returned, so construction finishes and `finish()` can list
   * every problem at once.
   */
  get(name: string, shape: readonly number[]): tf.Tensor {
    return this.take(name, shape, false);
  }

  /**
   * The 2-D tensor `prefix.name` of reference shape `[out, in]`, returned transposed as `[in, out]`
   * (a Linear's kernel). Sources on disk transpose in JS while widening; nothing is held twice.
   */
  getTransposed(name: string, shape: readonly [number, number]): tf.Tensor {
    return this.take(name, shape, true);
  }

  /**
   * `getTransposed` deferred (a `streaming()` source): names and shape are checked now, and the
   * returned function reads the `[in, out]` kernel afresh at each call (the caller disposes it).
   */
  kernelLoader(name: string, shape: readonly [number, number]): () => tf.Tensor {
    const key = this.full(name);
    const ok = this.check(key, shape);
    const s = this.state;
    return () => (ok ? s.fetch(key, shape, true) : tf.zeros(swapped(shape)));
  }

  private take(name: string, shape: readonly number[], transpose: boolean): tf.Tensor {
    const key = this.full(name);
    const ok = this.check(key, shape);
    if (this.checkOnlyMode) return tf.zeros([0]);
    if (!ok) return tf.zeros(transpose ? swapped(shape) : [...shape]);
    return this.state.fetch(key, shape, transpose);
  }

  /** Record `key` as used and check its stored shape; false (and the problem recorded) when missing or wrongly shaped. */
  private check(key: string, shape: readonly number[]): boolean {
    const s = this.state;
    s.used.add(key);
    const stored = s.shapeOf(key, shape);
    if (stored === undefined) s.missing.push(key);
    else if (!sameShape(stored, shape)) s.wrongShape.push({ name: key, expected: [...shape], got: [...stored] });
    return stored !== undefined && sameShape(stored, shape);
  }

  /** Throw a WeightLoadError if anything was missing, wrongly shaped or (strict) left unused. */
  finish(strict = true): void {
    const s = this.state;
    s.release();
    const unexpected = strict ? s.available().filter((n) => !s.used.has(n)) : [];
    if (s.missing.length > 0 || s.wrongShape.length > 0 || unexpected.length > 0) {
      throw new WeightLoadError(s.label, s.missing, unexpected, s.wrongShape);
    }
  }

  /** Weights from name → tensor (e.g. read from safetensors). Tensors are handed over on `get`; the map keeps none. */
  static fromTensors(label: string, tensors: Map<string, tf.Tensor>): WeightSource {
    const all = [...tensors.keys()];
    return new WeightSource(
      newState(label, {
        shapeOf: (name) => tensors.get(name)?.shape,
        fetch: (name, _shape, transpose) => {
          const t = tensors.get(name)!;
          tensors.delete(name);
          if (!transpose) return t;
          const k = tf.transpose(t); // [in, out]
          t.dispose();
          return k;
        },
        available: () => all,
        release: () => {
          for (const t of tensors.values()) t.dispose();
          tensors.clear();
        },
      }),
      '',
    );
  }

  /** Weights read one by one from a reader as the layers ask for them (a checkpoint on disk). */
  static fromReader(reader: TensorReader): WeightSource {
    return new WeightSource(
      newState(reader.label, {
        shapeOf: (name) => reader.shape(name),
        // wasm copies the values into its heap at once, so a reused buffer is safe there (cpu and
        // webgpu keep the array: those get a fresh one)
        fetch: (name, shape, transpose) =>
          tf.tensor(
            reader.readF32(name, transpose, tf.getBackend() === 'wasm'),
            transpose ? swapped(shape) : [...shape],
            'float32',
          ),
        available: () => reader.names(),
        release: () => {},
      }),
      '',
    );
  }

  /** Deterministic random weights (tests, shape checks): N(0, 1/fan_in) matrices, 1 + N(0, 0.04) for 1-D "weight", N(0, 0.01) biases. */
  static random(seed: number, label = `random(seed=${seed})`): WeightSource {
    let counter = 0;
    const draw = (name: string, shape: readonly number[]): tf.Tensor => {
      const s = seed * 1000003 + counter++;
      if (shape.length === 1) {
        return name.endsWith('bias')
          ? tf.randomNormal(shape as number[], 0, 0.1, 'float32', s)
          : tf.randomNormal(shape as number[], 1, 0.2, 'float32', s);
      }
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      return tf.randomNormal(shape as number[], 0, 1 / Math.sqrt(fanIn), 'float32', s);
    };
    return new WeightSource(
      newState(label, {
        shapeOf: (_name, requested) => requested,
        // the reference-layout draw, transposed: the same values whichever layout a layer holds
        fetch: (name, shape, transpose) =>
          transpose ? tf.tidy(() => tf.transpose(draw(name, shape))) : draw(name, shape),
        available: () => [],
        release: () => {},
      }),
      '',
    );
  }

  /** All-zero weights of the requested shapes (tests of shapes and plumbing). */
  static zeros(label = 'zeros'): WeightSource {
    return new WeightSource(
      newState(label, {
        shapeOf: (_n, requested) => requested,
        fetch: (_n, shape, transpose) => tf.zeros(transpose ? swapped(shape) : [...shape]),
        available: () => [],
        release: () => {},
      }),
      '',
    );
  }
}
