/**
 * The CogVideoX VAE's `config.json` (`AutoencoderKLCogVideoX`), with the reference keys verbatim,
 * validated once at the boundary. Defaults are the reference class defaults (the CogVideoX-2B/5B
 * VAE); derived values are computed once in `parseVaeConfig`.
 */
import { z } from 'zod';
import { readJsonFile, validateConfig } from './configFile.js';

const posInt = z.number().int().positive();

export const VaeConfigSchema = z
  .object({
    _class_name: z.literal('AutoencoderKLCogVideoX').default('AutoencoderKLCogVideoX'),
    in_channels: posInt.default(3),
    out_channels: posInt.default(3),
    down_block_types: z.array(z.literal('CogVideoXDownBlock3D')).min(1).default(Array(4).fill('CogVideoXDownBlock3D')),
    up_block_types: z.array(z.literal('CogVideoXUpBlock3D')).min(1).default(Array(4).fill('CogVideoXUpBlock3D')),
    block_out_channels: z.array(posInt).min(1).default([128, 256, 256, 512]),
    latent_channels: posInt.default(16),
    layers_per_block: posInt.default(3),
    act_fn: z.enum(['silu', 'swish']).default('silu'),
    norm_eps: z.number().positive().default(1e-6),
    norm_num_groups: posInt.default(32),
    temporal_compression_ratio: posInt.default(4),
    sample_height: posInt.default(480),
    sample_width: posInt.default(720),
    scaling_factor: z.number().positive().default(1.15258426),
    shift_factor: z.number().nullable().default(null),
    latents_mean: z.array(z.number()).nullable().default(null),
    latents_std: z.array(z.number()).nullable().default(null),
    force_upcast: z.union([z.boolean(), z.number()]).default(true),
    use_quant_conv: z.boolean().default(false),
    use_post_quant_conv: z.boolean().default(false),
    invert_scale_latents: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    const n = c.block_out_channels.length;
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.down_block_types.length !== n)
      issue('down_block_types', `expected ${n} entries (one per block_out_channels), got ${c.down_block_types.length}`);
    if (c.up_block_types.length !== n)
      issue('up_block_types', `expected ${n} entries (one per block_out_channels), got ${c.up_block_types.length}`);
    const bad = c.block_out_channels.filter((ch) => ch % c.norm_num_groups !== 0);
    if (bad.length > 0)
      issue(
        'block_out_channels',
        `every entry must be a multiple of norm_num_groups ${c.norm_num_groups}, got ${bad.join(', ')}`,
      );
    const level = Math.log2(c.temporal_compression_ratio);
    if (!Number.isInteger(level))
      issue('temporal_compression_ratio', `expected a power of 2, got ${c.temporal_compression_ratio}`);
    else if (level > n - 1)
      issue(
        'temporal_compression_ratio',
        `log2(${c.temporal_compression_ratio}) = ${level} exceeds the ${n - 1} resampling blocks`,
      );
    if (c.use_quant_conv) issue('use_quant_conv', 'quant_conv is not supported (CogVideoX checkpoints set it false)');
    if (c.use_post_quant_conv)
      issue('use_post_quant_conv', 'post_quant_conv is not supported (CogVideoX checkpoints set it false)');
  });

export type VaeConfigJson = z.infer<typeof VaeConfigSchema>;

/** The validated config plus derived values. */
export interface VaeConfig extends VaeConfigJson {
  /** `log2(temporal_compression_ratio)`: how many resampling blocks also resample time. */
  temporalCompressLevel: number;
  /** `2^(blocks - 1)`: pixels per latent pixel along H and W. */
  spatialCompression: number;
}

const KNOWN_IGNORED = new Set(['_diffusers_version', '_name_or_path', '_note', 'sample_size']);

/** Validate a parsed config.json object; `file` names it in errors. Unknown keys are logged and returned. */
export function parseVaeConfig(raw: unknown, file = 'config.json'): { config: VaeConfig; unknownKeys: string[] } {
  const { data: c, unknownKeys } = validateConfig(
    VaeConfigSchema,
    Object.keys(VaeConfigSchema.shape),
    raw,
    file,
    'VAE',
    KNOWN_IGNORED,
  );
  return {
    config: {
      ...c,
      temporalCompressLevel: Math.log2(c.temporal_compression_ratio),
      spatialCompression: 2 ** (c.block_out_channels.length - 1),
    },
    unknownKeys,
  };
}

/** Read and validate a VAE `config.json`. */
export function readVaeConfig(file: string): { config: VaeConfig; unknownKeys: string[] } {
  return parseVaeConfig(readJsonFile(file), file);
}
