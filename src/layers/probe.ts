/**
 * Per-call capture of intermediates (TransformerLens-style hook points, without global state).
 *
 * Pass a Probe to a forward; each component offers its intermediates under stable dotted names
 * that extend the weight names (`transformer_blocks.3.attn1.probs`, `block.0.hidden_states`, …).
 * A captured tensor is a kept clone owned by the caller: `probe.dispose()` frees them all.
 * Capturing never changes results.
 *
 * Layers take a ProbeScope, the probe seen from the layer's path: `probe.at('block.3').at('attn1')`
 * captures `probs` as `block.3.attn1.probs`. The models make the scopes from the Probe they are given.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Which attention probabilities a probe keeps: `[B, heads, Lq, L]` is large, so narrow it. */
export interface AttentionSelection {
  /** Heads whose probabilities are captured (default: all). */
  heads?: number[];
  /** Capture only the query rows of this scene: its text rows, then its video rows (default: all rows). */
  scene?: number;
}

export class Probe {
  readonly captured = new Map<string, tf.Tensor>();
  private readonly filter: (name: string) => boolean;

  /**
   * @param names exact names, `prefix.*` globs, or a predicate; default: capture nothing.
   * @param attention for `<block>.attn1.probs`: which heads and which scene's query rows to keep.
   */
  constructor(
    names: string[] | ((name: string) => boolean) = [],
    readonly attention: AttentionSelection = {},
  ) {
    if (typeof names === 'function') {
      this.filter = names;
    } else {
      const exact = new Set(names.filter((n) => !n.endsWith('*')));
      const prefixes = names.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1));
      this.filter = (n) => exact.has(n) || prefixes.some((p) => n.startsWith(p));
    }
  }

  /** Whether `name` is requested (lets a component skip computing an expensive intermediate). */
  wants(name: string): boolean {
    return this.filter(name);
  }

  /** Keep a copy of `t` under `name` if requested. Safe inside tf.tidy. Calls twice → `name.call1`, … */
  capture(name: string, t: tf.Tensor): void {
    if (!this.filter(name)) return;
    let key = name;
    for (let k = 1; this.captured.has(key); k++) key = `${name}.call${k}`;
    this.captured.set(key, tf.keep(tf.clone(t)));
  }

  /** This probe seen from `path` (`''`: the root): names given to the scope are relative to it. */
  at(path: string): ProbeScope {
    return new ProbeScope(this, path);
  }

  get(name: string): tf.Tensor | undefined {
    return this.captured.get(name);
  }

  dispose(): void {
    for (const t of this.captured.values()) t.dispose();
    this.captured.clear();
  }
}

/** `path.sub`; an empty side drops the dot. */
const join = (path: string, sub: string) => (path === '' ? sub : sub === '' ? path : `${path}.${sub}`);

/** A Probe scoped to a dotted path: `wants(sub)` / `capture(sub, t)` act on `path.sub`. */
export class ProbeScope {
  constructor(
    readonly probe: Probe,
    readonly path: string,
  ) {}

  /** The scope of `path.sub` (a child component). */
  at(sub: string): ProbeScope {
    return new ProbeScope(this.probe, join(this.path, sub));
  }

  /** Whether `path.sub` is requested. */
  wants(sub: string): boolean {
    return this.probe.wants(join(this.path, sub));
  }

  /** Keep a copy of `t` under `path.sub` if requested (Probe.capture). */
  capture(sub: string, t: tf.Tensor): void {
    this.probe.capture(join(this.path, sub), t);
  }

  /** The probe's attention selection (heads, scene). */
  get attention(): AttentionSelection {
    return this.probe.attention;
  }
}
