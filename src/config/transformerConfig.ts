/**
 * The transformer's `config.json`, with the reference (diffusers / Mask2DiT) keys verbatim, validated
 * once at the boundary. Defaults are the reference class defaults (CogVideoX-2B); derived values are
 * computed once in `resolveTransformerConfig`.
 */
import { z } from 'zod';
import { readJsonFile, validateConfig } from './configFile.js';

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
      ctx.addIssue({
        code: 'custom',
        path: ['patch_size_t'],
        message: `CogVideoX 1.5 temporal patching is not supported yet (got ${c.patch_size_t}, expected null)`,
      });
    }
    if (c.use_rotary_positional_embeddings && c.attention_head_dim % 16 !== 0) {
      // dim_t = d/4 and dim_h = dim_w = 3d/8 must each be even (rotation pairs)
      ctx.addIssue({
        code: 'custom',
        path: ['attention_head_dim'],
        message: `3D RoPE splits the head dim 2:3:3 into rotation pairs, so it must be a multiple of 16, got ${c.attention_head_dim}`,
      });
    }
    if (c.sample_height % c.patch_size !== 0 || c.sample_width % c.patch_size !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['sample_height'],
        message: `sample_height and sample_width must be multiples of patch_size ${c.patch_size}`,
      });
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
export function parseTransformerConfig(
  raw: unknown,
  file = 'config.json',
): { config: TransformerConfig; unknownKeys: string[] } {
  const { data: c, unknownKeys } = validateConfig(
    TransformerConfigSchema,
    Object.keys(TransformerConfigSchema.shape),
    raw,
    file,
    'transformer',
    KNOWN_IGNORED,
  );
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
  return parseTransformerConfig(readJsonFile(file), file);
}
