/**
 * Mask²DiT's masked attention as an op (no weights): softmax(q·kᵀ/√d)·v where each query sees
 * exactly the keys the dual mask allows (src/scene/masks.ts).
 *
 * `maskedAttention` works block-wise, like the reference processor (`CogVideoXAttnProcessor2_2`):
 * for each scene i the text queries run against the gathered keys `[text_i ; video_i]` and the video
 * queries against `[text_i ; all video]`. No `[L, L]` mask or score tensor is built; query rows are
 * chunked so the largest live score block is `chunk × keys`. Every matMul is 2-D and non-transposed,
 * one per (batch, head), with K transposed once per head (the wasm fast path: benchmarks/RESULTS.md,
 * "Speed work", round 2).
 * `maskedAttentionHeads` is the same op on per-head `[L, d]` inputs, freeing each head's q, k, v once
 * used and returning the heads merged `[B, L, H·d]`: the attention layer's memory-lean path (its q, k, v
 * and output never all live at once, and no `[B, H, L, d]` transpose copy is made).
 *
 * `denseMaskedAttention` is the obviously-correct reference (explicit mask, full `[B, H, L, L]`
 * probabilities), for tests and introspection only.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError, ShapeError } from '../errors.js';
import { denseMask, maskBlocks, type MaskBlock } from '../scene/masks.js';
import { layoutTotals, numScenes, rangeLength, type SceneLayout, type TokenRange } from '../scene/layout.js';
import { matMul2d } from './math.js';
import type { ProbeScope } from './probe.js';

/** Default number of query rows per score block. */
export const DEFAULT_CHUNK_SIZE = 1024;

export interface MaskedAttentionOptions {
  /** Query rows per score block (default 1024). */
  chunkSize?: number;
  /** Probabilities are offered as `probs` in this scope (e.g. `probe.at('attention')` → `attention.probs`). */
  probe?: ProbeScope | undefined;
  /** Heads whose probabilities are captured (default all). */
  probeHeads?: number[];
  /** Capture only the query rows of this scene (its text rows, then its video rows). */
  probeScene?: number;
}

/** Validate `[B, H, L, d]` q/k/v against the layout; returns the dimensions. */
function dims(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, layout: SceneLayout): [number, number, number, number] {
  const L = layoutTotals(layout).total;
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.rank !== 4) throw new ShapeError(name, `expected [B, H, L, d], got [${t.shape}]`);
    if (t.shape[2] !== L) throw new ShapeError(name, `expected L = ${L} tokens (layout total), got [${t.shape}]`);
    if (t.shape.some((s, i) => s !== q.shape[i]))
      throw new ShapeError(name, `expected the shape of q [${q.shape}], got [${t.shape}]`);
  }
  return q.shape as [number, number, number, number];
}

/** Rows `r` of a `[L, d]` tensor gathered from several ranges: `[Σ|r|, d]`. */
function gatherRows(x: tf.Tensor, ranges: TokenRange[]): tf.Tensor {
  if (ranges.length === 1 && ranges[0]!.start === 0 && ranges[0]!.end === x.shape[0]) return x;
  const parts = ranges.map((r) => tf.slice(x, [r.start, 0], [rangeLength(r), -1]));
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
}

/** Columns `r` of a `[d, L]` tensor gathered from several ranges: `[d, Σ|r|]`. */
function gatherCols(x: tf.Tensor, ranges: TokenRange[]): tf.Tensor {
  if (ranges.length === 1 && ranges[0]!.start === 0 && ranges[0]!.end === x.shape[1]) return x;
  const parts = ranges.map((r) => tf.slice(x, [0, r.start], [-1, rangeLength(r)]));
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
}

/** Spread probabilities over gathered keys `p` `[n, Σ|r|]` into full rows `[n, L]`, zeros at masked keys. */
function scatterCols(p: tf.Tensor, ranges: TokenRange[], L: number): tf.Tensor {
  const n = p.shape[0]!;
  const parts: tf.Tensor[] = [];
  let at = 0; // next joint column to fill
  let col = 0; // next column of p
  for (const r of ranges) {
    if (r.start > at) parts.push(tf.zeros([n, r.start - at]));
    parts.push(tf.slice(p, [0, col], [-1, rangeLength(r)]));
    col += rangeLength(r);
    at = r.end;
  }
  if (at < L) parts.push(tf.zeros([n, L - at]));
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
}

