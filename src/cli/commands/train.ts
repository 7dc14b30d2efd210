/**
 * `mask2dit train vae|prepare|dit --run DIR`: training on the synthetic world, in stages that share a
 * run folder:
 *
 *   DIR/vae/{config.json, checkpoint.safetensors, loss.jsonl, loss.png}      train vae
 *   DIR/latents.safetensors                                                  train prepare (EMA VAE)
 *   DIR/dit/{transformer.json, text_encoder.json, checkpoint.safetensors, loss.jsonl, loss.png}   train dit
 *
 * A stage with a checkpoint continues only with `--resume` (exactly: same losses as an uninterrupted
 * run), or starts over with `--force`. Ctrl-C (or SIGTERM) saves a checkpoint, then exits 130.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../../errors.js';
import { HELD_OUT_FIRST_SEED } from '../../data/world.js';
import { parseTransformerConfig } from '../../config/transformerConfig.js';
import { parseTextEncoderConfig } from '../../config/textEncoderConfig.js';
import { parseVaeConfig } from '../../config/vaeConfig.js';
import { WeightSource } from '../../layers/weightSource.js';
import { Mask2DiTTransformer } from '../../model/transformer.js';
import { CogVideoXVAE } from '../../model/vae.js';
import { T5Encoder } from '../../text/textEncoder.js';
import { WordTokenizer } from '../../text/tokenizer.js';
import { loadCheckpoint, readCheckpointMeta, type CheckpointMeta } from '../../train/checkpoint.js';
import { ditObjective, perSceneText } from '../../train/ditObjective.js';
import type { SigmaSampling } from '../../train/flowMatchingObjective.js';
import { asDataset, encodeWorldClips, loadLatentGroups, readLatentsMetadata, saveLatentGroups } from '../../train/latentData.js';
import { writeLossCurve } from '../../train/lossCurve.js';
import { TRAIN_DEFAULTS, Trainer, type StepRecord, type TrainOptions } from '../../train/trainer.js';
import { vaeObjective } from '../../train/vaeObjective.js';
import { backendFromFlags } from '../common.js';
import { InterruptedError } from '../interrupt.js';
import { FlowMatchSchedulerConfigSchema, type FlowMatchSchedulerConfig } from '../../config/schedulerConfig.js';
import { saveModelFolder } from '../../model/modelFolder.js';
import type { M2Layer } from '../../layers/layer.js';

const WORLD = { framesPerScene: 9, width: 64, height: 64, minScenes: 2, maxScenes: 4 };
/** Training clips use world seeds below this; evaluation uses seeds from it on. */
export const TRAIN_SEEDS = HELD_OUT_FIRST_SEED;

interface StageOpts {
  run: string;
  steps: string;
  batch: string;
  lr: string;
  seed: string;
  warmup: string;
  checkpointEvery: string;
  until?: string;
  resume?: boolean;
  force?: boolean;
  quiet?: boolean;
}

const num = (v: string, flag: string, int = true) => {
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < 0) throw new Mask2DiTError('OPTION', `${flag}: expected a non-negative ${int ? 'integer' : 'number'}, got "${v}"`);
  return n;
};

function trainOptions(o: StageOpts): TrainOptions {
  const steps = num(o.steps, '--steps');
  const lr = num(o.lr, '--lr', false);
  return { ...TRAIN_DEFAULTS, lr, minLr: lr / 10, totalSteps: steps, warmupSteps: num(o.warmup, '--warmup'), seed: num(o.seed, '--seed') };
}

/** Refuse to clobber a stage without --resume/--force. */
function checkStage(dir: string, o: StageOpts): string {
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  if (fs.existsSync(ckpt) && o.resume !== true && o.force !== true) throw new Mask2DiTError('EXISTS', `${ckpt} exists: pass --resume to continue it or --force to start over`);
  if (o.resume === true && !fs.existsSync(ckpt)) throw new Mask2DiTError('CHECKPOINT', `--resume: ${ckpt} does not exist`);
  if (o.force === true && o.resume !== true) for (const f of ['checkpoint.safetensors', 'loss.jsonl', 'loss.png']) fs.rmSync(path.join(dir, f), { force: true });
  fs.mkdirSync(dir, { recursive: true });
  return ckpt;
}

