/**
 * The stages of a training run on the synthetic world, in one run folder (`mask2dit train`):
 *
 *   RUN/vae/{config.json, checkpoint.safetensors, loss.jsonl, loss.png}        vaeStage
 *   RUN/latents.safetensors                                                    prepareLatents (EMA VAE)
 *   RUN/dit/{transformer.json, text_encoder.json, scheduler.json, checkpoint.safetensors, …}   ditStage
 *
 * A stage writes its configs when it starts and reads them back to resume; the trainer's checkpoint
 * records them too, so a resume with another architecture is refused. Running the trainer (progress,
 * checkpoints, Ctrl-C) is the caller's.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { HELD_OUT_FIRST_SEED } from '../data/world.js';
import { FlowMatchSchedulerConfigSchema } from '../config/schedulerConfig.js';
import { parseTextEncoderConfig } from '../config/textEncoderConfig.js';
import { parseTransformerConfig } from '../config/transformerConfig.js';
import { parseVaeConfig } from '../config/vaeConfig.js';
import type { M2Layer } from '../layers/layer.js';
import { WeightSource } from '../layers/weightSource.js';
import { Mask2DiTTransformer } from '../model/transformer.js';
import { CogVideoXVAE } from '../model/vae.js';
import { T5Encoder } from '../text/textEncoder.js';
import { WordTokenizer } from '../text/tokenizer.js';
import { loadCheckpoint, readCheckpointMeta, type CheckpointMeta } from './checkpoint.js';
import { ditObjective, perSceneText } from './ditObjective.js';
import type { SigmaSampling } from './flowMatchingObjective.js';
import { asDataset, encodeWorldClips, loadLatentGroups, saveLatentGroups, type LatentGroup } from './latentData.js';
import { Trainer, type TrainOptions } from './trainer.js';
import { vaeObjective } from './vaeObjective.js';

/** The world clips of training: 2–4 scenes × 9 frames at 64×64. */
export const TRAIN_WORLD = { framesPerScene: 9, width: 64, height: 64, minScenes: 2, maxScenes: 4 };
/** Training clips use world seeds below this; evaluation uses seeds from it on. */
export const TRAIN_SEEDS = HELD_OUT_FIRST_SEED;

