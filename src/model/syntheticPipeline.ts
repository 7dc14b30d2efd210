/**
 * A stand-in for the official Mask²DiT pipeline folder (a CogVideoX-5B fine-tune in the diffusers
 * layout): the same files, config keys, tensor names, shapes and dtypes, with random bf16 weights.
 *
 *   model_index.json                                   CogVideoX-5b's (components are loaded one by one)
 *   transformer/config.json                            MultiPromptCogVideoXTransformer3DModel (videox_fun), attn_msk_version 2
 *   transformer/diffusion_pytorch_model-0000k-of-0000n.safetensors + .safetensors.index.json   BF16
 *   text_encoder/config.json                           google/t5-v1_1-xxl (T5EncoderModel)
 *   text_encoder/model-0000k-of-0000n.safetensors + model.safetensors.index.json               BF16
 *   vae/config.json + diffusion_pytorch_model.safetensors                                      AutoencoderKLCogVideoX, BF16
 *   tokenizer/spiece.model, tokenizer_config.json, special_tokens_map.json, added_tokens.json  T5Tokenizer
 *   scheduler/scheduler_config.json                    CogVideoXDDIMScheduler (5B values)
 *   README.md                                          what this is and is not
 *
 * `full` is the real size (5.57 B + 4.76 B + 0.22 B parameters, ~21 GB); `tiny` keeps every key and
 * name with small dims (several shards forced by a small shard size) so tests load and run it.
 * Where each config value comes from: scripts/make-synthetic-pipeline.ts.
 *
 * Parameter lists are computed from the config (never by building a model: the full transformer is
 * 22 GB in float32), in the reference modules' registration order, which decides shard boundaries.
 * Values: N(0, 1/fan_in) for matrices and kernels, 1 + N(0, 0.1²) for norm scales, N(0, 0.02²) for
 * biases, drawn as bf16 bit patterns from a 65536-entry quantile table indexed by a xorshift128
 * stream seeded per tensor from (seed, name) — deterministic, and independent of chunking.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COGVIDEOX_5B_SCHEDULER, parseSchedulerConfig } from '../config/schedulerConfig.js';
import { parseTextEncoderConfig } from '../config/textEncoderConfig.js';
import { parseTransformerConfig, type TransformerConfig } from '../config/transformerConfig.js';
import { parseVaeConfig, type VaeConfig } from '../config/vaeConfig.js';
import { Mask2DiTError } from '../errors.js';
import { OutputExistsError, registerCleanup, replaceFolder } from '../io/atomic.js';
import { DIFFUSERS_VERSION } from '../io/diffusersComponent.js';
import { f32ToBf16 } from '../io/float16.js';
import { writeShardedSafetensors, type ShardPlan, type StreamedTensor } from '../io/safetensorsShards.js';
import { t5ParameterShapes } from '../text/textEncoder.js';
import { VERSION } from '../version.js';

export type Scale = 'full' | 'tiny';
export const SCALES: readonly Scale[] = ['full', 'tiny'];

type Json = Record<string, unknown>;

/** Everything that decides a synthetic folder's files, before any weight is drawn. */
export interface SyntheticSpec {
  scale: Scale;
  modelIndex: Json;
  transformer: Json;
  textEncoder: Json;
  vae: Json;
  scheduler: Json;
  /** tokenizer_config.json's `model_max_length` (= the transformer's `max_text_seq_length`). */
  maxTextLength: number;
  /** Hugging Face `max_shard_size` per component, in bytes. */
  maxShardSize: { transformer: number; textEncoder: number; vae: number };
}

const GB = 1e9; // "5GB" as save_pretrained parses it

const DOWN = 'CogVideoXDownBlock3D';
const UP = 'CogVideoXUpBlock3D';

/** Keys sorted recursively, as `json.dumps(..., sort_keys=True)` writes every config. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys((v as Json)[k])]),
  );
}

/** Keys whose values are Python floats in the reference configs (written `1.0`, `1e-05`, as Python does). */
const FLOAT_KEYS = new Set([
  'beta_end',
  'beta_start',
  'classifier_dropout',
  'clip_sample_range',
  'dropout',
  'dropout_rate',
  'initializer_factor',
  'layer_norm_epsilon',
  'norm_eps',
  'sample_max_value',
  'scaling_factor',
  'snr_shift_scale',
  'spatial_interpolation_scale',
  'temporal_interpolation_scale',
]);

