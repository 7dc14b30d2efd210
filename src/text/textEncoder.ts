/**
 * A T5 encoder (Hugging Face `T5EncoderModel`) as M2Layers, with T5's parameter names so the same
 * code loads a real T5 later and a tiny one trained on the synthetic world now.
 *
 *   h = shared[ids]                                                     [B, L, D]
 *   bias = relative_attention_bias[bucket(k − q)] + mask                [B, H, L, L]  (block 0's table, shared by all blocks)
 *   per block:  h = h + o(softmax(q·kᵀ + bias)·v)   on layer_norm(h)    layer.0 (no 1/√d scaling in T5)
 *               h = h + wo(act(wi(h')))  or  wo(gelu(wi_0 h') ⊙ wi_1 h')  layer.1, h' = layer_norm(h)
 *   out = final_layer_norm(h)                                           [B, L, D]
 *
 * layer norms are T5LayerNorm (RMSNorm: no mean, no bias). Names: `shared.weight`,
 * `encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight`,
 * `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight`,
 * `encoder.block.{i}.layer.0.layer_norm.weight`, `encoder.block.{i}.layer.1.DenseReluDense.{wi,wo}.weight`
 * (gated: `wi_0`, `wi_1`), `encoder.block.{i}.layer.1.layer_norm.weight`, `encoder.final_layer_norm.weight`.
 *
 * Reference: transformers `models/t5/modeling_t5.py` (T5LayerNorm, T5Attention, T5EncoderModel).
 * Differentiable with `tf.variableGrads` once `trainable = true` (set on the encoder, it reaches every
 * sublayer): embedding lookups become one-hot matMuls (gather's gradient has no wasm kernel) and no
 * cached tensor sits in the trainable path.
 *
 * Offload (`fromPretrained(dir, { offload })`, see model/offload.ts): with 'blocks' the encoder blocks
 * stay in the checkpoint and each is built right before it runs and disposed after; the embedding
 * table is never widened whole (only the rows of the ids are read); the relative position table and
 * the final norm stay resident. Same numbers either way.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { ConfigError, ShapeError } from '../errors.js';
import { checkMemoryBudget, type PeakEstimate } from '../backend/memoryBudget.js';
import { t5PeakEstimate } from '../model/peakEstimate.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { readTextEncoderConfig, type TextEncoderConfig } from '../config/textEncoderConfig.js';
import { Container, M2Layer } from '../layers/layer.js';
import { Linear } from '../layers/linear.js';
import { geluTanh } from '../layers/math.js';
import { WeightSource } from '../layers/weightSource.js';
import {
  OffloadedBlocks,
  OffloadError,
  StoredEmbedding,
  type BlockLayout,
  type StoredWeights,
} from '../model/offload.js';
import { loadPretrained, type OffloadOptions, type PretrainedOptions } from '../model/pretrained.js';
import type { PromptTokenizer } from './promptEncoder.js';
import { PAD_ID } from './tokenizer.js';

/** Added to the scores of padded keys (HF uses the float32 minimum; any large negative is equivalent). */
const MASKED = -1e9;

// ---------------------------------------------------------------------------------------------
// Relative position buckets (pure JS: the indices never need gradients)
// ---------------------------------------------------------------------------------------------

/**
 * T5's bidirectional bucket of `relative = key − query`: half the buckets for each sign; within a
 * half, exact buckets below `n/2`, then logarithmic up to `maxDistance`. Float32 rounding is
 * emulated (`Math.fround`) so boundary cases truncate as PyTorch's float32 arithmetic does.
 */
export function relativePositionBucket(relative: number, numBuckets: number, maxDistance: number): number {
  const half = numBuckets / 2;
  const base = relative > 0 ? half : 0;
  const n = Math.abs(relative);
  const maxExact = half / 2;
  if (n < maxExact) return base + n;
  const f = Math.fround;
  const ratio = f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f(ratio * (half - maxExact)));
  return base + Math.min(large, half - 1);
}

/** Buckets for an L×L attention, row-major `[query, key]`. */
export function bucketTable(L: number, numBuckets: number, maxDistance: number): Int32Array {
  const out = new Int32Array(L * L);
  for (let q = 0; q < L; q++)
    for (let k = 0; k < L; k++) out[q * L + k] = relativePositionBucket(k - q, numBuckets, maxDistance);
  return out;
}

