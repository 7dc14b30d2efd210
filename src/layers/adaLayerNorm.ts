/**
 * Adaptive LayerNorms driven by the timestep embedding.
 *
 * - `LayerNormZero` (CogVideoX's "expert" adaLN, `norm1`/`norm2` of every block): one Linear on
 *   SiLU(temb) gives six chunks `[shift, scale, gate, enc_shift, enc_scale, enc_gate]`; one LayerNorm
 *   is shared by both streams; video gets `LN(h)(1+scale)+shift`, text `LN(e)(1+enc_scale)+enc_shift`.
 * - `AdaLayerNorm` (`norm_out`): `[shift | scale]` (shift first) from SiLU(temb), video only.
 *
 * Mask²DiT's segment-level conditional mask: with a target segment (`clip_idx`), the target scene's
 * tokens take their modulation from `temb` and every other scene's tokens from `tembCond` (the
 * conditioning timestep's embedding, `[1, E]`, broadcast over the batch), as the reference does in
 * every block and in the output norm.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { M2Layer } from './layer.js';
import { LayerNorm } from './layerNorm.js';
import { Linear } from './linear.js';
import { silu } from './math.js';
import type { WeightSource } from './weightSource.js';
import type { ProbeScope } from './probe.js';
import {
  numScenes,
  rangeLength,
  textStreamRange,
  videoStreamRange,
  type SceneLayout,
  type TokenRange,
} from '../scene/layout.js';

/** Which tokens are the target segment: per-scene ranges in each stream plus the target scene index. */
export interface SegmentCondition {
  /** Embedding of the conditioning timestep, `[1 | B, E]`. */
  tembCond: tf.Tensor;
  /** Target scene (`clip_idx`). */
  target: number;
  /** Per scene, its tokens in the text stream. */
  textRanges: TokenRange[];
  /** Per scene, its tokens in the video stream. */
  videoRanges: TokenRange[];
}

/** The segment condition of target scene `target` of `layout`: every scene's stream ranges, from the layout. */
export function segmentCondition(layout: SceneLayout, target: number, tembCond: tf.Tensor): SegmentCondition {
  const perScene = (range: (l: SceneLayout, i: number) => TokenRange) =>
    Array.from({ length: numScenes(layout) }, (_, i) => range(layout, i));
  return { tembCond, target, textRanges: perScene(textStreamRange), videoRanges: perScene(videoStreamRange) };
}

export interface AdaNormConfig {
  /** Token width D. */
  dim: number;
  /** Timestep-embedding width E. */
  conditioningDim: number;
  eps: number;
  elementwiseAffine: boolean;
}

/**
 * Apply `fn(slice, role)` to each scene's range of `x` `[B, L, D]` and join the results in order:
 * role is 'target' for the target scene, 'cond' for the rest.
 */
function perSegment(
  x: tf.Tensor,
  ranges: TokenRange[],
  target: number,
  fn: (slice: tf.Tensor, role: 'target' | 'cond') => tf.Tensor,
): tf.Tensor {
  const parts = ranges.map((r, i) => fn(tokens(x, r), i === target ? 'target' : 'cond'));
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
}

/** The tokens of `x` `[B, L, D]` outside the target range, joined in scene order (for probe captures). */
function condTokens(x: tf.Tensor, ranges: TokenRange[], target: number): tf.Tensor {
  return tf.concat(
    ranges.filter((_, i) => i !== target).map((r) => tokens(x, r)),
    1,
  );
}

/** The tokens `r` of `x` `[B, L, D]`: `[B, |r|, D]`. */
const tokens = (x: tf.Tensor, r: TokenRange) => tf.slice(x, [0, r.start, 0], [-1, rangeLength(r), -1]);

const expand = (t: tf.Tensor) => tf.expandDims(t, 1); // [B, D] -> [B, 1, D]