export function readJson(file: string): Record<string, unknown>;
export function readJson(file: string, optional: true): Record<string, unknown> | undefined;
export function readJson(file: string, optional = false): Record<string, unknown> | undefined {
  if (optional && !fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}
const writeJson = (file: string, raw: unknown) => fs.writeFileSync(file, JSON.stringify(raw, null, 2) + '\n');

/** Where a stage started from, when it did not start from random weights (`--init`): `{ from, freezeEncoder? }`. */
export const INIT_FILE = 'init.json';

/** A stage ready to run: its trainer, and what to free once it ran. */
export interface Stage {
  trainer: Trainer;
  dispose(): void;
}

// ---- the VAE ---------------------------------------------------------------------------------------

export interface VaeArchitecture {
  widths: number[];
  latentChannels: number;
  /** Frames per latent frame (1, 2, 4, …; at most 2^(blocks − 1)). */
  temporalCompression: number;
}

function vaeConfigFor(a: VaeArchitecture): Record<string, unknown> {
  return {
    _class_name: 'AutoencoderKLCogVideoX',
    in_channels: 3,
    out_channels: 3,
    latent_channels: a.latentChannels,
    layers_per_block: 1,
    norm_num_groups: 4,
    norm_eps: 1e-6,
    block_out_channels: a.widths,
    down_block_types: a.widths.map(() => 'CogVideoXDownBlock3D'),
    up_block_types: a.widths.map(() => 'CogVideoXUpBlock3D'),
    temporal_compression_ratio: a.temporalCompression,
    sample_height: TRAIN_WORLD.height,
    sample_width: TRAIN_WORLD.width,
    scaling_factor: 1.0,
    shift_factor: null,
  };
}

/** The VAE config a checkpoint is tied to: `train prepare` calibrates `scaling_factor` after training, so it is left out. */
function trainedVaeConfig(raw: Record<string, unknown>): Record<string, unknown> {
  return { ...raw, scaling_factor: 1.0 }; // same key order as vaeConfigFor, so older checkpoints still match
}

export interface VaeStageOptions {
  /** A new stage's architecture; undefined to resume, with the config the stage wrote (or to start from `init`). */
  architecture?: VaeArchitecture | undefined;
  /** Start from this trained VAE (a diffusers `vae/` folder or a pipeline folder holding one): its config and weights. */
  init?: string | undefined;
  /** Keep the encoder as it is (only the decoder learns): the latents, and a DiT trained on them, stay valid. */
  freezeEncoder?: boolean;
  batchSize: number;
  /** Loss weight of character pixels relative to background ones (1: plain L1). */
  foregroundWeight: number;
  /** Weight of the edge term (vaeObjective's `edgeWeight`); 0: none. */
  edgeWeight?: number;
  train: TrainOptions;
}

/** Copy every parameter of `from` into `to` (same architecture), in the training layout; `from` is disposed. */
function copyWeights(from: M2Layer, to: M2Layer): void {
  for (const layer of [from, to]) layer.setTrainable(true);
  const src = from.variables();
  for (const [n, v] of to.variables()) v.assign(src.get(n)!);
  to.invalidateCaches();
  from.dispose();
}

/**
 * The VAE stage of folder `dir` (RUN/vae): L1 reconstruction (+ an edge term) + 1e-4·KL on world
 * scenes, from random weights or from a trained VAE (`init`, whose config the stage then takes).
 */
export async function vaeStage(dir: string, o: VaeStageOptions): Promise<Stage> {
  const cfgFile = path.join(dir, 'config.json');
  const from = o.init === undefined ? undefined : await CogVideoXVAE.fromPretrained(o.init); // a vae/ folder or a pipeline holding one;
  const raw =
    from !== undefined
      ? trainedVaeConfig(from.configJson())
      : o.architecture === undefined
        ? readJson(cfgFile)
        : vaeConfigFor(o.architecture);
  const { config } = parseVaeConfig(raw, cfgFile);
  if (o.architecture !== undefined || from !== undefined) writeJson(cfgFile, raw);
  if (o.init !== undefined)
    writeJson(path.join(dir, INIT_FILE), { from: path.resolve(o.init), freezeEncoder: o.freezeEncoder === true });
  else if (o.architecture !== undefined) fs.rmSync(path.join(dir, INIT_FILE), { force: true });
  const vae = new CogVideoXVAE(config, WeightSource.random(o.train.seed + 1));
  if (from !== undefined) copyWeights(from, vae);
  const edgeWeight = o.edgeWeight ?? 0;
  const objective = vaeObjective(vae, {
    batchSize: o.batchSize,
    klWeight: 1e-4,
    world: TRAIN_WORLD,
    clipSeeds: TRAIN_SEEDS,
    foregroundWeight: o.foregroundWeight,
    edgeWeight,
  });
  const freeze = o.freezeEncoder === true;
  // the default objective keeps the config set of checkpoints written before the edge term and freezing existed
  const objectiveConfig =
    edgeWeight > 0 || freeze ? { objective: JSON.stringify({ edgeWeight, freezeEncoder: freeze }) } : {};
  const trainer = new Trainer(
    'vae',
    { vae },
    objective,
    o.train,
    { vae: JSON.stringify(trainedVaeConfig(raw)), ...objectiveConfig },
    (ref) => freeze && ref.startsWith('vae.encoder.'),
  );
  return {
    trainer,
    dispose: () => {
      trainer.dispose();
      vae.dispose();
    },
  };
}

/** The run's VAE `temporal_compression_ratio` (the transformer's must match it). */
function vaeTemporalCompression(run: string): number {
  const file = path.join(run, 'vae', 'config.json');
  return parseVaeConfig(readJson(file), file).config.temporal_compression_ratio;
}

/** Copy `ema.<module>.<name>` of a checkpoint into each module; returns the checkpoint's metadata. */
export async function loadEma(file: string, modules: Record<string, M2Layer>): Promise<CheckpointMeta> {
  const { tensors, meta } = await loadCheckpoint(file);
  try {
    for (const [m, layer] of Object.entries(modules)) {
      for (const [n, v] of layer.variables()) {
        const t = tensors.get(`ema.${m}.${n}`);
        if (t === undefined) throw new Mask2DiTError('CHECKPOINT', `${file}: missing ema.${m}.${n}`);
        v.assign(t);
      }
      layer.invalidateCaches();
    }
    return meta;
  } finally {
    tf.dispose([...tensors.values()]);
  }
}

/** The run's VAE with its EMA weights, and the checkpoint step they come from. */
export async function emaVae(run: string): Promise<{ vae: CogVideoXVAE; step: number }> {
  const file = path.join(run, 'vae', 'config.json');
  const vae = new CogVideoXVAE(parseVaeConfig(readJson(file), file).config, WeightSource.zeros());
  const { step } = await loadEma(path.join(run, 'vae', 'checkpoint.safetensors'), { vae });
  return { vae, step };
}

// ---- the latent dataset ----------------------------------------------------------------------------

/**
 * The VAE `scaling_factor`: 1/std of the posterior means over 16 training clips (as CogVideoX
 * calibrates its VAE), to 6 digits; `std` is that of the unscaled latents.
 */
export function calibrateScalingFactor(
  vae: CogVideoXVAE,
  tokenizer: WordTokenizer,
): { scalingFactor: number; std: number } {
  const probe = encodeWorldClips(vae, tokenizer, { clips: 16, firstSeed: 0, world: TRAIN_WORLD });
  const all = probe.flatMap((g) => Array.from(g.latents));
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  // the probe is scaled by the config's scaling_factor (already calibrated when prepare runs again): undo it
  const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length) / vae.scalingFactor;
  return { scalingFactor: Number((1 / std).toPrecision(6)), std };
}