/** Run the trainer to `steps` with progress, a loss log, checkpoints and a loss curve; Ctrl-C saves and exits 130. */
async function runStage(name: string, dir: string, trainer: Trainer, o: StageOpts): Promise<void> {
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  const log = path.join(dir, 'loss.jsonl');
  if (o.resume === true) {
    await trainer.resume(ckpt);
    // keep the log consistent with the checkpoint: drop records of steps after it
    if (fs.existsSync(log)) fs.writeFileSync(log, fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== '' && (JSON.parse(l) as StepRecord).step < trainer.step).map((l) => l + '\n').join(''));
  }
  const steps = o.until !== undefined ? Math.min(trainer.options.totalSteps, num(o.until, '--until')) : trainer.options.totalSteps;
  const every = Math.max(1, num(o.checkpointEvery, '--checkpoint-every'));
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint); // e.g. `kill`: a stage started in the background by a script ignores SIGINT
  const tty = process.stderr.isTTY && o.quiet !== true;
  const t0 = performance.now();
  const startStep = trainer.step;
  let recent: number[] = [];
  try {
    while (trainer.step < steps && !abort.signal.aborted) {
      const until = Math.min(steps, (Math.floor(trainer.step / every) + 1) * every);
      await trainer.run(until, {
        signal: abort.signal,
        log,
        onStep: (r) => {
          recent = [...recent.slice(-19), r.loss];
          const done = r.step + 1 - startStep;
          const perStep = (performance.now() - t0) / 1000 / done;
          const line = `${name} step ${r.step + 1}/${trainer.options.totalSteps}  loss ${r.loss.toFixed(4)} (avg20 ${(recent.reduce((a, b) => a + b, 0) / recent.length).toFixed(4)})  lr ${r.lr.toExponential(2)}  ${perStep.toFixed(2)} s/step  ETA ${(((steps - r.step - 1) * perStep) / 60).toFixed(1)} min`;
          if (tty) process.stderr.write(`\r${line}\x1b[K`);
          else if (o.quiet !== true && (r.step + 1) % 10 === 0) process.stderr.write(line + '\n');
        },
      });
      await trainer.save(ckpt);
      const losses = fs.readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as StepRecord).loss);
      await writeLossCurve(path.join(dir, 'loss.png'), losses, `${name} loss (log scale)`);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    if (tty) process.stderr.write('\n');
  }
  // main() prints the message and exits 130
  if (abort.signal.aborted) throw new InterruptedError(`interrupted: checkpoint saved at step ${trainer.step} (${ckpt}); continue with --resume`);
  if (o.quiet !== true) process.stderr.write(`${name}: ${trainer.step} of ${trainer.options.totalSteps} steps done; checkpoint ${ckpt}\n`);
}

function vaeConfigFor(widths: number[], latentChannels: number, temporalCompression: number): Record<string, unknown> {
  return {
    _class_name: 'AutoencoderKLCogVideoX', in_channels: 3, out_channels: 3, latent_channels: latentChannels, layers_per_block: 1, norm_num_groups: 4, norm_eps: 1e-6,
    block_out_channels: widths, down_block_types: widths.map(() => 'CogVideoXDownBlock3D'), up_block_types: widths.map(() => 'CogVideoXUpBlock3D'),
    temporal_compression_ratio: temporalCompression, sample_height: WORLD.height, sample_width: WORLD.width, scaling_factor: 1.0, shift_factor: null,
  };
}

/** The VAE config a checkpoint is tied to: `train prepare` calibrates `scaling_factor` after training, so it is left out. */
function trainedVaeConfig(raw: Record<string, unknown>): Record<string, unknown> {
  return { ...raw, scaling_factor: 1.0 }; // same key order as vaeConfigFor, so older checkpoints still match
}

/** The run's VAE `temporal_compression_ratio` (the transformer's must match it). */
function vaeTemporalCompression(run: string): number {
  const file = path.join(run, 'vae', 'config.json');
  return parseVaeConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file).config.temporal_compression_ratio;
}

