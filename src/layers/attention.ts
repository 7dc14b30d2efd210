/**
 * CogVideoX's joint attention `attn1`, under Mask²DiT's dual mask.
 *
 *   x = [text ; video]                       [B, L, D]
 *   q, k, v = to_q(x), to_k(x), to_v(x)      [B, L, H·d]
 *   q, k = norm_q(q), norm_k(k)              LayerNorm over d, one set of parameters for all heads
 *   split heads                              B·H tensors [L, d]
 *   q, k = RoPE on the video rows only       rows Lt .. L (text rows: cos 1, sin 0)
 *   o = maskedAttentionHeads(q, k, v)        [B, L, H·d], heads merged
 *   y = to_out.0(o)                          [B, L, D] → split back into text and video
 *
 * Memory: q, k and v go straight from the projection to per-head `[L, d]` tensors (no `[B, H, L, d]`
 * transpose copy), RoPE runs per head, and the attention frees each head's q, k, v once used, so the
 * layer's peak is the third projection: x, q, k and the projection's two temporaries, 5 `[B, L, D]`.
 *
 * Reference: diffusers `CogVideoXAttnProcessor2_0` (attention_processor.py) and Mask2DiT
 * `CogVideoXAttnProcessor2_2` (videox_fun/models/cogvideox_transformer3d.py, commit 36bbe26).
 * Probe names, in the layer's scope: `q`, `k`, `v` `[B, H, L, d]`, `probs` `[B, H, L, L]`, `out` `[B, L, H·d]`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import { Container, M2Layer } from './layer.js';
import { LayerNorm } from './layerNorm.js';
import { Linear } from './linear.js';
import { maskedAttentionHeads } from './maskedAttention.js';
import { applyRope, consume, layerNormPlain } from './math.js';
import type { WeightSource } from './weightSource.js';
import type { ProbeScope } from './probe.js';
import { layoutTotals, type SceneLayout } from '../scene/layout.js';
import type { ScenePlan } from '../scene/plan.js';

export interface AttentionConfig {
  /** Token width D (`query_dim`). */
  dim: number;
  heads: number;
  /** Per-head width d (`dim_head`). */
  headDim: number;
  /** Epsilon of norm_q / norm_k (1e-6 in CogVideoX). */
  qkNormEps: number;
  /** Bias of to_q / to_k / to_v. */
  bias: boolean;
  /** Bias of to_out.0. */
  outBias: boolean;
}

/**
 * What the attention needs of a forward's scene plan (src/scene/plan.ts): the token layout and the
 * query chunking (rows per score block of the masked attention). Passed on as one value.
 */
export type AttentionPlan = Pick<ScenePlan, 'layout' | 'chunkSize'>;

/** The attention part of `plan` (a ScenePlan, or any inputs that carry one). */
export function attentionPlan(plan: AttentionPlan): AttentionPlan {
  return { layout: plan.layout, ...(plan.chunkSize !== undefined ? { chunkSize: plan.chunkSize } : {}) };
}

export interface AttentionInputs extends AttentionPlan {
  /** Video tokens `[B, Lv, D]`. */
  hidden: tf.Tensor;
  /** Text tokens `[B, Lt, D]`. */
  encoderHidden: tf.Tensor;
  /** RoPE tables for the video tokens, `[Lv, headDim]` each. */
  rope?: { cos: tf.Tensor; sin: tf.Tensor };
  /** The probe at this layer, e.g. `probe.at('block.0.attn1')` (names: see the file header). */
  probe?: ProbeScope | undefined;
}

/** Text and video outputs `[B, Lt, D]`, `[B, Lv, D]`. */
export interface AttentionOutputs {
  hidden: tf.Tensor;
  encoderHidden: tf.Tensor;
}

/** CogVideoX attention layer (`attn1`) with per-head q/k LayerNorm, video-only RoPE and the Mask²DiT mask. */
export class Attention extends M2Layer {
  static readonly className = 'M2Attention';
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly normQ: LayerNorm;
  readonly normK: LayerNorm;
  readonly toOut: Linear;