/** Python's `repr` of a float: shortest digits, `.0` on integers, exponent form below 1e-4 with two exponent digits. */
export function pythonFloat(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e16) return `${v}.0`;
  if (Math.abs(v) >= 1e-4 && Math.abs(v) < 1e16) return String(v);
  const [m, e] = v.toExponential().split('e') as [string, string];
  const n = Number(e);
  return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
}

/** A config file's text as `json.dumps(config, indent=2, sort_keys=True) + "\\n"` writes it. */
export function configText(v: unknown): string {
  const marked = JSON.stringify(
    sortKeys(v),
    (k, x: unknown) => (typeof x === 'number' && FLOAT_KEYS.has(k) ? `\u0000${pythonFloat(x)}` : x),
    2,
  );
  return `${marked.replace(/"\\u0000([^"]*)"/g, '$1')}\n`;
}

interface Dims {
  heads: number;
  headDim: number;
  layers: number;
  timeEmbed: number;
  textEmbed: number;
  latent: number;
  sampleHW: [number, number];
  maxText: number;
  t5: { vocab: number; dModel: number; dKv: number; dFf: number; heads: number; layers: number; name: string };
  vae: { channels: number[]; groups: number; layersPerBlock: number; sampleHW: [number, number] };
}

const DIMS: Record<Scale, Dims> = {
  full: {
    heads: 48,
    headDim: 64,
    layers: 42,
    timeEmbed: 512,
    textEmbed: 4096,
    latent: 16,
    sampleHW: [60, 90],
    maxText: 226,
    t5: { vocab: 32128, dModel: 4096, dKv: 64, dFf: 10240, heads: 64, layers: 24, name: 'google/t5-v1_1-xxl' },
    vae: { channels: [128, 256, 256, 512], groups: 32, layersPerBlock: 3, sampleHW: [480, 720] },
  },
  tiny: {
    heads: 2,
    headDim: 16, // 3D RoPE splits the head dim 2:3:3 into rotation pairs: a multiple of 16
    layers: 2,
    timeEmbed: 16,
    textEmbed: 32,
    latent: 4,
    sampleHW: [8, 8],
    maxText: 32,
    t5: { vocab: 2128, dModel: 32, dKv: 8, dFf: 64, heads: 4, layers: 2, name: 'synthetic/t5-tiny' },
    vae: { channels: [8, 16, 16, 32], groups: 4, layersPerBlock: 1, sampleHW: [64, 64] },
  },
};

