/**
 * Where a layer gets its weights when it is built: modules are constructed with their weights in
 * hand (candle's VarBuilder), never randomly initialised and then overwritten.
 *
 * `ws.pp('transformer_blocks').pp(3).get('attn1.to_q.weight', [D, D])` fetches
 * `transformer_blocks.3.attn1.to_q.weight` and checks its shape. Problems (missing, wrongly shaped)
 * are collected, not thrown one at a time: `finish()` reports them all, with unused keys, in one
 * `WeightLoadError`.
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
    if (wrongShape.length > 0) parts.push(`wrong shape ${wrongShape.length}: ${wrongShape.map((w) => `${w.name} expected [${w.expected}] got [${w.got}]`).join(', ')}`);
    if (unexpected.length > 0) parts.push(`unexpected ${unexpected.length}: ${unexpected.join(', ')}`);
    super('WEIGHTS', `${source}: ${parts.join('; ')}`);
  }
}

/** Shared state of one load: the tensors, what was taken, what went wrong. */
interface LoadState {
  readonly label: string;
  /** Returns a fresh tensor (caller owns) or undefined when absent. */
  fetch(name: string, shape: readonly number[]): tf.Tensor | undefined;
  /** Every name the source can provide (for the unexpected-key report); empty for generated sources. */
  available(): string[];
  readonly used: Set<string>;
  /** Dispose whatever the source still holds (called by finish). */
  release(): void;
  readonly missing: string[];
  readonly wrongShape: { name: string; expected: number[]; got: number[] }[];
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export class WeightSource {
  private constructor(
    private readonly state: LoadState,
    readonly prefix: string,
  ) {}

  /** Push a path component: `ws.pp('transformer_blocks').pp(3)`. */
  pp(part: string | number): WeightSource {
    return new WeightSource(this.state, this.full(String(part)));
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
    const key = this.full(name);
    this.state.used.add(key);
    const t = this.state.fetch(key, shape);
    if (t === undefined) {
      this.state.missing.push(key);
      return tf.zeros(shape as number[]);
    }
    if (!sameShape(t.shape, shape)) {
      this.state.wrongShape.push({ name: key, expected: [...shape], got: [...t.shape] });
      t.dispose();
      return tf.zeros(shape as number[]);
    }
    return t;
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
      {
        label,
        fetch: (name) => {
          const t = tensors.get(name);
          if (t !== undefined) tensors.delete(name);
          return t;
        },
        available: () => all,
        release: () => {
          for (const t of tensors.values()) t.dispose();
          tensors.clear();
        },
        used: new Set(),
        missing: [],
        wrongShape: [],
      },
      '',
    );
  }

  /** Deterministic random weights (tests, shape checks): N(0, 1/fan_in) matrices, 1 + N(0, 0.04) for 1-D "weight", N(0, 0.01) biases. */
  static random(seed: number, label = `random(seed=${seed})`): WeightSource {
    let counter = 0;
    return new WeightSource(
      {
        label,
        fetch: (name, shape) => {
          const s = seed * 1000003 + counter++;
          if (shape.length === 1) {
            return name.endsWith('bias') ? tf.randomNormal(shape as number[], 0, 0.1, 'float32', s) : tf.randomNormal(shape as number[], 1, 0.2, 'float32', s);
          }
          const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
          return tf.randomNormal(shape as number[], 0, 1 / Math.sqrt(fanIn), 'float32', s);
        },
        available: () => [],
        release: () => {},
        used: new Set(),
        missing: [],
        wrongShape: [],
      },
      '',
    );
  }

  /** All-zero weights of the requested shapes (tests of shapes and plumbing). */
  static zeros(label = 'zeros'): WeightSource {
    return new WeightSource(
      { label, fetch: (_n, shape) => tf.zeros(shape as number[]), available: () => [], release: () => {}, used: new Set(), missing: [], wrongShape: [] },
      '',
    );
  }
}
