/**
 * The transformer's `config.json`, with the reference (diffusers / Mask2DiT) keys verbatim, validated
 * once at the boundary. Defaults are the reference class defaults (CogVideoX-2B); derived values are
 * computed once in `resolveTransformerConfig`.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { log } from '../log.js';

export const TRANSFORMER_CLASSES = ['CogVideoXTransformer3DModel', 'MultiPromptCogVideoXTransformer3DModel'] as const;

const posInt = z.number().int().positive();

export const TransformerConfigSchema = z
  .object({
    _class_name: z.enum(TRANSFORMER_CLASSES).default('CogVideoXTransformer3DModel'),
    num_attention_heads: posInt.default(30),
    attention_head_dim: posInt.default(64),
    in_channels: posInt.default(16),
    out_channels: posInt.nullable().default(16),
    flip_sin_to_cos: z.boolean().default(true),
    freq_shift: z.number().int().default(0),
    time_embed_dim: posInt.default(512),
    text_embed_dim: posInt.default(4096),
    num_layers: posInt.default(30),
    dropout: z.number().min(0).max(1).default(0),
    attention_bias: z.boolean().default(true),
    sample_width: posInt.default(90),
    sample_height: posInt.default(60),
    sample_frames: posInt.default(49),
    patch_size: posInt.default(2),
    patch_size_t: posInt.nullable().default(null),
    temporal_compression_ratio: posInt.default(4),
    max_text_seq_length: posInt.default(226),
    activation_fn: z.literal('gelu-approximate').default('gelu-approximate'),
    timestep_activation_fn: z.literal('silu').default('silu'),
    norm_elementwise_affine: z.boolean().default(true),
    norm_eps: z.number().positive().default(1e-5),
    spatial_interpolation_scale: z.number().positive().default(1.875),
    temporal_interpolation_scale: z.number().positive().default(1.0),
    use_rotary_positional_embeddings: z.boolean().default(false),
    use_learned_positional_embeddings: z.boolean().default(false),
    patch_bias: z.boolean().default(true),
    ofs_embed_dim: z.null().default(null),
    attn_msk_version: z.literal(2).default(2),
    add_noise_in_inpaint_model: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.patch_size_t !== null) {
      ctx.addIssue({ code: 'custom', path: ['patch_size_t'], message: `CogVideoX 1.5 temporal patching is not supported yet (got ${c.patch_size_t}, expected null)` });
    }
    if (c.use_rotary_positional_embeddings && c.attention_head_dim % 16 !== 0) {
      // dim_t = d/4 and dim_h = dim_w = 3d/8 must each be even (rotation pairs)
      ctx.addIssue({ code: 'custom', path: ['attention_head_dim'], message: `3D RoPE splits the head dim 2:3:3 into rotation pairs, so it must be a multiple of 16, got ${c.attention_head_dim}` });
    }
    if (c.sample_height % c.patch_size !== 0 || c.sample_width % c.patch_size !== 0) {
      ctx.addIssue({ code: 'custom', path: ['sample_height'], message: `sample_height and sample_width must be multiples of patch_size ${c.patch_size}` });
    }
  });

export type TransformerConfigJson = z.infer<typeof TransformerConfigSchema>;

/** The validated config plus derived values. */
export interface TransformerConfig extends TransformerConfigJson {
  /** `num_attention_heads * attention_head_dim` */
  innerDim: number;
  /** `out_channels ?? in_channels` */
  outChannels: number;
  /** true for Mask2DiT's MultiPrompt class: scenes = text tokens / max_text_seq_length. */
  multiScene: boolean;
}

const KNOWN_IGNORED = new Set(['_diffusers_version', '_name_or_path', '_note']);

/** Validate a parsed config.json object; `file` names it in errors. Unknown keys are logged and returned. */
export function parseTransformerConfig(raw: unknown, file = 'config.json'): { config: TransformerConfig; unknownKeys: string[] } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(file, '(root)', 'expected a JSON object');
  const known = new Set(Object.keys(TransformerConfigSchema.shape));
  const unknownKeys = Object.keys(raw).filter((k) => !known.has(k) && !KNOWN_IGNORED.has(k));
  if (unknownKeys.length > 0) log.warn(`${file}: ignoring unknown transformer config keys: ${unknownKeys.join(', ')}`);
  const parsed = TransformerConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    const all = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(file, field, all);
  }
  const c = parsed.data;
  return {
    config: {
      ...c,
      innerDim: c.num_attention_heads * c.attention_head_dim,
      outChannels: c.out_channels ?? c.in_channels,
      multiScene: c._class_name === 'MultiPromptCogVideoXTransformer3DModel',
    },
    unknownKeys,
  };
}

/** Read and validate a transformer `config.json`. */
export function readTransformerConfig(file: string): { config: TransformerConfig; unknownKeys: string[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '(file)', `cannot read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '(file)', `not valid JSON: ${(e as Error).message}`);
  }
  return parseTransformerConfig(raw, file);
}