export interface PreparedLatents {
  scalingFactor: number;
  std: number;
  groups: LatentGroup[];
}

/**
 * `train prepare`: calibrate the EMA VAE's `scaling_factor` (written into RUN/vae/config.json) and
 * encode `clips` training clips with it into RUN/latents.safetensors, recording the VAE step.
 */
export async function prepareLatents(
  run: string,
  o: { clips: number; onClip?: (i: number) => void },
): Promise<PreparedLatents> {
  const { vae, step: vaeStep } = await emaVae(run);
  const tokenizer = WordTokenizer.forWorld(16);
  const { scalingFactor, std } = calibrateScalingFactor(vae, tokenizer);
  const cfgFile = path.join(run, 'vae', 'config.json');
  const raw = readJson(cfgFile);
  raw['scaling_factor'] = scalingFactor;
  writeJson(cfgFile, raw);
  const scaled = new CogVideoXVAE(parseVaeConfig(raw, cfgFile).config, WeightSource.zeros());
  for (const [n, v] of scaled.variables()) v.assign(vae.variables().get(n)!);
  vae.dispose();
  const groups = encodeWorldClips(scaled, tokenizer, {
    clips: o.clips,
    firstSeed: 0,
    world: TRAIN_WORLD,
    ...(o.onClip !== undefined && { onClip: o.onClip }),
  });
  await saveLatentGroups(path.join(run, 'latents.safetensors'), groups, {
    scaling_factor: String(scalingFactor),
    clips: String(o.clips),
    vae_step: String(vaeStep),
  });
  scaled.dispose();
  return { scalingFactor, std, groups };
}

/**
 * The latents (and the scaling_factor prepare wrote) belong to the VAE checkpoint they were encoded
 * with: after the VAE trained on or was retrained they are stale. Datasets written before prepare
 * recorded the step (no `vae_step`) are taken as they are.
 */
export async function checkLatentsFresh(
  run: string,
  metadata: Record<string, string>,
  vaeStep?: number,
): Promise<void> {
  const encodedAt = metadata['vae_step'];
  if (encodedAt === undefined) return;
  const file = path.join(run, 'vae', 'checkpoint.safetensors');
  const now = vaeStep ?? (await readCheckpointMeta(file)).step;
  if (String(now) !== encodedAt) {
    throw new Mask2DiTError(
      'DATA',
      `${path.join(run, 'latents.safetensors')} was encoded by the VAE at step ${encodedAt}, but ${file} is now at step ${now}: run \`train prepare\` again (the latents and the scaling_factor are stale)`,
    );
  }
}

// ---- the DiT ---------------------------------------------------------------------------------------