/** The position bias `[1, H, L, L]` from a relative position table `[num_buckets, H]`. */
function relativePositionBias(table: Embedding, c: TextEncoderConfig, L: number): tf.Tensor {
  return tf.tidy(() => {
    const buckets = tf.tensor(
      bucketTable(L, c.relative_attention_num_buckets, c.relative_attention_max_distance),
      [L, L],
      'int32',
    );
    const values = table.forward(buckets); // [L, L, H]
    return tf.expandDims(tf.transpose(values, [2, 0, 1]), 0); // [1, H, L, L]
  });
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/** Sublayers an owner must reach to switch training on (Linear caches its transpose when not trainable). */
type Parts = M2Layer[];
const part = <T extends M2Layer>(parts: Parts, layer: T): T => {
  parts.push(layer);
  return layer;
};

/** T5LayerNorm: RMS norm over the last axis, `weight` `[D]`, no bias, no mean subtraction. */
export class T5LayerNorm extends M2Layer {
  static readonly className = 'M2T5LayerNorm';
  readonly weight: tf.Variable;
  constructor(
    readonly config: { dim: number; eps: number },
    ws: WeightSource,
  ) {
    super(ws.prefix || 'layer_norm');
    this.weight = this.param('weight', ws.get('weight', [config.dim]));
  }
  /** @param x `[..., D]` */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const variance = tf.mean(tf.square(x), -1, true); // [..., 1]
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.config.eps))), this.weight);
    });
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(T5LayerNorm, 'Mask2DiT');

/** An embedding table `weight` `[rows, dim]`. */
export class Embedding extends M2Layer {
  static readonly className = 'M2Embedding';
  readonly weight: tf.Variable;
  constructor(
    readonly config: { rows: number; dim: number },
    ws: WeightSource,
  ) {
    super(ws.prefix || 'embedding');
    this.weight = this.param('weight', ws.get('weight', [config.rows, config.dim]));
  }
  /** @param ids int32 `[...]` → `[..., dim]`; a one-hot matMul when trainable (differentiable on every backend). */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const flat = tf.reshape(ids, [-1]); // [N]
      const rows = this.trainable
        ? tf.matMul(tf.oneHot(flat, this.config.rows), this.weight)
        : tf.gather(this.weight, flat); // [N, dim]
      return tf.reshape(rows, [...ids.shape, this.config.dim]);
    });
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return [...((Array.isArray(s[0]) ? s[0] : s) as tfl.Shape), this.config.dim];
  }
}
tf.serialization.registerClass(Embedding, 'Mask2DiT');

/** T5Attention (encoder self-attention): q, k, v, o without bias; block 0 also owns the relative bias table. */
export class T5Attention extends M2Layer {
  static readonly className = 'M2T5Attention';
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly relativeBias: Embedding | undefined;

  constructor(
    readonly config: TextEncoderConfig,
    hasRelativeBias: boolean,
    ws: WeightSource,
    parts: Parts,
  ) {
    super(ws.prefix || 'SelfAttention');
    const { d_model: D, d_kv: dk, num_heads: H } = config;
    const proj = (name: string, inF: number, outF: number) =>
      part(parts, this.child(name, new Linear({ inFeatures: inF, outFeatures: outF, bias: false }, ws.pp(name))));
    this.q = proj('q', D, H * dk);
    this.k = proj('k', D, H * dk);
    this.v = proj('v', D, H * dk);
    this.o = proj('o', H * dk, D);
    this.relativeBias = hasRelativeBias
      ? part(
          parts,
          this.child(
            'relative_attention_bias',
            new Embedding({ rows: config.relative_attention_num_buckets, dim: H }, ws.pp('relative_attention_bias')),
          ),
        )
      : undefined;
  }

  /** The position bias `[1, H, L, L]` from this layer's table (block 0 only). */
  positionBias(L: number): tf.Tensor {
    if (this.relativeBias === undefined)
      throw new ShapeError('relative_attention_bias', 'only the first block owns the relative position table');
    return relativePositionBias(this.relativeBias, this.config, L);
  }