  constructor(
    readonly config: AttentionConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'attn1');
    const { dim, heads, headDim, qkNormEps, bias, outBias } = config;
    const inner = heads * headDim;
    const proj = { inFeatures: dim, outFeatures: inner, bias };
    const qkNorm = { dim: headDim, eps: qkNormEps, elementwiseAffine: true, bias: true };
    this.toQ = this.child('to_q', new Linear(proj, ws.pp('to_q')));
    this.toK = this.child('to_k', new Linear(proj, ws.pp('to_k')));
    this.toV = this.child('to_v', new Linear(proj, ws.pp('to_v')));
    this.normQ = this.child('norm_q', new LayerNorm(qkNorm, ws.pp('norm_q')));
    this.normK = this.child('norm_k', new LayerNorm(qkNorm, ws.pp('norm_k')));
    const toOut = this.child('to_out', new Container(ws.pp('to_out').prefix));
    this.toOut = toOut.add(
      '0',
      new Linear({ inFeatures: inner, outFeatures: dim, bias: outBias }, ws.pp('to_out').pp(0)),
    );
  }

  /**
   * One projection as per-head tensors: `to(x)` `[B, L, H·d]`, the per-head LayerNorm, then B·H
   * tensors `[L, d]` (index b·H + h), each rotated by `rope` (joint `[L, d]` tables) when given.
   */
  private heads(to: Linear, x: tf.Tensor, norm?: LayerNorm, rope?: RopeTables): tf.Tensor[] {
    let y = to.forward(x); // [B, L, H·d]
    if (norm !== undefined) y = consume(y, (u) => headNorm(u, norm, this.config.heads));
    const heads = splitHeads(y, this.config.heads); // B·H × [L, d]
    y.dispose();
    return rope === undefined
      ? heads
      : heads.map((h) => consume(h, (u) => tf.tidy(() => applyRope(u, rope.cos, rope.sin))));
  }

  forward(args: AttentionInputs): AttentionOutputs {
    const { hidden, encoderHidden, layout, rope, probe } = args;
    const { Lt, Lv } = this.checkShapes(hidden, encoderHidden, layout, rope);
    const { heads: H } = this.config;
    const B = hidden.shape[0]!;
    return tf.tidy(() => {
      // 1. project the joint sequence straight into per-head q, k, v (q, k normed and rotated)
      const x = tf.concat([encoderHidden, hidden], 1); // [B, L, D], text first
      const table = rope === undefined ? undefined : jointRope(rope, Lt); // [L, d] each
      const q = this.heads(this.toQ, x, this.normQ, table);
      const k = this.heads(this.toK, x, this.normK, table);
      const v = this.heads(this.toV, x);
      tf.dispose([x, table?.cos, table?.sin].filter((t): t is tf.Tensor => t !== undefined));
      for (const [n, t] of [
        ['q', q],
        ['k', k],
        ['v', v],
      ] as const)
        if (probe?.wants(n) === true) tf.tidy(() => probe.capture(n, stackHeads(t, B, H))); // [B, H, L, d]

      // 2. masked attention (each head's q, k, v freed once used), heads merged, output projection
      const merged = maskedAttentionHeads({ q, k, v }, layout, H, {
        consume: true,
        probe,
        ...(args.chunkSize !== undefined ? { chunkSize: args.chunkSize } : {}),
      }); // [B, L, H·d]
      probe?.capture('out', merged);
      const y = this.toOut.forward(merged); // [B, L, D]
      merged.dispose();

      // 3. split back into the two streams
      return {
        encoderHidden: tf.slice(y, [0, 0, 0], [-1, Lt, -1]), // [B, Lt, D]
        hidden: tf.slice(y, [0, Lt, 0], [-1, Lv, -1]), // [B, Lv, D]
      };
    });
  }

  private checkShapes(
    hidden: tf.Tensor,
    encoderHidden: tf.Tensor,
    layout: SceneLayout,
    rope: AttentionInputs['rope'],
  ): { Lt: number; Lv: number } {
    const D = this.config.dim;
    if (hidden.rank !== 3 || hidden.shape[2] !== D)
      throw new ShapeError('hidden_states', `expected [B, Lv, ${D}], got [${hidden.shape}]`);
    if (encoderHidden.rank !== 3 || encoderHidden.shape[2] !== D || encoderHidden.shape[0] !== hidden.shape[0]) {
      throw new ShapeError(
        'encoder_hidden_states',
        `expected [${hidden.shape[0]}, Lt, ${D}], got [${encoderHidden.shape}]`,
      );
    }
    const Lt = encoderHidden.shape[1]!;
    const Lv = hidden.shape[1]!;
    const { textTotal, videoTotal } = layoutTotals(layout);
    if (Lt !== textTotal)
      throw new ShapeError('encoder_hidden_states', `layout has ${textTotal} text tokens, tensor has ${Lt}`);
    if (Lv !== videoTotal)
      throw new ShapeError('hidden_states', `layout has ${videoTotal} video tokens, tensor has ${Lv}`);
    const want = [Lv, this.config.headDim];
    for (const [n, t] of rope !== undefined
      ? ([
          ['rope.cos', rope.cos],
          ['rope.sin', rope.sin],
        ] as const)
      : []) {
      if (t.rank !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1])
        throw new ShapeError(n, `expected [${want}], got [${t.shape}]`);
    }
    return { Lt, Lv };
  }

  /** tfjs-layers adapter for one scene: `apply([hidden, encoderHidden])` → `[hidden, encoderHidden]`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const [hidden, encoderHidden] = inputs as tf.Tensor[];
    const layout = { text: [encoderHidden!.shape[1]!], video: [hidden!.shape[1]!] };
    const o = this.forward({ hidden: hidden!, encoderHidden: encoderHidden!, layout });
    return [o.hidden, o.encoderHidden];
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape[] {
    const shapes = s as tfl.Shape[];
    return [shapes[0]!, shapes[1]!];
  }
}
tf.serialization.registerClass(Attention, 'Mask2DiT');

/** RoPE tables `[rows, d]`. */
interface RopeTables {
  cos: tf.Tensor;
  sin: tf.Tensor;
}