/** One query block of one head: `softmax(q_blk · kT_blk) · v_blk` in row chunks; optionally its dense probability rows. */
function attendBlock(
  qs: tf.Tensor,
  kT: tf.Tensor,
  v: tf.Tensor,
  block: MaskBlock,
  chunk: number,
  denseProbs: boolean,
): { out: tf.Tensor; probs?: tf.Tensor } {
  const L = v.shape[0]!;
  const kTb = gatherCols(kT, block.keys); // [d, Lk]
  const vb = gatherRows(v, block.keys); // [Lk, d]
  const outs: tf.Tensor[] = [];
  const probs: tf.Tensor[] = [];
  for (let s = block.query.start; s < block.query.end; s += chunk) {
    const n = Math.min(chunk, block.query.end - s);
    const r = tf.tidy(() => {
      const qc = tf.slice(qs, [s, 0], [n, -1]); // [n, d]
      const p = tf.softmax(matMul2d(qc, kTb)); // [n, Lk]: the only score block alive
      const o = matMul2d(p, vb); // [n, d]
      return denseProbs ? [o, scatterCols(p, block.keys, L)] : [o];
    });
    outs.push(r[0]!);
    if (r[1] !== undefined) probs.push(r[1]);
  }
  const out = outs.length === 1 ? outs[0]! : tf.concat(outs, 0); // [|query|, d]
  if (!denseProbs) return { out };
  return { out, probs: probs.length === 1 ? probs[0]! : tf.concat(probs, 0) }; // [|query|, L]
}

/** Validated chunk size and probe selection. */
function resolveOptions(opts: MaskedAttentionOptions, H: number, layout: SceneLayout) {
  const chunk = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunk) || chunk < 1)
    throw new Mask2DiTError('OPTION', `maskedAttention: chunkSize must be an integer >= 1, got ${chunk}`);
  const wantProbs = opts.probe?.wants('probs') ?? false;
  const heads = opts.probeHeads ?? opts.probe?.attention.heads ?? Array.from({ length: H }, (_, h) => h);
  if (wantProbs && heads.some((h) => !Number.isInteger(h) || h < 0 || h >= H))
    throw new Mask2DiTError('OPTION', `maskedAttention: probeHeads must lie in [0, ${H}), got [${heads}]`);
  const scene = opts.probeScene ?? opts.probe?.attention.scene;
  if (wantProbs && scene !== undefined && !(Number.isInteger(scene) && scene >= 0 && scene < numScenes(layout))) {
    throw new Mask2DiTError(
      'OPTION',
      `maskedAttention: probeScene must lie in [0, ${numScenes(layout)}), got ${scene}`,
    );
  }
  return { chunk, wantProbs, heads, scene };
}

/** Where the per-head loop finds head `bh`'s `[L, d]` q, k, v, and what it does with them afterwards. */
interface HeadSource {
  /** Count of heads, B·H. */
  count: number;
  /** `[L, d]` q, k, v of head `bh` (b·H + h); called inside the head's tidy. */
  get(bh: number): [tf.Tensor, tf.Tensor, tf.Tensor];
  /** Called once head `bh` is done (e.g. to free its inputs). */
  done(bh: number): void;
}

/** The per-head loop: one `[L, d]` output per head (probabilities go to the probe, if it asks). */
function attendHeads(
  src: HeadSource,
  H: number,
  L: number,
  d: number,
  layout: SceneLayout,
  opts: MaskedAttentionOptions,
): tf.Tensor[] {
  const o = resolveOptions(opts, H, layout);
  const blocks = maskBlocks(layout); // already in query order
  const probBlocks = new Set(blocks.filter((b) => o.scene === undefined || b.scene === o.scene));
  const outs: tf.Tensor[] = [];
  const probs = new Map<number, tf.Tensor>(); // by b·H + h
  for (let bh = 0; bh < src.count; bh++) {
    const capture = o.wantProbs && o.heads.includes(bh % H);
    const r = tf.tidy(() => {
      const [qh, kh, vh] = src.get(bh);
      const qs = tf.mul(qh, 1 / Math.sqrt(d)); // [L, d], scaled once
      const kT = tf.transpose(kh); // [d, L], transposed once per head
      // one tidy per block: its gathered keys/values are freed before the next block gathers
      const parts = blocks.map((b) => tf.tidy(() => attendBlock(qs, kT, vh, b, o.chunk, capture && probBlocks.has(b))));
      const out = tf.concat(
        parts.map((p) => p.out),
        0,
      ); // [L, d], blocks are in query order
      const pr = parts.flatMap((p) => (p.probs !== undefined ? [p.probs] : []));
      return capture ? [out, tf.concat(pr, 0)] : [out]; // probs: [Lq, L]
    });
    src.done(bh);
    outs.push(r[0]!);
    if (r[1] !== undefined) probs.set(bh, r[1]);
  }
  if (o.wantProbs) {
    const B = src.count / H;
    const picked = Array.from({ length: B }, (_, b) => o.heads.map((h) => probs.get(b * H + h)!)).flat();
    const Lq = picked[0]!.shape[0]!;
    // probs: [B, nHeads, Lq, L]
    tf.tidy(() => opts.probe!.capture('probs', tf.reshape(tf.stack(picked), [B, o.heads.length, Lq, L])));
  }
  tf.dispose([...probs.values()]);
  return outs;
}

/**
 * Block-wise masked attention.
 * @param q `[B, H, L, d]` queries (normed, RoPE applied), L = joint sequence `[text ; video]`
 * @param k `[B, H, L, d]` keys
 * @param v `[B, H, L, d]` values
 * @returns `[B, H, L, d]`
 */
