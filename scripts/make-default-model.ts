/**
 * Writes the default model `weights/mask2dit-world/`: an UNTRAINED placeholder with the layout of the
 * model that issue 8 trains (same folder structure, same component classes, same geometry), so that
 * every command runs end to end before the real weights exist. Deterministic: the same seed gives the
 * same bytes.
 *
 *   npx tsx scripts/make-default-model.ts [--out weights/mask2dit-world] [--seed 20250607] [--force]
 *
 * Geometry: 64×64 frames; VAE 8× spatial / 4× temporal compression (4 blocks, 2 of them also in
 * time) to 4 latent channels of 8×8; transformer patch 2 → 16 tokens per latent frame, 3D RoPE,
 * `max_text_seq_length` 16 = the tokenizer's length, `text_embed_dim` = the T5 encoder's d_model;
 * flow-matching Euler sampler (shift 1).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/index.js';
import { FlowMatchSchedulerConfigSchema } from '../src/config/schedulerConfig.js';
import { parseTextEncoderConfig } from '../src/config/textEncoderConfig.js';
import { parseTransformerConfig } from '../src/config/transformerConfig.js';
import { parseVaeConfig } from '../src/config/vaeConfig.js';
import { WeightSource } from '../src/layers/weightSource.js';
import { DEFAULT_MODEL_DIR, saveModelFolder } from '../src/model/modelFolder.js';
import { Mask2DiTTransformer } from '../src/model/transformer.js';
import { CogVideoXVAE } from '../src/model/vae.js';
import { T5Encoder } from '../src/text/textEncoder.js';
import { WordTokenizer } from '../src/text/tokenizer.js';

/** Text tokens per scene (tokenizer length = transformer max_text_seq_length). */
export const TEXT_LENGTH = 16;
export const TEXT_DIM = 32;

export const VAE_CONFIG = {
  block_out_channels: [16, 16, 32, 32],
  latent_channels: 4,
  layers_per_block: 1,
  norm_num_groups: 4,
  temporal_compression_ratio: 4,
  sample_height: 64,
  sample_width: 64,
  scaling_factor: 1.0,
};

export const TRANSFORMER_CONFIG = {
  _class_name: 'MultiPromptCogVideoXTransformer3DModel',
  num_attention_heads: 2,
  attention_head_dim: 16,
  in_channels: 4,
  out_channels: 4,
  time_embed_dim: 32,
  text_embed_dim: TEXT_DIM,
  num_layers: 2,
  sample_width: 8,
  sample_height: 8,
  sample_frames: 9,
  patch_size: 2,
  max_text_seq_length: TEXT_LENGTH,
  use_rotary_positional_embeddings: true,
  use_learned_positional_embeddings: false,
};

export function textEncoderConfig(vocabSize: number) {
  return { vocab_size: vocabSize, d_model: TEXT_DIM, d_kv: 8, d_ff: 64, num_layers: 2, num_heads: 4, relative_attention_num_buckets: 8, relative_attention_max_distance: 32, dropout_rate: 0, feed_forward_proj: 'relu' };
}

const README = `# mask2dit-world (untrained placeholder)

**These weights are random. This model is NOT trained and produces noise-like videos.**

It exists so that \`mask2dit generate\`, \`extend\`, \`attention\` and \`inspect\` run end to end
before the real model exists; issue 8 replaces it with a model trained on the synthetic world, in
exactly this layout (see \`weights/README.md\`).

Made by \`npx tsx scripts/make-default-model.ts --seed SEED\` (deterministic). Components:

| folder | class | size |
|---|---|---|
| transformer/ | MultiPromptCogVideoXTransformer3DModel, 2 layers, 2 heads × 16, 3D RoPE, text 16 × 32 | random N(0, 1/fan_in) |
| vae/ | AutoencoderKLCogVideoX, block_out_channels [16, 16, 32, 32], 4 latent channels (8× space, 4× time) | random |
| text_encoder/ | T5 encoder, d_model 32, 2 layers | Hugging Face init |
| tokenizer/ | word tokenizer of the world's caption grammar, 16 ids per caption | - |
| scheduler/ | FlowMatchEulerDiscreteScheduler, shift 1 | - |
`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: DEFAULT_MODEL_DIR }, seed: { type: 'string', default: '20250607' }, force: { type: 'boolean', default: false } } });
  const seed = Number(values.seed);
  await selectBackend('cpu');
  const tokenizer = WordTokenizer.forWorld(TEXT_LENGTH);
  const textEncoder = T5Encoder.init(parseTextEncoderConfig(textEncoderConfig(tokenizer.vocabSize), 'text encoder config').config, seed);
  const transformer = new Mask2DiTTransformer(parseTransformerConfig(TRANSFORMER_CONFIG, 'transformer config').config, WeightSource.random(seed + 1));
  const vae = new CogVideoXVAE(parseVaeConfig(VAE_CONFIG, 'vae config').config, WeightSource.random(seed + 2));
  const schedulerConfig = FlowMatchSchedulerConfigSchema.parse({ shift: 1.0 });
  try {
    await saveModelFolder(values.out, { transformer, vae, textEncoder, tokenizer, schedulerConfig, samplerName: 'flow-euler' }, { force: values.force, files: { 'README.md': README } });
    const count = (m: { countParams(): number }) => m.countParams().toLocaleString('en-US');
    process.stdout.write(`wrote ${path.resolve(values.out)}: transformer ${count(transformer)}, vae ${count(vae)}, text encoder ${count(textEncoder)} parameters\n`);
  } finally {
    tf.dispose();
    transformer.dispose();
    vae.dispose();
    textEncoder.dispose();
  }
}

await main();