export interface DitArchitecture {
  layers: number;
  heads: number;
  headDim: number;
  textLayers: number;
  patchSize: number;
  /** Video token positions: 3D RoPE in attention (CogVideoX-5B) or a 3D sin-cos table (CogVideoX-2B). */
  positions: 'rope' | 'sincos';
}

export interface DitStageOptions {
  /** A new stage's architecture; undefined to resume, with the configs the stage wrote (or to start from `init`). */
  architecture?: DitArchitecture | undefined;
  /**
   * Start from a trained pipeline folder (its `transformer/` and `text_encoder/`, configs and weights),
   * e.g. to fine-tune the shipped model with another objective; its latent shape must be the run's.
   */
  init?: string | undefined;
  batchSize: number;
  pConditional: number;
  pDropText: number;
  foregroundWeight: number;
  /** Fade the character weight out above this σ (ditObjective's `foregroundSigmaMax`); undefined: constant. */
  foregroundSigmaMax?: number | undefined;
  prediction: 'flow_prediction' | 'sample';
  sigmaSampling: SigmaSampling;
  /** Location of logit-normal σ (ditObjective's `sigmaLocation`); undefined: 0. */
  sigmaLocation?: number | undefined;
  /** λ of the motion term (ditObjective's `temporalWeight`); undefined: 0. */
  temporalWeight?: number | undefined;
  train: TrainOptions;
}

/** The transformer and text-encoder configs of a new DiT stage, sized to the latents and the world's tokenizer. */
function ditConfigsFor(
  run: string,
  a: DitArchitecture,
  latentShape: [number, number, number, number],
  tokenizer: WordTokenizer,
): { transformer: Record<string, unknown>; textEncoder: Record<string, unknown> } {
  const [, C, h, w] = latentShape;
  const D = a.heads * a.headDim;
  const transformer = {
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: a.heads,
    attention_head_dim: a.headDim,
    num_layers: a.layers,
    in_channels: C,
    out_channels: C,
    text_embed_dim: D,
    max_text_seq_length: tokenizer.length,
    time_embed_dim: D,
    sample_height: h,
    sample_width: w,
    sample_frames: TRAIN_WORLD.framesPerScene,
    patch_size: a.patchSize,
    temporal_compression_ratio: vaeTemporalCompression(run),
    use_rotary_positional_embeddings: a.positions === 'rope',
    attn_msk_version: 2,
  };
  const textEncoder = {
    vocab_size: tokenizer.vocabSize,
    d_model: D,
    d_kv: a.headDim,
    num_heads: a.heads,
    d_ff: 2 * D,
    num_layers: a.textLayers,
    feed_forward_proj: 'gated-gelu',
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 16,
    pad_token_id: 0,
    eos_token_id: 1,
  };
  return { transformer, textEncoder };
}

/** Refuse an `init` pipeline whose transformer does not take the run's latents `[S, C, f, h, w]`. */
function checkInitFits(
  run: string,
  init: string,
  c: ReturnType<typeof parseTransformerConfig>['config'],
  latentShape: [number, number, number, number],
  prediction: DitStageOptions['prediction'],
): void {
  const schedFile = path.join(init, 'scheduler', 'scheduler_config.json');
  const trainedFor = readJson(schedFile, true)?.['prediction_type'] ?? 'flow_prediction';
  if (trainedFor !== prediction)
    throw new Mask2DiTError(
      'CONFIG',
      `${schedFile}: the pipeline predicts ${String(trainedFor)}, but this stage would train it to predict ${prediction} (pass --prediction ${trainedFor === 'sample' ? 'sample' : 'flow'})`,
    );
  const [, C, h, w] = latentShape;
  const tc = vaeTemporalCompression(run);
  if (c.in_channels !== C || c.sample_height !== h || c.sample_width !== w || c.temporal_compression_ratio !== tc)
    throw new Mask2DiTError(
      'CONFIG',
      `${path.join(init, 'transformer', 'config.json')}: takes ${c.in_channels}-channel ${c.sample_height}×${c.sample_width} latents at temporal compression ${c.temporal_compression_ratio}, but the run's latents are ${C}-channel ${h}×${w} at ${tc}`,
    );
}