export function maskedAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  layout: SceneLayout,
  opts: MaskedAttentionOptions = {},
): tf.Tensor {
  const [B, H, L, d] = dims(q, k, v, layout);
  return tf.tidy(() => {
    const [q3, k3, v3] = [q, k, v].map((t) => tf.reshape(t, [B * H, L, d])); // [B·H, L, d]
    const head = (t: tf.Tensor, bh: number) => tf.reshape(tf.slice(t, [bh, 0, 0], [1, L, d]), [L, d]); // [L, d]
    const src: HeadSource = {
      count: B * H,
      get: (bh) => [head(q3!, bh), head(k3!, bh), head(v3!, bh)],
      done: () => {},
    };
    const outs = attendHeads(src, H, L, d, layout, opts);
    return tf.reshape(tf.stack(outs), [B, H, L, d]); // [B, H, L, d]
  });
}

/** Per-head `[L, d]` tensors of q, k and v, indexed b·H + h (see `maskedAttentionHeads`). */
export interface AttentionHeads {
  q: tf.Tensor[];
  k: tf.Tensor[];
  v: tf.Tensor[];
}

/**
 * `maskedAttention` on per-head inputs, with the heads merged: the memory-lean form used by the
 * attention layer. With `consume`, each head's q, k, v are disposed as soon as that head is done,
 * so the inputs shrink while the outputs grow (q, k, v and the outputs never all live at once).
 * Same values as `maskedAttention` followed by the `[B, H, L, d]` → `[B, L, H·d]` merge.
 * @param heads B·H tensors each of q, k, v, `[L, d]`, index b·H + h
 * @returns `[B, L, H·d]`
 */
export function maskedAttentionHeads(
  heads: AttentionHeads,
  layout: SceneLayout,
  H: number,
  opts: MaskedAttentionOptions & { consume?: boolean } = {},
): tf.Tensor {
  const n = heads.q.length;
  const L = layoutTotals(layout).total;
  const d = heads.q[0]?.shape[1] ?? 0;
  if (n === 0 || n % H !== 0 || heads.k.length !== n || heads.v.length !== n)
    throw new ShapeError(
      'heads',
      `expected B·${H} tensors each of q, k, v, got ${heads.q.length}, ${heads.k.length}, ${heads.v.length}`,
    );
  for (const t of [...heads.q, ...heads.k, ...heads.v])
    if (t.rank !== 2 || t.shape[0] !== L || t.shape[1] !== d)
      throw new ShapeError('heads', `expected [${L}, ${d}] per head (layout total ${L}), got [${t.shape}]`);
  const src: HeadSource = {
    count: n,
    get: (bh) => [heads.q[bh]!, heads.k[bh]!, heads.v[bh]!],
    done: (bh) => (opts.consume === true ? tf.dispose([heads.q[bh]!, heads.k[bh]!, heads.v[bh]!]) : undefined),
  };
  const outs = attendHeads(src, H, L, d, layout, opts);
  const B = n / H;
  const rows = Array.from({ length: B }, (_, b) => {
    const mine = outs.slice(b * H, (b + 1) * H);
    const merged = tf.concat(mine, 1); // [L, H·d]
    tf.dispose(mine);
    return merged;
  });
  const out = tf.stack(rows); // [B, L, H·d]
  tf.dispose(rows);
  return out;
}

/**
 * Dense reference: explicit boolean mask, full softmax; size-guarded by `maxTokens`.
 * @returns out `[B, H, L, d]` and probs `[B, H, L, L]` (zeros at masked keys)
 */
export function denseMaskedAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  layout: SceneLayout,
  maxTokens = 4096,
): { out: tf.Tensor; probs: tf.Tensor } {
  const [, , L, d] = dims(q, k, v, layout);
  const allowed = denseMask(layout, maxTokens); // [L, L], row = query
  return tf.tidy(() => {
    const mask = tf.tensor2d(allowed, [L, L], 'bool'); // [L, L]
    const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)); // [B, H, L, L]
    const masked = tf.where(mask, scores, tf.fill(scores.shape, -Infinity)); // [B, H, L, L]
    const probs = tf.softmax(masked); // [B, H, L, L]
    return { out: tf.matMul(probs, v), probs };
  });
}

/** Bytes of the largest score block `maskedAttention` holds at once (float32 `[rows, keys]`, one head). */
export function peakScoreBytes(layout: SceneLayout, chunkSize = DEFAULT_CHUNK_SIZE): number {
  const sizes = maskBlocks(layout).map(
    (b) => Math.min(chunkSize, rangeLength(b.query)) * b.keys.reduce((n, r) => n + rangeLength(r), 0),
  );
  return 4 * Math.max(...sizes);
}

/** Bytes of one head's dense `[L, L]` float32 score matrix, for comparison with `peakScoreBytes`. */
export function denseScoreBytes(layout: SceneLayout): number {
  const L = layoutTotals(layout).total;
  return 4 * L * L;
}
