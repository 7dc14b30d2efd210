/**
 * CogVideoX's joint attention `attn1`, under Mask²DiT's dual mask.
 *
 *   x = [text ; video]                       [B, L, D]
 *   q, k, v = to_q(x), to_k(x), to_v(x)      split heads → [B, H, L, d]
 *   q, k = norm_q(q), norm_k(k)              LayerNorm over d, one set of parameters for all heads
 *   q, k = RoPE on the video rows only       rows Lt .. L
 *   o = maskedAttention(q, k, v, layout)     [B, H, L, d]
 *   y = to_out.0(merge heads(o))             [B, L, D] → split back into text and video
 *
 * Reference: diffusers `CogVideoXAttnProcessor2_0` (attention_processor.py) and Mask2DiT
 * `CogVideoXAttnProcessor2_2` (videox_fun/models/cogvideox_transformer3d.py, commit 36bbe26).
 * Probe names (under `name`): `.q`, `.k`, `.v` `[B, H, L, d]`, `.probs` `[B, H, L, L]`, `.out` `[B, L, H·d]`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../errors.js';
import { Container, M2Layer } from './layer.js';
import { LayerNorm } from './layerNorm.js';
import { Linear } from './linear.js';
import { maskedAttention } from './maskedAttention.js';
import { applyRope, consume } from './math.js';
import type { WeightSource } from './weightSource.js';
import { layoutTotals, type SceneLayout } from '../model/sceneLayout.js';
import type { Probe } from '../model/probe.js';

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

export interface AttentionInputs {
  /** Video tokens `[B, Lv, D]`. */
  hidden: tf.Tensor;
  /** Text tokens `[B, Lt, D]`. */
  encoderHidden: tf.Tensor;
  layout: SceneLayout;
  /** RoPE tables for the video tokens, `[Lv, headDim]` each. */
  rope?: { cos: tf.Tensor; sin: tf.Tensor };
  probe?: Probe;
  /** Probe prefix, e.g. `block.0.attn1` (default: the layer's name). */
  name?: string;
  /** Query rows per score block of the masked attention. */
  chunkSize?: number;
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
    this.toOut = toOut.add('0', new Linear({ inFeatures: inner, outFeatures: dim, bias: outBias }, ws.pp('to_out').pp(0)));
  }

  /** `[B, L, H·d]` → `[B, H, L, d]`. */
  private splitHeads(x: tf.Tensor): tf.Tensor {
    const [B, L] = x.shape as [number, number, number];
    const { heads: H, headDim: d } = this.config;
    return tf.transpose(tf.reshape(x, [B, L, H, d]), [0, 2, 1, 3]); // [B, H, L, d]
  }

  forward(args: AttentionInputs): AttentionOutputs {
    const { hidden, encoderHidden, layout, rope, probe, name = this.name } = args;
    const { Lt, Lv } = this.checkShapes(hidden, encoderHidden, layout, rope);
    return tf.tidy(() => {
      // 1. project the joint sequence; each projection in its own scope, so only q, k, v stay alive
      const x = tf.concat([encoderHidden, hidden], 1); // [B, L, D], text first
      const project = (to: Linear, norm?: LayerNorm) => {
        let t = tf.tidy(() => this.splitHeads(to.forward(x))); // [B, H, L, d]
        if (norm !== undefined) t = consume(t, (u) => tf.tidy(() => norm.forward(u)));
        return t;
      };
      // 2. RoPE on the video rows of q and k
      const rotate = (t: tf.Tensor) => (rope === undefined ? t : consume(t, (u) => tf.tidy(() => ropeVideoRows(u, Lt, rope))));
      const q = rotate(project(this.toQ, this.normQ));
      const k = rotate(project(this.toK, this.normK));
      const v = project(this.toV);
      x.dispose();
      probe?.capture(`${name}.q`, q);
      probe?.capture(`${name}.k`, k);
      probe?.capture(`${name}.v`, v);

      // 3. masked attention, merge heads, output projection (each input freed once used)
      const o = maskedAttention(q, k, v, layout, {
        probeName: name,
        ...(probe !== undefined ? { probe } : {}),
        ...(args.chunkSize !== undefined ? { chunkSize: args.chunkSize } : {}),
      }); // [B, H, L, d]
      tf.dispose([q, k, v]);
      const [B, H, L, d] = o.shape as [number, number, number, number];
      const merged = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, L, H * d]); // [B, L, H·d]
      o.dispose();
      probe?.capture(`${name}.out`, merged);
      const y = this.toOut.forward(merged); // [B, L, D]
      merged.dispose();

      // 4. split back into the two streams
      return {
        encoderHidden: tf.slice(y, [0, 0, 0], [-1, Lt, -1]), // [B, Lt, D]
        hidden: tf.slice(y, [0, Lt, 0], [-1, Lv, -1]), // [B, Lv, D]
      };
    });
  }

  private checkShapes(hidden: tf.Tensor, encoderHidden: tf.Tensor, layout: SceneLayout, rope: AttentionInputs['rope']): { Lt: number; Lv: number } {
    const D = this.config.dim;
    if (hidden.rank !== 3 || hidden.shape[2] !== D) throw new ShapeError('hidden_states', `expected [B, Lv, ${D}], got [${hidden.shape}]`);
    if (encoderHidden.rank !== 3 || encoderHidden.shape[2] !== D || encoderHidden.shape[0] !== hidden.shape[0]) {
      throw new ShapeError('encoder_hidden_states', `expected [${hidden.shape[0]}, Lt, ${D}], got [${encoderHidden.shape}]`);
    }
    const Lt = encoderHidden.shape[1]!;
    const Lv = hidden.shape[1]!;
    const { textTotal, videoTotal } = layoutTotals(layout);
    if (Lt !== textTotal) throw new ShapeError('encoder_hidden_states', `layout has ${textTotal} text tokens, tensor has ${Lt}`);
    if (Lv !== videoTotal) throw new ShapeError('hidden_states', `layout has ${videoTotal} video tokens, tensor has ${Lv}`);
    const want = [Lv, this.config.headDim];
    for (const [n, t] of rope !== undefined ? ([['rope.cos', rope.cos], ['rope.sin', rope.sin]] as const) : []) {
      if (t.rank !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) throw new ShapeError(n, `expected [${want}], got [${t.shape}]`);
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

/** Apply RoPE to rows `Lt ..` of `x` `[B, H, L, d]` (the video tokens); text rows pass through. */
export function ropeVideoRows(x: tf.Tensor, Lt: number, rope: { cos: tf.Tensor; sin: tf.Tensor }): tf.Tensor {
  const text = tf.slice(x, [0, 0, 0, 0], [-1, -1, Lt, -1]); // [B, H, Lt, d]
  const video = tf.slice(x, [0, 0, Lt, 0], [-1, -1, -1, -1]); // [B, H, Lv, d]
  return tf.concat([text, applyRope(video, rope.cos, rope.sin)], 2); // [B, H, L, d]
}