/** The configs of a synthetic folder at `scale` (full: the real Mask²DiT / CogVideoX-5B values). */
export function syntheticSpec(scale: Scale): SyntheticSpec {
  const d = DIMS[scale];
  const transformer = {
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    _diffusers_version: DIFFUSERS_VERSION,
    activation_fn: 'gelu-approximate',
    add_noise_in_inpaint_model: false,
    attention_bias: true,
    attention_head_dim: d.headDim,
    attn_msk_version: 2,
    dropout: 0.0,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: d.latent,
    max_text_seq_length: d.maxText,
    norm_elementwise_affine: true,
    norm_eps: 1e-5,
    num_attention_heads: d.heads,
    num_layers: d.layers,
    out_channels: d.latent,
    patch_bias: true,
    patch_size: 2,
    patch_size_t: null,
    sample_frames: 49,
    sample_height: d.sampleHW[0],
    sample_width: d.sampleHW[1],
    spatial_interpolation_scale: 1.875,
    temporal_compression_ratio: 4,
    temporal_interpolation_scale: 1.0,
    text_embed_dim: d.textEmbed,
    time_embed_dim: d.timeEmbed,
    timestep_activation_fn: 'silu',
    use_learned_positional_embeddings: false,
    use_rotary_positional_embeddings: true,
  };
  const t = d.t5;
  const textEncoder = {
    _name_or_path: t.name,
    architectures: ['T5EncoderModel'],
    classifier_dropout: 0.0,
    d_ff: t.dFf,
    d_kv: t.dKv,
    d_model: t.dModel,
    decoder_start_token_id: 0,
    dense_act_fn: 'gelu_new',
    dropout_rate: 0.1,
    eos_token_id: 1,
    feed_forward_proj: 'gated-gelu',
    initializer_factor: 1.0,
    is_encoder_decoder: true,
    is_gated_act: true,
    layer_norm_epsilon: 1e-6,
    model_type: 't5',
    num_decoder_layers: t.layers,
    num_heads: t.heads,
    num_layers: t.layers,
    output_past: true,
    pad_token_id: 0,
    relative_attention_max_distance: 128,
    relative_attention_num_buckets: 32,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.44.0.dev0',
    use_cache: true,
    vocab_size: t.vocab,
  };
  const v = d.vae;
  const vae = {
    _class_name: 'AutoencoderKLCogVideoX',
    _diffusers_version: DIFFUSERS_VERSION,
    act_fn: 'silu',
    block_out_channels: v.channels,
    down_block_types: v.channels.map(() => DOWN),
    force_upcast: true,
    in_channels: 3,
    latent_channels: d.latent,
    latents_mean: null,
    latents_std: null,
    layers_per_block: v.layersPerBlock,
    norm_eps: 1e-6,
    norm_num_groups: v.groups,
    out_channels: 3,
    sample_height: v.sampleHW[0],
    sample_width: v.sampleHW[1],
    scaling_factor: 0.7,
    shift_factor: null,
    temporal_compression_ratio: 4,
    up_block_types: v.channels.map(() => UP),
    use_post_quant_conv: false,
    use_quant_conv: false,
  };
  return {
    scale,
    modelIndex: {
      _class_name: 'CogVideoXPipeline',
      _diffusers_version: DIFFUSERS_VERSION,
      scheduler: ['diffusers', 'CogVideoXDDIMScheduler'],
      text_encoder: ['transformers', 'T5EncoderModel'],
      tokenizer: ['transformers', 'T5Tokenizer'],
      transformer: ['diffusers', 'CogVideoXTransformer3DModel'],
      vae: ['diffusers', 'AutoencoderKLCogVideoX'],
    },
    transformer,
    textEncoder,
    vae,
    scheduler: { _diffusers_version: DIFFUSERS_VERSION, ...COGVIDEOX_5B_SCHEDULER },
    maxTextLength: d.maxText,
    // full: save_pretrained(max_shard_size="5GB") as diffusers' convert_cogvideox_to_diffusers.py;
    // tiny: small enough that the transformer and the text encoder each come in several shards
    maxShardSize:
      scale === 'full'
        ? { transformer: 5 * GB, textEncoder: 5 * GB, vae: 5 * GB }
        : { transformer: 32_000, textEncoder: 32_000, vae: 5 * GB },
  };
}

// ---------------------------------------------------------------------------------------------
// Parameter names and shapes

/**
 * The transformer's parameters (diffusers `CogVideoXTransformer3DModel`, which Mask²DiT's class
 * extends without new parameters), in registration order.
 */