/** Output of a LayerNormZero: the two modulated streams and their gates (`[B, 1, D]` or per token `[B, L, D]`). */
export interface ZeroNormOut {
  hidden: tf.Tensor;
  encoderHidden: tf.Tensor;
  gate: tf.Tensor;
  encGate: tf.Tensor;
}

export class LayerNormZero extends M2Layer {
  static readonly className = 'M2LayerNormZero';
  readonly linear: Linear;
  readonly norm: LayerNorm;

  constructor(
    readonly config: AdaNormConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'norm');
    const D = config.dim;
    this.linear = this.child(
      'linear',
      new Linear({ inFeatures: config.conditioningDim, outFeatures: 6 * D, bias: true }, ws.pp('linear')),
    );
    this.norm = this.child(
      'norm',
      new LayerNorm(
        { dim: D, eps: config.eps, elementwiseAffine: config.elementwiseAffine, bias: true },
        ws.pp('norm'),
      ),
    );
  }

  /** Six `[b, D]` chunks from `temb` `[b, E]`. */
  private chunks(temb: tf.Tensor): tf.Tensor[] {
    return tf.split(this.linear.forward(silu(temb)), 6, 1); // [shift, scale, gate, enc_shift, enc_scale, enc_gate]
  }

  /**
   * @param hidden        video tokens `[B, Lv, D]`
   * @param encoderHidden text tokens `[B, Lt, D]`
   * @param temb          `[B, E]`
   * @param probe         at this norm: `hidden_states`, `encoder_hidden_states`, `gate`, `enc_gate`
   *                      (under `cond`: `call0.*` for the target tokens, `call1.*` for the others)
   */
  forward(args: {
    hidden: tf.Tensor;
    encoderHidden: tf.Tensor;
    temb: tf.Tensor;
    cond?: SegmentCondition;
    probe?: ProbeScope | undefined;
  }): ZeroNormOut {
    const { hidden, encoderHidden, temb, cond, probe } = args;
    return tf.tidy(() => {
      const [sh, sc, g, esh, esc, eg] = this.chunks(temb) as [
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
      ];
      const mod = (x: tf.Tensor, shift: tf.Tensor, scale: tf.Tensor) =>
        tf.add(tf.mul(this.norm.forward(x), tf.add(1, expand(scale))), expand(shift));
      if (cond === undefined) {
        const out = {
          hidden: mod(hidden, sh, sc),
          encoderHidden: mod(encoderHidden, esh, esc),
          gate: expand(g),
          encGate: expand(eg),
        };
        if (probe !== undefined) {
          probe.capture('hidden_states', out.hidden);
          probe.capture('encoder_hidden_states', out.encoderHidden);
          probe.capture('gate', out.gate);
          probe.capture('enc_gate', out.encGate);
        }
        return out;
      }
      const [csh, csc, cg, cesh, cesc, ceg] = this.chunks(cond.tembCond) as [
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
      ];
      const B = hidden.shape[0]!;
      const D = this.config.dim;
      const gateFor = (x: tf.Tensor, t: tf.Tensor, c: tf.Tensor, role: 'target' | 'cond') =>
        tf.broadcastTo(expand(role === 'target' ? t : c), [B, x.shape[1]!, D]);
      const out = {
        hidden: perSegment(hidden, cond.videoRanges, cond.target, (x, r) =>
          r === 'target' ? mod(x, sh, sc) : mod(x, csh, csc),
        ),
        encoderHidden: perSegment(encoderHidden, cond.textRanges, cond.target, (x, r) =>
          r === 'target' ? mod(x, esh, esc) : mod(x, cesh, cesc),
        ),
        gate: perSegment(hidden, cond.videoRanges, cond.target, (x, r) => gateFor(x, g, cg, r)), // [B, Lv, D]
        encGate: perSegment(encoderHidden, cond.textRanges, cond.target, (x, r) => gateFor(x, eg, ceg, r)), // [B, Lt, D]
      };
      if (probe !== undefined) {
        // The reference runs the norm twice: call0 on the target tokens, call1 on all others in scene order.
        probe.capture('call0.hidden_states', tokens(out.hidden, cond.videoRanges[cond.target]!));
        probe.capture('call0.encoder_hidden_states', tokens(out.encoderHidden, cond.textRanges[cond.target]!));
        probe.capture('call0.gate', expand(g));
        probe.capture('call0.enc_gate', expand(eg));
        if (cond.videoRanges.length > 1) {
          probe.capture('call1.hidden_states', condTokens(out.hidden, cond.videoRanges, cond.target));
          probe.capture('call1.encoder_hidden_states', condTokens(out.encoderHidden, cond.textRanges, cond.target));
          probe.capture('call1.gate', expand(cg));
          probe.capture('call1.enc_gate', expand(ceg));
        }
      }
      return out;
    });
  }

  /** tfjs-layers adapter: `apply([hidden, encoderHidden, temb])` → `[hidden, encoderHidden, gate, encGate]`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const [hidden, encoderHidden, temb] = inputs as tf.Tensor[];
    const o = this.forward({ hidden: hidden!, encoderHidden: encoderHidden!, temb: temb! });
    return [o.hidden, o.encoderHidden, o.gate, o.encGate];
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return s;
  }
}
tf.serialization.registerClass(LayerNormZero, 'Mask2DiT');

/** `norm_out`: `LN(h)(1+scale)+shift` with `[shift | scale]` from SiLU(temb) (shift first, as the reference). */
export class AdaLayerNorm extends M2Layer {
  static readonly className = 'M2AdaLayerNorm';
  readonly linear: Linear;
  readonly norm: LayerNorm;