  /** `[B, L, H·dk]` → `[B, H, L, dk]` */
  private heads(x: tf.Tensor): tf.Tensor {
    const [B, L] = x.shape as [number, number, number];
    return tf.transpose(tf.reshape(x, [B, L, this.config.num_heads, this.config.d_kv]), [0, 2, 1, 3]);
  }

  /**
   * @param x    `[B, L, D]` (already layer-normed)
   * @param bias `[B or 1, H, L, L]` position bias plus key mask
   */
  forward(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [B, L] = x.shape as [number, number, number];
      const q = this.heads(this.q.forward(x)); // [B, H, L, dk]
      const k = this.heads(this.k.forward(x)); // [B, H, L, dk]
      const v = this.heads(this.v.forward(x)); // [B, H, L, dk]
      // Tiny L: one batched matMul is cheaper than a 2-D matMul per head here (the per-head 2-D matMuls pay off only at long sequences).
      const scores = tf.add(tf.matMul(q, k, false, true), bias); // [B, H, L, L], no 1/√dk in T5
      const o = tf.matMul(tf.softmax(scores, -1), v); // [B, H, L, dk]
      const merged = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, L, this.config.num_heads * this.config.d_kv]); // [B, L, H·dk]
      return this.o.forward(merged); // [B, L, D]
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, bias] = inputs as tf.Tensor[];
    return this.forward(x!, bias!);
  }
  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (s as tfl.Shape[])[0]!;
  }
}
tf.serialization.registerClass(T5Attention, 'Mask2DiT');

/** T5's feed-forward (`DenseReluDense`): `wo(relu(wi x))` or gated `wo(gelu_new(wi_0 x) ⊙ wi_1 x)`. */
export class T5DenseFF extends M2Layer {
  static readonly className = 'M2T5DenseFF';
  readonly wi: Linear[];
  readonly wo: Linear;
  constructor(
    readonly config: TextEncoderConfig,
    ws: WeightSource,
    parts: Parts,
  ) {
    super(ws.prefix || 'DenseReluDense');
    const { d_model: D, d_ff: F } = config;
    const lin = (name: string, inF: number, outF: number) =>
      part(parts, this.child(name, new Linear({ inFeatures: inF, outFeatures: outF, bias: false }, ws.pp(name))));
    this.wi = config.feed_forward_proj === 'gated-gelu' ? [lin('wi_0', D, F), lin('wi_1', D, F)] : [lin('wi', D, F)];
    this.wo = lin('wo', F, D);
  }
  /** @param x `[B, L, D]` */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [wi0, wi1] = this.wi;
      const h = wi1 === undefined ? tf.relu(wi0!.forward(x)) : tf.mul(geluTanh(wi0!.forward(x)), wi1.forward(x)); // [B, L, F]
      return this.wo.forward(h);
    });
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(T5DenseFF, 'Mask2DiT');

/** One encoder block: `layer.0` (layer_norm, SelfAttention) and `layer.1` (layer_norm, DenseReluDense). */
export class T5Block extends M2Layer {
  static readonly className = 'M2T5Block';
  readonly norm0: T5LayerNorm;
  readonly attention: T5Attention;
  readonly norm1: T5LayerNorm;
  readonly ff: T5DenseFF;
  /** @param ownsRelativeBias block 0 owns the relative position table (false: it is held elsewhere, offload) */
  constructor(
    config: TextEncoderConfig,
    index: number,
    ws: WeightSource,
    parts: Parts,
    ownsRelativeBias = index === 0,
  ) {
    super(ws.prefix || `block.${index}`);
    const layer = this.child('layer', new Container(ws.full('layer')));
    const l0 = layer.add('0', new Container(ws.pp('layer').full('0')));
    const l1 = layer.add('1', new Container(ws.pp('layer').full('1')));
    const [w0, w1] = [ws.pp('layer').pp(0), ws.pp('layer').pp(1)];
    const norm = { dim: config.d_model, eps: config.layer_norm_epsilon };
    this.attention = l0.add('SelfAttention', new T5Attention(config, ownsRelativeBias, w0.pp('SelfAttention'), parts));
    this.norm0 = part(parts, l0.add('layer_norm', new T5LayerNorm(norm, w0.pp('layer_norm'))));
    this.ff = l1.add('DenseReluDense', new T5DenseFF(config, w1.pp('DenseReluDense'), parts));
    this.norm1 = part(parts, l1.add('layer_norm', new T5LayerNorm(norm, w1.pp('layer_norm'))));
    parts.push(this.attention, this.ff);
  }
  /** @param h `[B, L, D]`, bias `[B or 1, H, L, L]` */
  forward(h: tf.Tensor, bias: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const a = tf.add(h, this.attention.forward(this.norm0.forward(h), bias));
      return tf.add(a, this.ff.forward(this.norm1.forward(a)));
    });
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [h, bias] = inputs as tf.Tensor[];
    return this.forward(h!, bias!);
  }
  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (s as tfl.Shape[])[0]!;
  }
}
tf.serialization.registerClass(T5Block, 'Mask2DiT');

