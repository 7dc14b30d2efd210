/**
 * The text encoder's `config.json`: Hugging Face `T5Config` keys verbatim (the encoder-only subset),
 * defaults = T5Config's defaults (t5-small), validated once at the boundary. Decoder-side and
 * bookkeeping keys of a real T5 config are accepted and ignored.
 */
import { z } from 'zod';
import { readJsonFile, validateConfig } from './configFile.js';

const posInt = z.number().int().positive();

export const TextEncoderConfigSchema = z
  .object({
    model_type: z.literal('t5').default('t5'),
    vocab_size: posInt.default(32128),
    d_model: posInt.default(512),
    d_kv: posInt.default(64),
    d_ff: posInt.default(2048),
    num_layers: posInt.default(6),
    num_heads: posInt.default(8),
    relative_attention_num_buckets: posInt.default(32),
    relative_attention_max_distance: posInt.default(128),
    dropout_rate: z.number().min(0).max(1).default(0.1),
    layer_norm_epsilon: z.number().positive().default(1e-6),
    feed_forward_proj: z.enum(['relu', 'gated-gelu']).default('relu'),
    pad_token_id: z.number().int().nonnegative().default(0),
    eos_token_id: z.number().int().nonnegative().default(1),
  })
  .superRefine((c, ctx) => {
    if (c.relative_attention_num_buckets < 4 || c.relative_attention_num_buckets % 2 !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['relative_attention_num_buckets'],
        message: `bidirectional buckets need an even count ≥ 4, got ${c.relative_attention_num_buckets}`,
      });
    }
    if (c.pad_token_id >= c.vocab_size || c.eos_token_id >= c.vocab_size) {
      ctx.addIssue({
        code: 'custom',
        path: ['vocab_size'],
        message: `pad/eos ids must be below vocab_size ${c.vocab_size}`,
      });
    }
  });

export type TextEncoderConfig = z.infer<typeof TextEncoderConfigSchema>;

/** Keys of a real T5 config.json that the encoder does not use. */
const KNOWN_IGNORED = new Set([
  '_name_or_path',
  '_note',
  'architectures',
  'classifier_dropout',
  'decoder_start_token_id',
  'dense_act_fn',
  'initializer_factor',
  'is_encoder_decoder',
  'is_gated_act',
  'n_positions',
  'num_decoder_layers',
  'output_past',
  'task_specific_params',
  'tie_word_embeddings',
  'torch_dtype',
  'transformers_version',
  'use_cache',
]);

/** Validate a parsed config.json object; `file` names it in errors. Unknown keys are logged and returned. */
export function parseTextEncoderConfig(
  raw: unknown,
  file = 'config.json',
): { config: TextEncoderConfig; unknownKeys: string[] } {
  const { data, unknownKeys } = validateConfig(
    TextEncoderConfigSchema,
    Object.keys(TextEncoderConfigSchema.shape),
    raw,
    file,
    'text encoder',
    KNOWN_IGNORED,
  );
  return { config: data, unknownKeys };
}

/** Read and validate a text encoder `config.json`. */
export function readTextEncoderConfig(file: string): { config: TextEncoderConfig; unknownKeys: string[] } {
  return parseTextEncoderConfig(readJsonFile(file), file);
}