/** Copy `ema.<module>.<name>` of a checkpoint into each module; returns the checkpoint's metadata. */
async function loadEma(file: string, modules: Record<string, M2Layer>): Promise<CheckpointMeta> {
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
async function emaVae(run: string): Promise<{ vae: CogVideoXVAE; step: number }> {
  const dir = path.join(run, 'vae');
  const { config } = parseVaeConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), path.join(dir, 'config.json'));
  const vae = new CogVideoXVAE(config, WeightSource.zeros());
  const { step } = await loadEma(path.join(dir, 'checkpoint.safetensors'), { vae });
  return { vae, step };
}

/**
 * The latents (and the scaling_factor prepare wrote) belong to the VAE checkpoint they were encoded
 * with: after the VAE trained on or was retrained they are stale. Datasets written before prepare
 * recorded the step (no `vae_step`) are taken as they are.
 */
async function checkLatentsFresh(run: string, metadata: Record<string, string>, vaeStep?: number): Promise<void> {
  const encodedAt = metadata['vae_step'];
  if (encodedAt === undefined) return;
  const file = path.join(run, 'vae', 'checkpoint.safetensors');
  const now = vaeStep ?? (await readCheckpointMeta(file)).step;
  if (String(now) !== encodedAt) {
    throw new Mask2DiTError('DATA', `${path.join(run, 'latents.safetensors')} was encoded by the VAE at step ${encodedAt}, but ${file} is now at step ${now}: run \`train prepare\` again (the latents and the scaling_factor are stale)`);
  }
}