// ---------------------------------------------------------------------------------------------
// The encoder
// ---------------------------------------------------------------------------------------------

/** Every parameter name of a T5 encoder with its shape (reference layout), in model order. */
export function t5ParameterShapes(c: TextEncoderConfig): Map<string, number[]> {
  const { d_model: D, d_kv: dk, num_heads: H, d_ff: F } = c;
  const m = new Map<string, number[]>([['shared.weight', [c.vocab_size, D]]]);
  for (let i = 0; i < c.num_layers; i++) {
    const b = `encoder.block.${i}.layer`;
    for (const p of ['q', 'k', 'v']) m.set(`${b}.0.SelfAttention.${p}.weight`, [H * dk, D]);
    m.set(`${b}.0.SelfAttention.o.weight`, [D, H * dk]);
    if (i === 0) m.set(`${b}.0.SelfAttention.relative_attention_bias.weight`, [c.relative_attention_num_buckets, H]);
    m.set(`${b}.0.layer_norm.weight`, [D]);
    const wi = c.feed_forward_proj === 'gated-gelu' ? ['wi_0', 'wi_1'] : ['wi'];
    for (const w of wi) m.set(`${b}.1.DenseReluDense.${w}.weight`, [F, D]);
    m.set(`${b}.1.DenseReluDense.wo.weight`, [D, F]);
    m.set(`${b}.1.layer_norm.weight`, [D]);
  }
  m.set('encoder.final_layer_norm.weight', [D]);
  return m;
}

/** Hugging Face's T5 initialisation (`_init_weights`, factor 1): the weights of an untrained encoder. */
export function t5InitTensors(c: TextEncoderConfig, seed: number): Map<string, tf.Tensor> {
  const { d_model: D, d_kv: dk, num_heads: H, d_ff: F } = c;
  const std = (name: string): number => {
    if (name === 'shared.weight') return 1;
    if (name.endsWith('.q.weight')) return (D * dk) ** -0.5;
    if (name.endsWith('.k.weight') || name.endsWith('.v.weight') || name.includes('relative_attention_bias'))
      return D ** -0.5;
    if (name.endsWith('.o.weight')) return (H * dk) ** -0.5;
    if (name.endsWith('.wo.weight')) return F ** -0.5;
    return D ** -0.5; // wi, wi_0, wi_1
  };
  const out = new Map<string, tf.Tensor>();
  let i = 0;
  for (const [name, shape] of t5ParameterShapes(c)) {
    out.set(
      name,
      name.endsWith('layer_norm.weight')
        ? tf.ones(shape)
        : tf.randomNormal(shape, 0, std(name), 'float32', seed * 7919 + i),
    );
    i++;
  }
  return out;
}

/**
 * How padding takes part in attention:
 * - `'none'` (default): no mask — padding tokens are attended to and get outputs of their own. This is
 *   `T5EncoderModel(input_ids)`, the call of diffusers' CogVideoX and both Mask²DiT pipelines.
 * - `'padding'`: keys with `ids = pad_token_id` are masked out (the world model was trained this way).
 * - a `[B, L]` tensor: 1 for keys to attend to, 0 for masked ones (Hugging Face's `attention_mask`).
 */
export type T5AttentionMask = 'none' | 'padding' | tf.Tensor;

