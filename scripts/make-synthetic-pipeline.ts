/**
 * Write a synthetic Mask²DiT pipeline folder: the official release's layout, config keys, tensor
 * names, shapes and dtypes (bf16), with random weights (src/model/syntheticPipeline.ts).
 *
 *   node --import tsx scripts/make-synthetic-pipeline.ts --out DIR [--scale full|tiny] [--seed N] [--force]
 *        [--transformer-shard-size 5GB] [--spiece path/to/spiece.model]
 *
 * full: ~21 GB (transformer 5,570,283,072 + T5 encoder 4,762,310,656 + VAE parameters, bf16), written
 * at disk speed with two 16 MiB buffers of memory. tiny: the same files at test size (~0.3 MB).
 * Progress goes to stderr, a JSON summary of what was written to stdout.
 *
 * Where the configs come from (the official folder itself could not be fetched; every value below
 * agrees across the sources named):
 *
 * - transformer/config.json: the CogVideoX-5B transformer config — num_attention_heads 48,
 *   attention_head_dim 64 (inner 3072), num_layers 42, time_embed_dim 512, text_embed_dim 4096,
 *   in/out_channels 16, patch_size 2, patch_size_t null, sample 60×90×49, temporal_compression_ratio 4,
 *   max_text_seq_length 226, norm_eps 1e-5, attention_bias true, use_rotary_positional_embeddings true,
 *   use_learned_positional_embeddings false — as in diffusers scripts/convert_cogvideox_to_diffusers.py
 *   ("For 5B, num_layers 42, num_attention_heads 48, use_rotary_positional_embeddings True") and the
 *   verbatim 5B configs in taproot (pypi taproot 0.3.8, pretrained/…/cogvideox CogVideoXTransformer5B)
 *   and kijai's ComfyUI CogVideoX wrapper (cogVideoXTransformerConfig5B). The class and extra keys are
 *   Mask²DiT's (Tianhao-Qi/Mask2DiT videox_fun/models/cogvideox_transformer3d.py): `_class_name`
 *   MultiPromptCogVideoXTransformer3DModel, `attn_msk_version` 2 (register_to_config on top of
 *   videox_fun's CogVideoXTransformer3DModel keys, incl. patch_bias true and add_noise_in_inpaint_model
 *   false, no ofs_embed_dim), saved by `save_pretrained` under diffusers==0.30.3 (its requirements.txt).
 * - vae/config.json: AutoencoderKLCogVideoX with the 5B scaling_factor 0.7 (convert script: "For
 *   CogVideoX-2B, scaling_factor is 1.15258426. For 5B, it is 0.7"; kijai's cogVideoXVaeConfig5B):
 *   block_out_channels [128, 256, 256, 512], layers_per_block 3, latent_channels 16, norm_num_groups 32,
 *   norm_eps 1e-6, temporal_compression_ratio 4, sample 480×720, force_upcast true, no quant convs.
 * - scheduler/scheduler_config.json: CogVideoXDDIMScheduler, the project's COGVIDEOX_5B_SCHEDULER
 *   (convert script: v_prediction, rescale_betas_zero_snr true, timestep_spacing "trailing",
 *   snr_shift_scale 1.0 for 5B, clip_sample false, set_alpha_to_one true; taproot's 5B scheduler
 *   config has the same values).
 * - text_encoder/config.json: google/t5-v1_1-xxl's T5Config (the convert script's text_encoder_id):
 *   d_model 4096, d_kv 64, d_ff 10240, num_heads 64, num_layers 24, vocab_size 32128,
 *   feed_forward_proj gated-gelu (dense_act_fn gelu_new), relative_attention_num_buckets 32 /
 *   max_distance 128, layer_norm_epsilon 1e-6, tie_word_embeddings false, architectures
 *   [T5EncoderModel], torch_dtype bfloat16. Its checkpoint holds `shared.weight` only (transformers
 *   drops the tied `encoder.embed_tokens.weight` on save): total_size 9,524,621,312 = 4,762,310,656 × 2,
 *   the figure public model cards give for this encoder (e.g. exo's FLUX.1 text_encoder_2 size).
 * - tokenizer/: T5Tokenizer files as transformers saves google/t5-v1_1-xxl's with model_max_length
 *   226 (convert script TOKENIZER_MAX_LENGTH): legacy true, extra_ids 100, additional_special_tokens
 *   <extra_id_0..99>, added_tokens_decoder (extra ids lstrip/rstrip true) as in taproot's
 *   T5XXLTokenizer; spiece.model is the project's 2000-piece test model (see the folder's README.md).
 * - model_index.json: CogVideoX-5b's (CogVideoXPipeline; what the convert script's save_pretrained
 *   writes). Mask²DiT's scripts never read it: they load each subfolder on its own.
 * - Sharding: save_pretrained(max_shard_size="5GB") as the convert script (5·10⁹ bytes: the
 *   transformer in 3 shards, the encoder in 2, the VAE in one file). diffusers 0.30.3's own default
 *   is "10GB" (2 transformer shards: 9.93 + 1.22 GB): pass --transformer-shard-size 10GB for that layout
 *   (Mask²DiT's train script saves the transformer with save_pretrained's default).
 */
import { parseArgs } from 'node:util';
import { parseSize } from '../src/io/safetensorsShards.js';
import { SCALES, writeSyntheticPipeline, type Scale } from '../src/model/syntheticPipeline.js';

const USAGE =
  'usage: node --import tsx scripts/make-synthetic-pipeline.ts --out DIR [--scale full|tiny] [--seed N] [--force] [--transformer-shard-size 5GB] [--spiece FILE]';

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      scale: { type: 'string', default: 'full' },
      seed: { type: 'string', default: '0' },
      force: { type: 'boolean', default: false },
      'transformer-shard-size': { type: 'string' },
      spiece: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.out === undefined) fail('--out is required');
  if (!(SCALES as readonly string[]).includes(values.scale))
    fail(`--scale must be one of ${SCALES.join(', ')}, got ${values.scale}`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a non-negative integer, got ${values.seed}`);

  const started = Date.now();
  let last = 0;
  const summary = await writeSyntheticPipeline(values.out, {
    scale: values.scale as Scale,
    seed,
    force: values.force,
    ...(values['transformer-shard-size'] !== undefined
      ? { transformerShardSize: parseSize(values['transformer-shard-size']) }
      : {}),
    ...(values.spiece !== undefined ? { spiece: values.spiece } : {}),
    onProgress: (component, written, total) => {
      const now = Date.now();
      if (now - last < 2000 && written < total) return;
      last = now;
      const s = (now - started) / 1000;
      process.stderr.write(
        `${component}: ${(written / 1e9).toFixed(2)} / ${(total / 1e9).toFixed(2)} GB (${s.toFixed(0)} s)\n`,
      );
    },
  });
  process.stderr.write(`wrote ${summary.dir} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