/** Steps, wall time and final loss of a stage, from its loss log. */
function stageSummary(dir: string): { steps: number; hours: number; finalLoss: number } {
  const recs = fs.readFileSync(path.join(dir, 'loss.jsonl'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as StepRecord);
  const last = recs.slice(-50);
  return { steps: recs.length, hours: recs.reduce((a, r) => a + r.ms, 0) / 3.6e6, finalLoss: last.reduce((a, r) => a + r.loss, 0) / Math.max(1, last.length) };
}

const common = (c: Command, dflt: { steps: number; batch: number; lr: number; warmup: number }) =>
  c
    .requiredOption('--run <dir>', 'run folder (stages share it)')
    .option('--steps <n>', 'total steps (the cosine schedule ends here)', String(dflt.steps))
    .option('--batch <n>', 'batch size', String(dflt.batch))
    .option('--lr <x>', 'peak learning rate (AdamW; cosine to lr/10)', String(dflt.lr))
    .option('--warmup <n>', 'linear warmup steps', String(dflt.warmup))
    .option('--seed <n>', 'seed of the data order, noise and timesteps', '0')
    .option('--checkpoint-every <n>', 'steps between checkpoints (and loss-curve updates)', '50')
    .option('--until <n>', 'stop after this many completed steps (the schedule still ends at --steps); continue later with --resume')
    .option('--resume', 'continue from the stage checkpoint')
    .option('--force', 'start the stage over')
    .option('--quiet', 'no progress output');

interface CardFacts {
  clips: string;
  machine: string;
  commands: string;
  scheduler: FlowMatchSchedulerConfig;
  /** The DiT checkpoint's `objective` config (foreground weight, prediction, σ sampling). */
  objective: { foregroundWeight?: number; sigmaSampling?: string };
}

function modelCard(run: string, parts: { transformer: Mask2DiTTransformer; vae: CogVideoXVAE; textEncoder: T5Encoder }, meta: CardFacts): string {
  const v = stageSummary(path.join(run, 'vae'));
  const d = stageSummary(path.join(run, 'dit'));
  const t = parts.transformer.config;
  const n = (x: number) => x.toLocaleString('en-US');
  const x0 = meta.scheduler.prediction_type === 'sample';
  const objective = [
    `${x0 ? 'x₀-prediction' : 'flow-matching (velocity)'} loss`,
    `σ ${meta.objective.sigmaSampling ?? 'uniform'}`,
    ...((meta.objective.foregroundWeight ?? 1) !== 1 ? [`character latent pixels weighted ${meta.objective.foregroundWeight}×`] : []),
  ].join(', ');
  const sampler = `FlowMatchEulerDiscreteScheduler, shift ${meta.scheduler.shift}${x0 ? ', prediction_type sample (the model predicts x₀)' : ''}${meta.scheduler.stochastic_sampling ? ', stochastic sampling (fresh noise each step)' : ''}`;
  return `# mask2dit-world

A Mask²DiT model trained from scratch, in TypeScript on CPU, on the procedural multi-scene world of
\`src/data/\` (clips of 2–4 scenes × 9 frames at 64×64; one character per clip; captions from a small
grammar, later scenes say "it"). Weights are the EMA of training. Layout: \`weights/README.md\`.

| part | architecture | parameters | training |
|---|---|---|---|
| vae/ | AutoencoderKLCogVideoX, block_out_channels [${parts.vae.config.block_out_channels.join(', ')}], ${parts.vae.config.latent_channels} latent channels, ${parts.vae.spatialCompression}× space / ${parts.vae.temporalCompression}× time, scaling_factor ${parts.vae.config.scaling_factor} | ${n(parts.vae.countParams())} | ${v.steps} steps, ${v.hours.toFixed(2)} h; final loss (L1, character pixels weighted as in the commands below, + 1e-4·KL; mean of last 50) ${v.finalLoss.toFixed(4)} |
| transformer/ | MultiPromptCogVideoXTransformer3DModel, ${t.num_layers} layers, ${t.num_attention_heads}×${t.attention_head_dim} heads, ${t.use_rotary_positional_embeddings === true ? "3D RoPE" : "3D sin-cos positions"}, patch ${t.patch_size}, ${t.max_text_seq_length} text tokens a scene | ${n(parts.transformer.countParams())} | ${d.steps} steps jointly with the text encoder, ${d.hours.toFixed(2)} h; final loss (${objective}; mean of last 50) ${d.finalLoss.toFixed(4)} |
| text_encoder/ | T5-style encoder, d_model ${parts.textEncoder.config.d_model}, ${parts.textEncoder.config.num_layers} layers | ${n(parts.textEncoder.countParams())} | trained jointly with the transformer (from T5's initialisation) |
| tokenizer/ | word tokenizer of the world's grammar, ${t.max_text_seq_length} ids a scene | – | – |
| scheduler/ | ${sampler} | – | – |

Data: world clips of seeds below ${TRAIN_SEEDS.toLocaleString('en-US')} (evaluation uses seeds from there on);
the DiT saw ${meta.clips} precomputed clips. Objectives: README "Training". Machine: ${meta.machine}.

Reproduce (wasm backend, 2 cores):

\`\`\`bash
${meta.commands}
\`\`\`
`;
}

export function register(program: Command): void {
  const train = program.command('train').description('train the VAE and the DiT (+ text encoder) on the synthetic multi-scene world');

  common(train.command('vae').description('train the causal VAE on world scenes: L1 reconstruction + 1e-4·KL'), { steps: 600, batch: 1, lr: 1e-3, warmup: 20 })
    .option('--widths <list>', 'block_out_channels', '8,16,16,16')
    .option('--latent-channels <n>', 'latent channels', '16')
    .option('--temporal-compression <n>', 'frames per latent frame (1, 2, 4, …; at most 2^(blocks − 1))', '4')
    .option('--fg-weight <w>', 'loss weight of character pixels relative to background ones (1: plain L1)', '1')
    .action(async (o: StageOpts & { widths: string; latentChannels: string; temporalCompression: string; fgWeight: string }, cmd: Command) => {
      await backendFromFlags(cmd);
      const dir = path.join(o.run, 'vae');
      checkStage(dir, o);
      const cfgFile = path.join(dir, 'config.json');
      const raw = o.resume === true ? JSON.parse(fs.readFileSync(cfgFile, 'utf8')) : vaeConfigFor(o.widths.split(',').map((s) => num(s, '--widths')), num(o.latentChannels, '--latent-channels'), num(o.temporalCompression, '--temporal-compression'));
      const { config } = parseVaeConfig(raw, cfgFile);
      if (o.resume !== true) fs.writeFileSync(cfgFile, JSON.stringify(raw, null, 2) + '\n');
      const opts = trainOptions(o);
      const vae = new CogVideoXVAE(config, WeightSource.random(opts.seed + 1));
      const trainer = new Trainer('vae', { vae }, vaeObjective(vae, { batchSize: num(o.batch, '--batch'), klWeight: 1e-4, world: WORLD, clipSeeds: TRAIN_SEEDS, foregroundWeight: num(o.fgWeight, '--fg-weight', false) }), opts, { vae: JSON.stringify(trainedVaeConfig(raw)) });
      await runStage('vae', dir, trainer, o);
      trainer.dispose();
      vae.dispose();
    });

  train
    .command('prepare')
    .description('encode world clips with the trained (EMA) VAE into a latent dataset; sets the VAE scaling_factor to 1/std of the latents')
    .requiredOption('--run <dir>', 'run folder with vae/')
    .option('--clips <n>', 'number of training clips', '400')
    .action(async (o: { run: string; clips: string }, cmd: Command) => {
      await backendFromFlags(cmd);
      const { vae, step: vaeStep } = await emaVae(o.run);
      const tokenizer = WordTokenizer.forWorld(16);
      // scaling_factor: 1/std of the posterior means over 16 clips (as CogVideoX calibrates its VAE)
      const probe = encodeWorldClips(vae, tokenizer, { clips: 16, firstSeed: 0, world: WORLD });
      const all = probe.flatMap((g) => Array.from(g.latents));
      const mean = all.reduce((a, b) => a + b, 0) / all.length;
      // the probe is scaled by the config's scaling_factor (already calibrated when prepare runs again): undo it
      const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length) / vae.scalingFactor;
      const cfgFile = path.join(o.run, 'vae', 'config.json');
      const raw = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
      raw['scaling_factor'] = Number((1 / std).toPrecision(6));
      fs.writeFileSync(cfgFile, JSON.stringify(raw, null, 2) + '\n');
      const scaled = new CogVideoXVAE(parseVaeConfig(raw, cfgFile).config, WeightSource.zeros());
      for (const [n, v] of scaled.variables()) v.assign(vae.variables().get(n)!);
      vae.dispose();
      const clips = num(o.clips, '--clips');
      const groups = encodeWorldClips(scaled, tokenizer, { clips, firstSeed: 0, world: WORLD, onClip: (i) => (i + 1) % 50 === 0 && process.stderr.write(`prepare: ${i + 1}/${clips} clips\n`) });
      await saveLatentGroups(path.join(o.run, 'latents.safetensors'), groups, { scaling_factor: String(raw['scaling_factor']), clips: String(clips), vae_step: String(vaeStep) });
      scaled.dispose();
      process.stderr.write(`prepare: scaling_factor ${raw['scaling_factor']} (latent std ${std.toFixed(4)}); ${groups.map((g) => `${g.count} clips of ${g.scenes} scenes`).join(', ')}\n`);
    });

  common(train.command('dit').description('train the Mask²DiT transformer and the text encoder jointly: flow matching, joint + conditional objectives'), { steps: 1500, batch: 4, lr: 5e-4, warmup: 50 })
    .option('--layers <n>', 'transformer blocks', '4')
    .option('--heads <n>', 'attention heads', '4')
    .option('--head-dim <n>', 'attention head dim (multiple of 16)', '32')
    .option('--text-layers <n>', 'text encoder blocks', '2')
    .option('--patch-size <n>', 'latent pixels per token side (2 as CogVideoX; 4 keeps the token count of a 2× finer VAE)', '2')
    .option('--p-conditional <p>', 'probability of the segment-level conditional objective', '0.3')
    .option('--p-drop-text <p>', 'probability of dropping a scene prompt (for guidance)', '0.1')
    .option('--prediction <kind>', 'what the transformer predicts: flow (the velocity ε − x₀, as every reference flow model) or sample (the clean latents x₀; written to the exported scheduler config)', 'flow')
    .option('--positions <kind>', 'video token positions: rope (3D RoPE in attention, as CogVideoX-5B) or sincos (a 3D sin-cos table added to the tokens, as CogVideoX-2B)', 'rope')
    .option('--fg-weight <w>', "flow loss weight of the character's latent pixels relative to the background's (1: plain mean)", '1')
    .option('--sigma-sampling <kind>', 'how the noise level σ is drawn per clip: uniform, or logit-normal (sigmoid of N(0, 1), as SD3: more mid σ, fewer σ near 0)', 'uniform')
    .action(async (o: StageOpts & { layers: string; heads: string; headDim: string; textLayers: string; patchSize: string; pConditional: string; pDropText: string; fgWeight: string; positions: string; prediction: string; sigmaSampling: string }, cmd: Command) => {
      await backendFromFlags(cmd);
      if (o.prediction !== 'flow' && o.prediction !== 'sample') throw new Mask2DiTError('OPTION', `--prediction: expected flow or sample, got "${o.prediction}"`);
      const prediction = o.prediction === 'sample' ? 'sample' : 'flow_prediction';
      if (o.sigmaSampling !== 'uniform' && o.sigmaSampling !== 'logit-normal') throw new Mask2DiTError('OPTION', `--sigma-sampling: expected uniform or logit-normal, got "${o.sigmaSampling}"`);
      const sigmaSampling: SigmaSampling = o.sigmaSampling;
      if (o.positions !== 'rope' && o.positions !== 'sincos') throw new Mask2DiTError('OPTION', `--positions: expected rope or sincos, got "${o.positions}"`);
      const dir = path.join(o.run, 'dit');
      checkStage(dir, o);
      const { groups, metadata } = await loadLatentGroups(path.join(o.run, 'latents.safetensors'));
      await checkLatentsFresh(o.run, metadata);
      const [, C, h, w] = groups[0]!.latentShape;
      const tokenizer = WordTokenizer.forWorld(16);
      const D = num(o.heads, '--heads') * num(o.headDim, '--head-dim');
      const tFile = path.join(dir, 'transformer.json');
      const eFile = path.join(dir, 'text_encoder.json');
      const tRaw = o.resume === true ? JSON.parse(fs.readFileSync(tFile, 'utf8')) : {
        _class_name: 'MultiPromptCogVideoXTransformer3DModel', num_attention_heads: num(o.heads, '--heads'), attention_head_dim: num(o.headDim, '--head-dim'),
        num_layers: num(o.layers, '--layers'), in_channels: C, out_channels: C, text_embed_dim: D, max_text_seq_length: tokenizer.length, time_embed_dim: D,
        sample_height: h, sample_width: w, sample_frames: WORLD.framesPerScene, patch_size: num(o.patchSize, '--patch-size'), temporal_compression_ratio: vaeTemporalCompression(o.run), use_rotary_positional_embeddings: o.positions === 'rope', attn_msk_version: 2,
      };
      const eRaw = o.resume === true ? JSON.parse(fs.readFileSync(eFile, 'utf8')) : {
        vocab_size: tokenizer.vocabSize, d_model: D, d_kv: num(o.headDim, '--head-dim'), num_heads: num(o.heads, '--heads'), d_ff: 2 * D, num_layers: num(o.textLayers, '--text-layers'),
        feed_forward_proj: 'gated-gelu', relative_attention_num_buckets: 8, relative_attention_max_distance: 16, pad_token_id: 0, eos_token_id: 1,
      };
      const tCfg = parseTransformerConfig(tRaw, tFile).config;
      const eCfg = parseTextEncoderConfig(eRaw, eFile).config;
      if (o.resume !== true) {
        fs.writeFileSync(tFile, JSON.stringify(tRaw, null, 2) + '\n');
        fs.writeFileSync(eFile, JSON.stringify(eRaw, null, 2) + '\n');
      }
      const opts = trainOptions(o);
      const transformer = new Mask2DiTTransformer(tCfg, WeightSource.random(opts.seed + 2));
      const textEncoder = T5Encoder.init(eCfg, opts.seed + 3);
      const objective = ditObjective(transformer, groups.map(asDataset), {
        batchSize: num(o.batch, '--batch'), pConditional: num(o.pConditional, '--p-conditional', false), pDropText: num(o.pDropText, '--p-drop-text', false), emptyTokens: tokenizer.encode(''),
        foregroundWeight: num(o.fgWeight, '--fg-weight', false),
        prediction,
        sigmaSampling,
      }, perSceneText(textEncoder, tokenizer.length));
      // the default objective keeps the key set of checkpoints written before --prediction and --sigma-sampling existed
      const objectiveConfig = JSON.stringify({ foregroundWeight: num(o.fgWeight, '--fg-weight', false), ...(prediction === 'sample' && { prediction }), ...(sigmaSampling !== 'uniform' && { sigmaSampling }) });
      const schedulerFile = path.join(dir, 'scheduler.json');
      if (o.resume !== true) fs.writeFileSync(schedulerFile, JSON.stringify(FlowMatchSchedulerConfigSchema.parse({ shift: 1.0, prediction_type: prediction }), null, 2) + '\n');
      const trainer = new Trainer('dit', { transformer, text_encoder: textEncoder }, objective, opts, { transformer: JSON.stringify(tRaw), text_encoder: JSON.stringify(eRaw), objective: objectiveConfig });
      await runStage('dit', dir, trainer, o);
      trainer.dispose();
      transformer.dispose();
      textEncoder.dispose();
    });

  train
    .command('export')
    .description('write the EMA weights of a run as a pipeline folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/) with a model card')
    .requiredOption('--run <dir>', 'run folder with vae/ and dit/ checkpoints')
    .requiredOption('--out <dir>', 'the pipeline folder to write')
    .option('--commands <text>', 'the commands that trained it, for the model card', '')
    .option('--stochastic-sampling', 'write stochastic_sampling: true into the scheduler config (each Euler step re-noises x̂₀ with fresh noise)')
    .option('--force', 'replace an existing folder')
    .action(async (o: { run: string; out: string; commands: string; stochasticSampling?: boolean; force?: boolean }, cmd: Command) => {
      const info = await backendFromFlags(cmd);
      const { vae, step: vaeStep } = await emaVae(o.run);
      const dir = path.join(o.run, 'dit');
      const tRaw = JSON.parse(fs.readFileSync(path.join(dir, 'transformer.json'), 'utf8'));
      const eRaw = JSON.parse(fs.readFileSync(path.join(dir, 'text_encoder.json'), 'utf8'));
      const transformer = new Mask2DiTTransformer(parseTransformerConfig(tRaw, 'dit/transformer.json').config, WeightSource.zeros());
      const textEncoder = new T5Encoder(parseTextEncoderConfig(eRaw, 'dit/text_encoder.json').config, WeightSource.zeros());
      const { configs } = await loadEma(path.join(dir, 'checkpoint.safetensors'), { transformer, text_encoder: textEncoder });
      const metadata = await readLatentsMetadata(path.join(o.run, 'latents.safetensors')); // header only
      await checkLatentsFresh(o.run, metadata, vaeStep);
      const trained = fs.existsSync(path.join(dir, 'scheduler.json')) ? JSON.parse(fs.readFileSync(path.join(dir, 'scheduler.json'), 'utf8')) : { shift: 1.0 };
      const scheduler = FlowMatchSchedulerConfigSchema.parse({ ...trained, ...(o.stochasticSampling === true && { stochastic_sampling: true }) });
      const objective = configs['objective'] !== undefined ? JSON.parse(configs['objective']) : {};
      const card = modelCard(o.run, { transformer, vae, textEncoder }, { clips: metadata['clips'] ?? '?', machine: info.device, commands: o.commands, scheduler, objective });
      await saveModelFolder(o.out, { transformer, vae, textEncoder, tokenizer: WordTokenizer.forWorld(tRaw.max_text_seq_length), schedulerConfig: scheduler, samplerName: 'flow-euler' }, { force: o.force === true, files: { 'README.md': card } });
      process.stderr.write(`export: wrote ${o.out}\n`);
      for (const m of [vae, transformer, textEncoder]) m.dispose();
    });
}