export interface TextEncoderInputs {
  /** Token ids `[B, L]`, int32. */
  ids: tf.Tensor;
  /** Default `'none'`, as the reference pipelines call T5. */
  attentionMask?: T5AttentionMask;
}

/**
 * Block 0's relative position table, resident while the blocks are offloaded, under its reference
 * name `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight` (containers in `list`).
 */
function residentRelativeTable(c: TextEncoderConfig, list: Container, wsBlocks: WeightSource): Embedding {
  const ws = wsBlocks.pp(0).pp('layer').pp(0).pp('SelfAttention');
  const b0 = list.add('0', new Container(wsBlocks.full('0')));
  const layer = b0.add('layer', new Container(wsBlocks.pp(0).full('layer')));
  const l0 = layer.add('0', new Container(wsBlocks.pp(0).pp('layer').full('0')));
  const attn = l0.add('SelfAttention', new Container(ws.prefix));
  return attn.add(
    'relative_attention_bias',
    new Embedding({ rows: c.relative_attention_num_buckets, dim: c.num_heads }, ws.pp('relative_attention_bias')),
  );
}

/** Hugging Face `T5EncoderModel`: ids → hidden states `[B, L, d_model]`. */
export class T5Encoder extends M2Layer {
  static readonly className = 'M2T5Encoder';
  /** The token table (offloaded: read by rows from the checkpoint). */
  readonly shared: Embedding | StoredEmbedding;
  /** The resident blocks (empty when offloaded: see `offload`). */
  readonly blocks: T5Block[];
  readonly finalNorm: T5LayerNorm;
  /** Block 0's relative position table, shared by all blocks (resident in both modes). */
  private readonly relativeTable: Embedding;
  /** Every sublayer, so `trainable` reaches them all. */
  private readonly parts: Parts = [];
  /** The blocks left in the checkpoint (offload mode), built one at a time. */
  private readonly offloaded: OffloadedBlocks<T5Block> | undefined;
  private readonly store: StoredWeights | undefined;

  /**
   * @param store when given, the blocks and the token table are offloaded: validated against `ws`
   *   now, read from `store` per forward (the model owns the store and closes it on dispose)
   */
  constructor(
    readonly config: TextEncoderConfig,
    ws: WeightSource,
    store?: StoredWeights,
  ) {
    super('text_encoder');
    const c = config;
    this.store = store;
    const encoder = this.child('encoder', new Container('encoder'));
    const list = encoder.add('block', new Container('encoder.block'));
    const wsBlocks = ws.pp('encoder').pp('block');
    if (store === undefined) {
      this.shared = part(
        this.parts,
        this.child('shared', new Embedding({ rows: c.vocab_size, dim: c.d_model }, ws.pp('shared'))),
      );
      this.blocks = Array.from({ length: c.num_layers }, (_, i) =>
        part(this.parts, list.add(String(i), new T5Block(c, i, wsBlocks.pp(i), this.parts))),
      );
      this.relativeTable = this.blocks[0]!.attention.relativeBias!;
    } else {
      ws.checkOnly().pp('shared').get('weight', [c.vocab_size, c.d_model]).dispose(); // checked, left in the file
      this.shared = this.child(
        'shared',
        new StoredEmbedding({ rows: c.vocab_size, dim: c.d_model }, store, 'shared.weight'),
      );
      this.relativeTable = part(this.parts, residentRelativeTable(c, list, wsBlocks));
      this.blocks = [];
      this.offloaded = new OffloadedBlocks(
        store,
        T5Encoder.blockLayout(c),
        (bws, i) => new T5Block(c, i, bws, [], false),
        ws,
      );
    }
    this.finalNorm = part(
      this.parts,
      encoder.add(
        'final_layer_norm',
        new T5LayerNorm({ dim: c.d_model, eps: c.layer_norm_epsilon }, ws.pp('encoder').pp('final_layer_norm')),
      ),
    );
  }