  constructor(
    readonly config: AdaNormConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'norm_out');
    this.linear = this.child(
      'linear',
      new Linear({ inFeatures: config.conditioningDim, outFeatures: 2 * config.dim, bias: true }, ws.pp('linear')),
    );
    this.norm = this.child(
      'norm',
      new LayerNorm(
        { dim: config.dim, eps: config.eps, elementwiseAffine: config.elementwiseAffine, bias: true },
        ws.pp('norm'),
      ),
    );
  }

  /**
   * @param hidden video tokens `[B, Lv, D]`; cond: only `tembCond`, `target`, `videoRanges` are used.
   * @param probe  at this norm: `out` (under `cond`: `call0.out`, `call1.out`)
   */
  forward(args: {
    hidden: tf.Tensor;
    temb: tf.Tensor;
    cond?: SegmentCondition;
    probe?: ProbeScope | undefined;
  }): tf.Tensor {
    const { hidden, temb, cond, probe } = args;
    return tf.tidy(() => {
      const shiftScale = (t: tf.Tensor) => tf.split(this.linear.forward(silu(t)), 2, 1) as [tf.Tensor, tf.Tensor];
      const mod = (x: tf.Tensor, [shift, scale]: [tf.Tensor, tf.Tensor]) =>
        tf.add(tf.mul(this.norm.forward(x), tf.add(1, expand(scale))), expand(shift));
      if (cond === undefined) {
        const out = mod(hidden, shiftScale(temb));
        probe?.capture('out', out);
        return out;
      }
      const t = shiftScale(temb);
      const c = shiftScale(cond.tembCond);
      const out = perSegment(hidden, cond.videoRanges, cond.target, (x, r) => mod(x, r === 'target' ? t : c));
      if (probe !== undefined) {
        probe.capture('call0.out', tokens(out, cond.videoRanges[cond.target]!));
        if (cond.videoRanges.length > 1) probe.capture('call1.out', condTokens(out, cond.videoRanges, cond.target));
      }
      return out;
    });
  }

  /** tfjs-layers adapter: `apply([hidden, temb])`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [hidden, temb] = inputs as tf.Tensor[];
    return this.forward({ hidden: hidden!, temb: temb! });
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return s;
  }
}
tf.serialization.registerClass(AdaLayerNorm, 'Mask2DiT');