/**
 * The video tables `[Lv, d]` extended to the joint sequence `[L, d]`: text rows get cos 1, sin 0, so
 * `applyRope` passes them through (x·1 + rot(x)·0 = x) and one call rotates a whole head.
 */
export function jointRope(rope: RopeTables, Lt: number): RopeTables {
  return tf.tidy(() => {
    const d = rope.cos.shape[1]!;
    return { cos: tf.concat([tf.ones([Lt, d]), rope.cos], 0), sin: tf.concat([tf.zeros([Lt, d]), rope.sin], 0) }; // [L, d]
  });
}

/** LayerNorm over d of every head of `y` `[B, L, H·d]` (norm_q / norm_k), one temporary at a time. */
function headNorm(y: tf.Tensor, norm: LayerNorm, H: number): tf.Tensor {
  const [B, L, HD] = y.shape as [number, number, number];
  let t = consume(tf.reshape(y, [B, L, H, HD / H]), (u) => layerNormPlain(u, norm.config.eps)); // [B, L, H, d]; the view freed, or it keeps y's data
  if (norm.weight !== undefined) t = consume(t, (u) => tf.mul(u, norm.weight!));
  if (norm.bias !== undefined) t = consume(t, (u) => tf.add(u, norm.bias!));
  return consume(t, (u) => tf.reshape(u, [B, L, HD])); // [B, L, H·d]
}

/** `[B, L, H·d]` → B·H tensors `[L, d]`, index b·H + h (copies only the parts: src/backend/wasmSlice.ts). */
export function splitHeads(y: tf.Tensor, H: number): tf.Tensor[] {
  const [B, L, HD] = y.shape as [number, number, number];
  const out: tf.Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const row =
      B === 1 ? tf.reshape(y, [L, HD]) : tf.tidy(() => tf.reshape(tf.slice(y, [b, 0, 0], [1, L, HD]), [L, HD])); // [L, H·d]
    out.push(...tf.split(row, H, 1)); // H × [L, d]
    row.dispose();
  }
  return out;
}

/** B·H tensors `[L, d]` → `[B, H, L, d]` (for probes). */
function stackHeads(heads: tf.Tensor[], B: number, H: number): tf.Tensor {
  const [L, d] = heads[0]!.shape as [number, number];
  return tf.reshape(tf.stack(heads), [B, H, L, d]);
}