  /** How the parameters split into blocks (what offload reads per use); the token table is read by rows. */
  static blockLayout(c: TextEncoderConfig): BlockLayout {
    const table = (n: string) => n === 'shared.weight' || n.endsWith('.relative_attention_bias.weight'); // gathered, not matMul operands
    return {
      prefix: 'encoder.block',
      count: c.num_layers,
      resident: (n) => n.endsWith('.relative_attention_bias.weight'),
      rowsOnly: ['shared.weight'],
      gathered: table,
    };
  }

  /** Where the blocks' weights live: 'none' = resident, 'blocks' = read from the checkpoint per forward. */
  get offload(): 'none' | 'blocks' {
    return this.offloaded === undefined ? 'none' : 'blocks';
  }

  /** Run `fn` on block i: the resident block, or one built from the checkpoint and disposed after. */
  private withBlock<R>(i: number, fn: (block: T5Block) => R): R {
    return this.offloaded === undefined ? fn(this.blocks[i]!) : this.offloaded.run(i, fn);
  }

  /** Training switch for the encoder and every sublayer (refused when offloaded). */
  override get trainable(): boolean {
    return super.trainable;
  }
  override set trainable(on: boolean) {
    // `offloaded` and `parts` are undefined while the base constructor runs
    const self = this as unknown as { parts?: Parts; offloaded?: unknown };
    if (on && self.offloaded !== undefined)
      throw new OffloadError(
        'text_encoder',
        "its blocks are offloaded (read from the checkpoint per forward), so it cannot be trained; load it with offload: 'none'",
      );
    super.trainable = on;
    for (const p of self.parts ?? []) p.trainable = on;
  }

  /** Every parameter, offloaded blocks and table included. */
  override countParams(): number {
    const table = this.store !== undefined ? this.config.vocab_size * this.config.d_model : 0;
    return super.countParams() + table + (this.offloaded?.paramCount() ?? 0);
  }

  override dispose(): { refCountAfterDispose: number; numDisposedVariables: number } {
    this.offloaded?.close();
    return super.dispose();
  }

  /** An untrained encoder with Hugging Face's initialisation. */
  static init(config: TextEncoderConfig, seed: number): T5Encoder {
    const ws = WeightSource.fromTensors(`t5 init (seed ${seed})`, t5InitTensors(config, seed));
    const model = new T5Encoder(config, ws);
    ws.finish(true);
    return model;
  }

  /** `[B, L, d_model]` hidden states; see `T5AttentionMask` for how padding is treated (default: unmasked, as the reference pipelines). */
  forward(inputs: TextEncoderInputs): tf.Tensor {
    const { ids } = inputs;
    if (ids.rank !== 2 || ids.dtype !== 'int32')
      throw new ShapeError('input_ids', `expected int32 [B, L], got ${ids.dtype} [${ids.shape}]`);
    const [B, L] = ids.shape as [number, number];
    const m = inputs.attentionMask ?? 'none';
    if (typeof m !== 'string' && (m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== L))
      throw new ShapeError('attention_mask', `expected [${B}, ${L}], got [${m.shape}]`);
    checkMemoryBudget('T5 text encoder forward', this.peakEstimate(B, L, m !== 'none'));
    return tf.tidy(() => {
      let bias = relativePositionBias(this.relativeTable, this.config, L); // [1, H, L, L]
      const keep = m === 'none' ? undefined : m === 'padding' ? tf.notEqual(ids, this.config.pad_token_id) : m; // [B, L]
      if (keep !== undefined)
        bias = tf.add(bias, tf.reshape(tf.mul(tf.sub(1, tf.cast(keep, 'float32')), MASKED), [B, 1, 1, L])); // [B, H, L, L]
      let h = this.shared.forward(ids); // [B, L, D]
      for (let i = 0; i < this.config.num_layers; i++) h = this.withBlock(i, (block) => block.forward(h, bias));
      return this.finalNorm.forward(h);
    });
  }

  /** Estimated peak bytes of one forward on `[B, L]` ids (`t5PeakEstimate`), plus the running block (and on wasm its packed copy) when offloaded. */
  peakEstimate(B: number, L: number, paddingMask: boolean): PeakEstimate {
    const c = this.config;
    const est = t5PeakEstimate({
      B,
      L,
      dModel: c.d_model,
      heads: c.num_heads,
      dKv: c.d_kv,
      dFF: c.d_ff,
      layers: c.num_layers,
      gated: c.feed_forward_proj === 'gated-gelu',
      paddingMask,
    });
    if (this.offloaded === undefined) return est;
    const block = this.offloaded.largestBlockBytes() * (tf.getBackend() === 'wasm' ? 2 : 1);
    return {
      ...est,
      totalBytes: est.totalBytes + block,
      ...(est.heapBytes !== undefined ? { heapBytes: est.heapBytes + block } : {}),
    };
  }