export function transformerParameterShapes(c: TransformerConfig): Map<string, number[]> {
  const D = c.innerDim;
  const E = c.time_embed_dim;
  const p = c.patch_size;
  const m = new Map<string, number[]>();
  const linear = (name: string, out: number, inp: number, bias = true) => {
    m.set(`${name}.weight`, [out, inp]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  const layerNorm = (name: string, dim: number, affine = c.norm_elementwise_affine) => {
    if (affine) normParams(m, name, dim);
  };
  m.set('patch_embed.proj.weight', [D, c.in_channels, p, p]);
  if (c.patch_bias) m.set('patch_embed.proj.bias', [D]);
  linear('patch_embed.text_proj', D, c.text_embed_dim);
  if (c.use_learned_positional_embeddings) {
    const tokens =
      (Math.floor((c.sample_frames - 1) / c.temporal_compression_ratio) + 1) *
      Math.floor(c.sample_height / p) *
      Math.floor(c.sample_width / p);
    m.set('patch_embed.pos_embedding', [1, c.max_text_seq_length + tokens, D]);
  }
  linear('time_embedding.linear_1', E, D);
  linear('time_embedding.linear_2', E, E);
  for (let i = 0; i < c.num_layers; i++) {
    const b = `transformer_blocks.${i}`;
    linear(`${b}.norm1.linear`, 6 * D, E);
    layerNorm(`${b}.norm1.norm`, D);
    layerNorm(`${b}.attn1.norm_q`, c.attention_head_dim, true);
    layerNorm(`${b}.attn1.norm_k`, c.attention_head_dim, true);
    for (const x of ['to_q', 'to_k', 'to_v']) linear(`${b}.attn1.${x}`, D, D, c.attention_bias);
    linear(`${b}.attn1.to_out.0`, D, D);
    linear(`${b}.norm2.linear`, 6 * D, E);
    layerNorm(`${b}.norm2.norm`, D);
    linear(`${b}.ff.net.0.proj`, 4 * D, D);
    linear(`${b}.ff.net.2`, D, 4 * D);
  }
  layerNorm('norm_final', D);
  linear('norm_out.linear', 2 * D, E);
  layerNorm('norm_out.norm', D);
  linear('proj_out', p * p * c.outChannels, D);
  return m;
}

/** `name.weight` and `name.bias`, both `[dim]` (a LayerNorm or GroupNorm). */
function normParams(m: Map<string, number[]>, name: string, dim: number): void {
  m.set(`${name}.weight`, [dim]);
  m.set(`${name}.bias`, [dim]);
}

/** The VAE's parameters (diffusers `AutoencoderKLCogVideoX`, PyTorch layouts), in registration order. */
export function vaeParameterShapes(c: VaeConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const conv3d = (name: string, out: number, inp: number, k = 3) => {
    m.set(`${name}.conv.weight`, [out, inp, k, k, k]);
    m.set(`${name}.conv.bias`, [out]);
  };
  const conv2d = (name: string, ch: number) => {
    m.set(`${name}.conv.weight`, [ch, ch, 3, 3]);
    m.set(`${name}.conv.bias`, [ch]);
  };
  const zc = c.latent_channels;
  const norm = (name: string, ch: number, spatial: boolean) => {
    if (!spatial) return normParams(m, name, ch);
    normParams(m, `${name}.norm_layer`, ch);
    conv3d(`${name}.conv_y`, ch, zc, 1);
    conv3d(`${name}.conv_b`, ch, zc, 1);
  };
  const resnet = (name: string, inp: number, out: number, spatial: boolean) => {
    norm(`${name}.norm1`, inp, spatial);
    norm(`${name}.norm2`, out, spatial);
    conv3d(`${name}.conv1`, out, inp);
    conv3d(`${name}.conv2`, out, out);
    if (inp !== out) {
      m.set(`${name}.conv_shortcut.weight`, [out, inp, 1, 1, 1]);
      m.set(`${name}.conv_shortcut.bias`, [out]);
    }
  };
  const stack = (name: string, inp: number, out: number, layers: number, spatial: boolean) => {
    for (let j = 0; j < layers; j++) resnet(`${name}.resnets.${j}`, j === 0 ? inp : out, out, spatial);
  };
  const ch = c.block_out_channels;
  const last = ch.length - 1;
  const top = ch[last]!;
  conv3d('encoder.conv_in', ch[0]!, c.in_channels);
  ch.forEach((out, i) => {
    stack(`encoder.down_blocks.${i}`, i === 0 ? ch[0]! : ch[i - 1]!, out, c.layers_per_block, false);
    if (i < last) conv2d(`encoder.down_blocks.${i}.downsamplers.0`, out);
  });
  stack('encoder.mid_block', top, top, 2, false);
  norm('encoder.norm_out', top, false);
  conv3d('encoder.conv_out', 2 * zc, top);
  const rev = [...ch].reverse();
  conv3d('decoder.conv_in', rev[0]!, zc);
  stack('decoder.mid_block', rev[0]!, rev[0]!, 2, true);
  rev.forEach((out, i) => {
    stack(`decoder.up_blocks.${i}`, i === 0 ? rev[0]! : rev[i - 1]!, out, c.layers_per_block + 1, true);
    if (i < last) conv2d(`decoder.up_blocks.${i}.upsamplers.0`, out);
  });
  norm('decoder.norm_out', rev[last]!, true);
  conv3d('decoder.conv_out', c.out_channels, rev[last]!);
  return m;
}

export { t5ParameterShapes };

/** Total element count of a name → shape list. */
export function parameterCount(shapes: Map<string, readonly number[]>): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** The three components' parameter lists of a spec (configs parsed by the project's readers). */
export function syntheticShapes(spec: SyntheticSpec): {
  transformer: Map<string, number[]>;
  textEncoder: Map<string, number[]>;
  vae: Map<string, number[]>;
} {
  return {
    transformer: transformerParameterShapes(parseTransformerConfig(spec.transformer, 'transformer/config.json').config),
    textEncoder: t5ParameterShapes(parseTextEncoderConfig(spec.textEncoder, 'text_encoder/config.json').config),
    vae: vaeParameterShapes(parseVaeConfig(spec.vae, 'vae/config.json').config),
  };
}

// ---------------------------------------------------------------------------------------------
// Random bf16 values

/** Φ⁻¹(p), Acklam's rational approximation (relative error < 1.2e-9). */
function inverseNormal(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number) =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
    ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

let quantiles: Float64Array | undefined;
const tables = new Map<string, Uint32Array>();

/** bf16 bits of `mean + std·Φ⁻¹((i + ½)/65536)`: 16 uniform random bits index a normal draw. */
function bf16Table(mean: number, std: number): Uint32Array {
  const key = `${mean}/${std}`;
  let t = tables.get(key);
  if (t === undefined) {
    quantiles ??= Float64Array.from({ length: 65536 }, (_, i) => inverseNormal((i + 0.5) / 65536));
    const f = Float32Array.from(quantiles, (z) => mean + std * z);
    t = Uint32Array.from(f32ToBf16(f));
    tables.set(key, t);
  }
  return t;
}

/** How a parameter is initialised: N(0, 1/fan_in) matrices, 1 + N(0, 0.1²) norm scales, N(0, 0.02²) biases. */
export function initOf(name: string, shape: readonly number[]): { mean: number; std: number } {
  if (shape.length >= 2) return { mean: 0, std: 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1)) };
  return name.endsWith('bias') ? { mean: 0, std: 0.02 } : { mean: 1, std: 0.1 };
}

