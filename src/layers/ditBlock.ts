/**
 * The Mask²DiT / CogVideoX MM-DiT block (`transformer_blocks.<i>`): text and video streams share one
 * attention and one MLP over `[text; video]`, each sub-layer wrapped by an expert adaLN (LayerNormZero)
 * and gated residuals.
 *
 *   1. norm1 → (h', e', gate, enc_gate);  attn1([e'; h']) → (a_h, a_e);  h += gate·a_h;  e += enc_gate·a_e
 *   2. norm2 → (h', e', gate, enc_gate);  ff([e'; h']) → f;              h += gate·f_video;  e += enc_gate·f_text
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { M2Layer } from './layer.js';
import { LayerNormZero, type SegmentCondition } from './adaLayerNorm.js';
import { Attention, attentionPlan, type AttentionPlan } from './attention.js';
import { FeedForward } from './feedForward.js';
import type { WeightSource } from './weightSource.js';
import type { ProbeScope } from './probe.js';

export interface DiTBlockConfig {
  /** Token width D = heads · headDim. */
  dim: number;
  heads: number;
  headDim: number;
  /** Timestep-embedding width. */
  timeEmbedDim: number;
  normEps: number;
  normElementwiseAffine: boolean;
  attentionBias: boolean;
  /** MLP hidden width (4·D in CogVideoX). */
  ffInnerDim: number;
}

/** The block's inputs; `layout` and `chunkSize` are the scene plan's (`AttentionPlan`), passed on to attn1. */
export interface DiTBlockInputs extends AttentionPlan {
  /** Video tokens `[B, Lv, D]`. */
  hidden: tf.Tensor;
  /** Text tokens `[B, Lt, D]`. */
  encoderHidden: tf.Tensor;
  /** Timestep embedding `[B, E]`. */
  temb: tf.Tensor;
  /** RoPE tables for the video tokens, `[Lv, headDim]` each. */
  rope?: { cos: tf.Tensor; sin: tf.Tensor };
  /** Segment-level conditional mask (scene extension). */
  cond?: SegmentCondition;
  /**
   * The probe at this block, e.g. `probe.at('block.3')`: captures `attn1.{hidden_states,encoder_hidden_states}`,
   * `ff.out`, `{hidden_states,encoder_hidden_states}`; the sub-layers capture under `norm1`, `attn1`, `norm2`.
   */
  probe?: ProbeScope | undefined;
}

export class DiTBlock extends M2Layer {
  static readonly className = 'M2DiTBlock';
  readonly norm1: LayerNormZero;
  readonly attn1: Attention;
  readonly norm2: LayerNormZero;
  readonly ff: FeedForward;

  constructor(
    readonly config: DiTBlockConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'transformer_block');
    const c = config;
    const ada = {
      dim: c.dim,
      conditioningDim: c.timeEmbedDim,
      eps: c.normEps,
      elementwiseAffine: c.normElementwiseAffine,
    };
    this.norm1 = this.child('norm1', new LayerNormZero(ada, ws.pp('norm1')));
    this.attn1 = this.child(
      'attn1',
      new Attention(
        { dim: c.dim, heads: c.heads, headDim: c.headDim, qkNormEps: 1e-6, bias: c.attentionBias, outBias: true },
        ws.pp('attn1'),
      ),
    );
    this.norm2 = this.child('norm2', new LayerNormZero(ada, ws.pp('norm2')));
    this.ff = this.child('ff', new FeedForward({ dim: c.dim, innerDim: c.ffInnerDim, bias: true }, ws.pp('ff')));
  }

  forward(args: DiTBlockInputs): { hidden: tf.Tensor; encoderHidden: tf.Tensor } {
    const { temb, rope, cond, probe } = args;
    const h0 = args.hidden;
    const e0 = args.encoderHidden;
    const Lt = e0.shape[1]!;
    const condArgs = cond !== undefined ? { cond } : {};

    // 1. attention (its own scope: only the two residual sums leave it)
    const [h1, e1] = tf.tidy(() => {
      const n1 = this.norm1.forward({
        hidden: h0,
        encoderHidden: e0,
        temb,
        ...condArgs,
        probe: probe?.at('norm1'),
      });
      const a = this.attn1.forward({
        hidden: n1.hidden,
        encoderHidden: n1.encoderHidden,
        ...attentionPlan(args),
        ...(rope !== undefined ? { rope } : {}),
        probe: probe?.at('attn1'),
      });
      probe?.capture('attn1.hidden_states', a.hidden);
      probe?.capture('attn1.encoder_hidden_states', a.encoderHidden);
      return [tf.add(h0, tf.mul(n1.gate, a.hidden)), tf.add(e0, tf.mul(n1.encGate, a.encoderHidden))];
    }) as [tf.Tensor, tf.Tensor];

    // 2. feed-forward on [text; video]
    const out = tf.tidy(() => {
      const n2 = this.norm2.forward({
        hidden: h1,
        encoderHidden: e1,
        temb,
        ...condArgs,
        probe: probe?.at('norm2'),
      });
      const f = this.ff.forward(tf.concat([n2.encoderHidden, n2.hidden], 1)); // [B, Lt + Lv, D]
      probe?.capture('ff.out', f);
      const fText = tf.slice(f, [0, 0, 0], [-1, Lt, -1]); // [B, Lt, D]
      const fVideo = tf.slice(f, [0, Lt, 0], [-1, -1, -1]); // [B, Lv, D]
      const h = tf.add(h1, tf.mul(n2.gate, fVideo));
      const e = tf.add(e1, tf.mul(n2.encGate, fText));
      probe?.capture('hidden_states', h);
      probe?.capture('encoder_hidden_states', e);
      return { hidden: h, encoderHidden: e };
    });
    tf.dispose([h1, e1]);
    return out;
  }

  /** tfjs-layers adapter for single-scene use: `apply([hidden, encoderHidden, temb])` → `[hidden, encoderHidden]`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const [hidden, encoderHidden, temb] = inputs as tf.Tensor[];
    const layout = { text: [encoderHidden!.shape[1]!], video: [hidden!.shape[1]!] };
    const o = this.forward({ hidden: hidden!, encoderHidden: encoderHidden!, temb: temb!, layout });
    return [o.hidden, o.encoderHidden];
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape[] {
    const shapes = s as tfl.Shape[];
    return [shapes[0]!, shapes[1]!];
  }
}
tf.serialization.registerClass(DiTBlock, 'Mask2DiT');