/**
 * The DiT stage of RUN/dit: the transformer and the text encoder trained jointly on the latent
 * dataset (flow matching, joint + conditional objectives). Stale latents are refused.
 */
export async function ditStage(run: string, o: DitStageOptions): Promise<Stage> {
  const dir = path.join(run, 'dit');
  const { groups, metadata } = await loadLatentGroups(path.join(run, 'latents.safetensors'));
  await checkLatentsFresh(run, metadata);
  const tokenizer = WordTokenizer.forWorld(16);
  const [tFile, eFile] = [path.join(dir, 'transformer.json'), path.join(dir, 'text_encoder.json')];
  const raw =
    o.init !== undefined
      ? {
          transformer: readJson(path.join(o.init, 'transformer', 'config.json')),
          textEncoder: readJson(path.join(o.init, 'text_encoder', 'config.json')),
        }
      : o.architecture === undefined
        ? { transformer: readJson(tFile), textEncoder: readJson(eFile) }
        : ditConfigsFor(run, o.architecture, groups[0]!.latentShape, tokenizer);
  const tCfg = parseTransformerConfig(raw.transformer, tFile).config;
  const eCfg = parseTextEncoderConfig(raw.textEncoder, eFile).config;
  if (o.init !== undefined) {
    checkInitFits(run, o.init, tCfg, groups[0]!.latentShape, o.prediction);
    writeJson(path.join(dir, INIT_FILE), { from: path.resolve(o.init) });
  } else if (o.architecture !== undefined) fs.rmSync(path.join(dir, INIT_FILE), { force: true });
  if (o.architecture !== undefined || o.init !== undefined) {
    writeJson(tFile, raw.transformer);
    writeJson(eFile, raw.textEncoder);
    writeJson(
      path.join(dir, 'scheduler.json'),
      FlowMatchSchedulerConfigSchema.parse({ shift: 1.0, prediction_type: o.prediction }),
    );
  }
  const transformer = new Mask2DiTTransformer(tCfg, WeightSource.random(o.train.seed + 2));
  const textEncoder = T5Encoder.init(eCfg, o.train.seed + 3);
  if (o.init !== undefined) {
    copyWeights(await Mask2DiTTransformer.fromPretrained(o.init, { offload: 'none' }), transformer);
    copyWeights(await T5Encoder.fromPretrained(o.init, { offload: 'none' }), textEncoder);
  }
  const objective = ditObjective(
    transformer,
    groups.map(asDataset),
    {
      batchSize: o.batchSize,
      pConditional: o.pConditional,
      pDropText: o.pDropText,
      emptyTokens: tokenizer.encode(''),
      foregroundWeight: o.foregroundWeight,
      ...(o.foregroundSigmaMax !== undefined && { foregroundSigmaMax: o.foregroundSigmaMax }),
      prediction: o.prediction,
      sigmaSampling: o.sigmaSampling,
      ...(o.sigmaLocation !== undefined && { sigmaLocation: o.sigmaLocation }),
      ...(o.temporalWeight !== undefined && { temporalWeight: o.temporalWeight }),
    },
    perSceneText(textEncoder, tokenizer.length),
  );
  // the default objective keeps the key set of checkpoints written before --prediction and --sigma-sampling existed
  const objectiveConfig = JSON.stringify({
    foregroundWeight: o.foregroundWeight,
    ...(o.foregroundSigmaMax !== undefined && { foregroundSigmaMax: o.foregroundSigmaMax }),
    ...(o.prediction === 'sample' && { prediction: o.prediction }),
    ...(o.sigmaSampling !== 'uniform' && { sigmaSampling: o.sigmaSampling }),
    ...(o.sigmaLocation !== undefined && o.sigmaLocation !== 0 && { sigmaLocation: o.sigmaLocation }),
    ...(o.temporalWeight !== undefined && o.temporalWeight !== 0 && { temporalWeight: o.temporalWeight }),
  });
  const trainer = new Trainer('dit', { transformer, text_encoder: textEncoder }, objective, o.train, {
    transformer: JSON.stringify(raw.transformer),
    text_encoder: JSON.stringify(raw.textEncoder),
    objective: objectiveConfig,
  });
  return {
    trainer,
    dispose: () => {
      trainer.dispose();
      transformer.dispose();
      textEncoder.dispose();
    },
  };
}