  /** Convenience: ids `[B·L]` (row-major) → `[B, L, d_model]`. */
  encodeIds(ids: Int32Array, batch: number, attentionMask: 'none' | 'padding' = 'none'): tf.Tensor {
    if (ids.length % batch !== 0)
      throw new ShapeError('input_ids', `${ids.length} ids do not split into ${batch} rows`);
    const t = tf.tensor2d(ids, [batch, ids.length / batch], 'int32');
    try {
      return this.forward({ ids: t, attentionMask });
    } finally {
      t.dispose();
    }
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward({ ids: Array.isArray(inputs) ? inputs[0]! : inputs });
  }
  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return [...((Array.isArray(s[0]) ? s[0] : s) as tfl.Shape), this.config.d_model];
  }

  /**
   * Load `dir/config.json` + safetensors, or a pipeline folder holding `text_encoder/`. A tied
   * `encoder.embed_tokens.weight` (Hugging Face saves it next to `shared.weight`) is ignored.
   */
  static async fromPretrained(dir: string, options: PretrainedOptions & OffloadOptions = {}): Promise<T5Encoder> {
    const ignore = ['encoder.embed_tokens.weight'];
    return loadPretrained(
      dir,
      'text_encoder',
      'a T5 encoder',
      (f) => readTextEncoderConfig(f).config,
      (c, ws, store) => new T5Encoder(c, ws, store),
      {
        ...options,
        ignore,
        blocks: (c) => T5Encoder.blockLayout(c),
      },
    );
  }

  /** Write `dir/config.json` and `dir/model.safetensors` (F32), each atomically (offloaded parameters are read from the checkpoint). */
  async save(dir: string): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, v] of this.namedWeights())
      tensors[name] = { dtype: 'F32', shape: [...v.shape] as number[], data: (await v.read().data()) as Float32Array };
    if (this.store !== undefined) {
      for (const name of ['shared.weight', ...this.offloaded!.names()])
        tensors[name] = { dtype: 'F32', shape: [...this.store.shape(name)!], data: this.store.readF32(name, false) };
    }
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const json = { architectures: ['T5EncoderModel'], ...this.config };
    await writeFileAtomic(path.join(dir, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
  }
}
tf.serialization.registerClass(T5Encoder, 'Mask2DiT');

/**
 * Prompt embeddings for a multi-scene clip: one block of `tokenizer.length` rows per caption,
 * concatenated along the sequence → `[1, S·length, d_model]` (the transformer's
 * `encoder_hidden_states` with `max_text_seq_length = tokenizer.length`).
 */
export function encodePrompts(tokenizer: PromptTokenizer, encoder: T5Encoder, captions: readonly string[]): tf.Tensor {
  if (captions.length === 0) throw new ShapeError('captions', 'expected at least one caption');
  if (tokenizer.vocabSize > encoder.config.vocab_size) {
    throw new ConfigError(
      'text_encoder/config.json',
      'vocab_size',
      `the tokenizer has ${tokenizer.vocabSize} tokens, the encoder's table only ${encoder.config.vocab_size}`,
    );
  }
  if (encoder.config.pad_token_id !== PAD_ID)
    throw new ConfigError(
      'text_encoder/config.json',
      'pad_token_id',
      `expected ${PAD_ID} (the tokenizer's <pad>), got ${encoder.config.pad_token_id}`,
    );
  const S = captions.length;
  const L = tokenizer.length;
  return tf.tidy(() => {
    const h = encoder.encodeIds(tokenizer.encodeBatch(captions), S, tokenizer.attentionMask ?? 'none'); // [S, L, D]; the world model was trained with padding masked
    return tf.reshape(h, [1, S * L, encoder.config.d_model]); // [1, S·L, D]
  });
}