/** splitmix32 step: a well-mixed 32-bit word from a counter. */
function mix32(x: number): number {
  let t = (x + 0x9e3779b9) | 0;
  t = Math.imul(t ^ (t >>> 16), 0x21f0aaad);
  t = Math.imul(t ^ (t >>> 15), 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

/** xorshift128 start state for one tensor: FNV-1a of the name, mixed with the seed. */
function seedState(seed: number, name: string): Int32Array {
  let h = 0x811c9dc5 ^ mix32(seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  const s = Int32Array.from([1, 2, 3, 4], (k) => mix32(h + Math.imul(k, 0x632be5ab)) | 0);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  return s;
}

/**
 * One xorshift128 word per two bf16 values: `out[i]` = table[low 16 bits] | table[high 16 bits] << 16.
 * State stays int32 throughout (uint32 values above 2³¹ would make V8 fall back to doubles: 3× slower).
 */
function fillPairs(out: Uint32Array, table: Uint32Array, s: Int32Array): void {
  let x = s[0]! | 0;
  let y = s[1]! | 0;
  let z = s[2]! | 0;
  let w = s[3]! | 0;
  for (let i = 0; i < out.length; i++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = w ^ (w >>> 19) ^ t ^ (t >>> 8);
    out[i] = table[w & 0xffff]! | (table[w >>> 16]! << 16);
  }
  s[0] = x;
  s[1] = y;
  s[2] = z;
  s[3] = w;
}

/** A BF16 tensor whose bytes are drawn as it is written (see the file comment). */
export function randomBf16Tensor(name: string, shape: readonly number[], seed: number): StreamedTensor {
  const { mean, std } = initOf(name, shape);
  const table = bf16Table(mean, std);
  let state = seedState(seed, name);
  return {
    name,
    dtype: 'BF16',
    shape,
    fill(chunk: Uint8Array, start: number): void {
      if (start === 0) state = seedState(seed, name);
      if (chunk.byteOffset % 4 !== 0 || chunk.byteLength % 2 !== 0)
        throw new Mask2DiTError('IO', `${name}: chunk must be 4-byte aligned and whole bf16 values`);
      const pairs = chunk.byteLength >>> 2;
      fillPairs(new Uint32Array(chunk.buffer, chunk.byteOffset, pairs), table, state);
      if (chunk.byteLength % 4 === 2) {
        const last = new Uint32Array(1); // an odd element count: the tensor's last value, from one more word
        fillPairs(last, table, state);
        new Uint16Array(chunk.buffer, chunk.byteOffset + 4 * pairs, 1)[0] = last[0]! & 0xffff;
      }
    },
  };
}

/** Random BF16 tensors for a name → shape list, in its order. */
export function randomWeights(shapes: Map<string, number[]>, seed: number): StreamedTensor[] {
  return [...shapes].map(([name, shape]) => randomBf16Tensor(name, shape, seed));
}

// ---------------------------------------------------------------------------------------------
// Tokenizer files

/** Pieces of a serialized SentencePiece `ModelProto` (repeated field 1), read without a protobuf library. */
export function sentencePieceCount(bytes: Uint8Array): number {
  let at = 0;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= bytes.length || shift > 49)
        throw new Mask2DiTError('IO', 'spiece.model: not a SentencePiece model (bad varint)');
      const b = bytes[at++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  let pieces = 0;
  while (at < bytes.length) {
    const tag = varint();
    const wire = tag % 8;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const n = varint(); // read before adding: `at += varint()` would add to the old `at`
      at += n;
    } else throw new Mask2DiTError('IO', `spiece.model: not a SentencePiece model (wire type ${wire})`);
    if (Math.floor(tag / 8) === 1) pieces++;
  }
  if (at !== bytes.length) throw new Mask2DiTError('IO', 'spiece.model: truncated');
  return pieces;
}

const special = (content: string, strip = false) => ({
  content,
  lstrip: strip,
  normalized: false,
  rstrip: strip,
  single_word: false,
});

/** tokenizer_config.json, special_tokens_map.json and added_tokens.json of a T5Tokenizer with `pieces` pieces. */
export function tokenizerFiles(pieces: number, maxLength: number): Record<string, string> {
  const extra = Array.from({ length: 100 }, (_, i) => `<extra_id_${i}>`);
  const idOf = (i: number) => pieces + 99 - i; // <extra_id_0> is the last id
  const decoder: Json = {
    0: { ...special('<pad>'), special: true },
    1: { ...special('</s>'), special: true },
    2: { ...special('<unk>'), special: true },
  };
  for (let i = 99; i >= 0; i--) decoder[idOf(i)] = { ...special(extra[i]!, true), special: true };
  return {
    'tokenizer_config.json': configText({
      add_prefix_space: true,
      added_tokens_decoder: decoder,
      additional_special_tokens: extra,
      clean_up_tokenization_spaces: true,
      eos_token: '</s>',
      extra_ids: 100,
      legacy: true,
      model_max_length: maxLength,
      pad_token: '<pad>',
      sp_model_kwargs: {},
      tokenizer_class: 'T5Tokenizer',
      unk_token: '<unk>',
    }),
    'special_tokens_map.json': configText({
      additional_special_tokens: extra,
      eos_token: special('</s>'),
      pad_token: special('<pad>'),
      unk_token: special('<unk>'),
    }),
    'added_tokens.json': configText(Object.fromEntries(extra.map((t, i) => [t, idOf(i)]))),
  };
}

// ---------------------------------------------------------------------------------------------
// The folder

/** The 2000-piece T5-style SentencePiece model the project ships with its tests. */
export const DEFAULT_SPIECE = fileURLToPath(new URL('../../test/fixtures/t5_tokenizer/spiece.model', import.meta.url));

export interface SyntheticOptions {
  scale?: Scale;
  seed?: number;
  /** Replace an existing folder (default false: OutputExistsError). */
  force?: boolean;
  /** The SentencePiece model copied to tokenizer/spiece.model (default `DEFAULT_SPIECE`). */
  spiece?: string;
  /** Override the transformer's `max_shard_size` in bytes (default 5e9; diffusers 0.30.3's own default is 1e10). */
  transformerShardSize?: number;
  /** Bytes written so far of the component being written, and its total. */
  onProgress?: (component: string, written: number, total: number) => void;
}

export interface ComponentSummary {
  parameters: number;
  /** Data bytes (= the index's total_size). */
  bytes: number;
  files: string[];
}

export interface SyntheticSummary {
  dir: string;
  scale: Scale;
  seed: number;
  transformer: ComponentSummary;
  textEncoder: ComponentSummary;
  vae: ComponentSummary;
  tokenizerPieces: number;
}

function summary(shapes: Map<string, number[]>, plan: ShardPlan, sub: string): ComponentSummary {
  const files = plan.files.map((f) => `${sub}/${f.file}`);
  return {
    parameters: parameterCount(shapes),
    bytes: plan.totalSize,
    files: plan.index !== undefined ? [...files, `${sub}/${plan.index}`] : files,
  };
}

function readme(spec: SyntheticSpec, s: Omit<SyntheticSummary, 'dir'>): string {
  const gb = (n: number) => (n >= 1e8 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(2)} MB`);
  return `# Synthetic Mask²DiT pipeline folder (${s.scale}, seed ${s.seed})

Written by mask2dit-ts ${VERSION} (\`scripts/make-synthetic-pipeline.ts\`). **The weights are random**
(bf16; N(0, 1/fan_in) matrices, 1 + N(0, 0.1²) norm scales, N(0, 0.02²) biases): this folder has the
files, config keys, tensor names, shapes and dtypes of the official Mask²DiT release (a CogVideoX-5B
fine-tune), so that loading, memory and benchmark code can run at ${s.scale === 'full' ? 'the real' : 'a tiny'} size. It generates noise.

| component | class | parameters | bytes | files |
|---|---|---|---|---|
| transformer | ${String(spec.transformer['_class_name'])} (attn_msk_version 2) | ${s.transformer.parameters} | ${gb(s.transformer.bytes)} | ${s.transformer.files.length} |
| text_encoder | T5EncoderModel (${String(spec.textEncoder['_name_or_path'])}) | ${s.textEncoder.parameters} | ${gb(s.textEncoder.bytes)} | ${s.textEncoder.files.length} |
| vae | AutoencoderKLCogVideoX | ${s.vae.parameters} | ${gb(s.vae.bytes)} | ${s.vae.files.length} |

- \`model_index.json\` is CogVideoX-5b's (\`CogVideoXPipeline\`): Mask²DiT's scripts load each component
  on its own (\`MultiPromptCogVideoXTransformer3DModel.from_pretrained(path, 2, subfolder="transformer")\`).
- \`tokenizer/spiece.model\` is NOT T5's 32000-piece vocabulary: it is the project's ${s.tokenizerPieces}-piece
  SentencePiece unigram test model (trained on botchan.txt, T5's conventions: pad 0, eos 1, unk 2), plus
  100 extra ids (\`<extra_id_0>\` = ${s.tokenizerPieces + 99}). Every id is below the encoder's ${String(spec.textEncoder['vocab_size'])}
  embedding rows, so the tokenizer → encoder path runs, but ids differ from the real tokenizer's.
- Shards follow \`save_pretrained(max_shard_size=…)\` (huggingface_hub's greedy split, in module order);
  each file's header lists its tensors by name, \`__metadata__\` = \`{"format": "pt"}\`.
- Config files are written as \`json.dumps(config, indent=2, sort_keys=True)\` writes them (floats as \`1.0\`, \`1e-05\`).
`;
}

/** Write `tensors` as `dir/<sub>/config.json` + sharded safetensors. */
async function writeComponent(
  dir: string,
  sub: string,
  config: Json,
  stem: string,
  tensors: StreamedTensor[],
  maxShardSize: number,
  onProgress?: SyntheticOptions['onProgress'],
) {
  const d = path.join(dir, sub);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'config.json'), configText(config));
  return writeShardedSafetensors(d, tensors, {
    stem,
    maxShardSize,
    ...(onProgress !== undefined ? { onProgress: (w, t) => onProgress(sub, w, t) } : {}),
  });
}

/**
 * Write a synthetic pipeline folder at `dir`. The whole folder is built under a temporary sibling
 * and renamed into place, so `dir` is either absent (or the old folder) or complete; an existing
 * `dir` is refused unless `force`.
 */
export async function writeSyntheticPipeline(dir: string, options: SyntheticOptions = {}): Promise<SyntheticSummary> {
  const scale = options.scale ?? 'full';
  const seed = options.seed ?? 0;
  const spec = syntheticSpec(scale);
  const target = path.resolve(dir);
  const exists = fs.existsSync(target);
  if (exists && options.force !== true) throw new OutputExistsError(dir);
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) throw new Mask2DiTError('IO', `${dir}: directory ${parent} does not exist`);
  const spiece = fs.readFileSync(options.spiece ?? DEFAULT_SPIECE);
  const pieces = sentencePieceCount(spiece);
  const vocab = spec.textEncoder['vocab_size'] as number;
  if (pieces + 100 > vocab)
    throw new Mask2DiTError(
      'CONFIG',
      `${options.spiece ?? DEFAULT_SPIECE}: ${pieces} pieces + 100 extra ids exceed the encoder's ${vocab} rows`,
    );
  parseSchedulerConfig(spec.scheduler, 'scheduler/scheduler_config.json');
  const shapes = syntheticShapes(spec);

  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const unregister = registerCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  try {
    fs.mkdirSync(tmp);
    fs.writeFileSync(path.join(tmp, 'model_index.json'), configText(spec.modelIndex));
    fs.mkdirSync(path.join(tmp, 'scheduler'));
    fs.writeFileSync(path.join(tmp, 'scheduler', 'scheduler_config.json'), configText(spec.scheduler));
    fs.mkdirSync(path.join(tmp, 'tokenizer'));
    fs.writeFileSync(path.join(tmp, 'tokenizer', 'spiece.model'), spiece);
    for (const [name, text] of Object.entries(tokenizerFiles(pieces, spec.maxTextLength)))
      fs.writeFileSync(path.join(tmp, 'tokenizer', name), text);
    const p = options.onProgress;
    const t = await writeComponent(
      tmp,
      'transformer',
      spec.transformer,
      'diffusion_pytorch_model',
      randomWeights(shapes.transformer, seed),
      options.transformerShardSize ?? spec.maxShardSize.transformer,
      p,
    );
    const e = await writeComponent(
      tmp,
      'text_encoder',
      spec.textEncoder,
      'model',
      randomWeights(shapes.textEncoder, seed),
      spec.maxShardSize.textEncoder,
      p,
    );
    const v = await writeComponent(
      tmp,
      'vae',
      spec.vae,
      'diffusion_pytorch_model',
      randomWeights(shapes.vae, seed),
      spec.maxShardSize.vae,
      p,
    );
    const result = {
      scale,
      seed,
      transformer: summary(shapes.transformer, t, 'transformer'),
      textEncoder: summary(shapes.textEncoder, e, 'text_encoder'),
      vae: summary(shapes.vae, v, 'vae'),
      tokenizerPieces: pieces,
    };
    fs.writeFileSync(path.join(tmp, 'README.md'), readme(spec, result));
    replaceFolder(tmp, target);
    return { dir: target, ...result };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    unregister();
  }
}
