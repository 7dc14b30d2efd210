/**
 * `train export`: the EMA weights of a finished run (RUN/vae, RUN/dit; see ./stages.ts) as a pipeline
 * folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/) with a model
 * card that says how it was trained.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FlowMatchSchedulerConfigSchema, type FlowMatchSchedulerConfig } from '../config/schedulerConfig.js';
import { parseTextEncoderConfig } from '../config/textEncoderConfig.js';
import { parseTransformerConfig } from '../config/transformerConfig.js';
import { WeightSource } from '../layers/weightSource.js';
import { saveModelFolder } from '../model/modelFolder.js';
import { Mask2DiTTransformer } from '../model/transformer.js';
import type { CogVideoXVAE } from '../model/vae.js';
import { T5Encoder } from '../text/textEncoder.js';
import { WordTokenizer } from '../text/tokenizer.js';
import { readLatentsMetadata } from './latentData.js';
import { checkLatentsFresh, emaVae, INIT_FILE, loadEma, readJson, TRAIN_SEEDS } from './stages.js';
import type { StepRecord } from './trainer.js';

/** Steps, wall time and final loss (mean of the last 50; '–' before any step) of a stage, from its loss log. */
function stageSummary(dir: string): { steps: number; hours: number; finalLoss: string } {
  const log = path.join(dir, 'loss.jsonl');
  const recs = fs.existsSync(log) // a stage run with --steps 0 (e.g. a pipeline taken in as it is) has none
    ? fs
        .readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as StepRecord)
    : [];
  const last = recs.slice(-50);
  return {
    steps: recs.length,
    hours: recs.reduce((a, r) => a + r.ms, 0) / 3.6e6,
    finalLoss: last.length === 0 ? '–' : (last.reduce((a, r) => a + r.loss, 0) / last.length).toFixed(4),
  };
}

interface CardFacts {
  clips: string;
  machine: string;
  commands: string;
  scheduler: FlowMatchSchedulerConfig;
  /** The DiT checkpoint's `objective` config (foreground weight, prediction, σ sampling). */
  objective: {
    foregroundWeight?: number;
    foregroundSigmaMax?: number;
    sigmaSampling?: string;
    sigmaLocation?: number;
    temporalWeight?: number;
  };
}

function modelCard(
  run: string,
  parts: { transformer: Mask2DiTTransformer; vae: CogVideoXVAE; textEncoder: T5Encoder },
  meta: CardFacts,
): string {
  const v = stageSummary(path.join(run, 'vae'));
  const d = stageSummary(path.join(run, 'dit'));
  // a stage that started from a trained pipeline (`--init`) says so: its steps are the fine-tuning's
  const init = (stage: string) => readJson(path.join(run, stage, INIT_FILE), true);
  const [vInit, dInit] = [init('vae'), init('dit')];
  const base = (i: Record<string, unknown> | undefined) => (i === undefined ? '' : path.basename(String(i['from'])));
  const vaeTraining =
    vInit !== undefined && v.steps === 0
      ? `as in ${base(vInit)} (not trained further)`
      : `${vInit === undefined ? '' : `fine-tuned from ${base(vInit)}${vInit['freezeEncoder'] === true ? ' (decoder only: the encoder, so the latents, unchanged)' : ''}: `}${v.steps} steps, ${v.hours.toFixed(2)} h; final loss (L1 with the character weight and edge term of the commands below, + 1e-4·KL; mean of last 50) ${v.finalLoss}`;
  const dFrom = dInit === undefined ? '' : `fine-tuned from ${base(dInit)}: `;
  // the card of the model a stage started from, whose table says how that one was trained
  const fromCard = [vInit, dInit]
    .map((i) => (i === undefined ? undefined : path.join(String(i['from']), 'README.md')))
    .find((f) => f !== undefined && fs.existsSync(f));
  const baseTable =
    fromCard === undefined
      ? ''
      : `\n## Fine-tuned from ${base(vInit ?? dInit)}\n\nThe model the stages above started from, as its own card describes it:\n\n${fs
          .readFileSync(fromCard, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('|'))
          .join('\n')}\n`;
  const t = parts.transformer.config;
  const n = (x: number) => x.toLocaleString('en-US');
  const x0 = meta.scheduler.prediction_type === 'sample';
  const objective = [
    `${x0 ? 'x₀-prediction' : 'flow-matching (velocity)'} loss`,
    `σ ${meta.objective.sigmaSampling ?? 'uniform'}${meta.objective.sigmaLocation !== undefined ? ` (location ${meta.objective.sigmaLocation})` : ''}`,
    ...((meta.objective.foregroundWeight ?? 1) !== 1
      ? [
          `character latent pixels weighted ${meta.objective.foregroundWeight}×${meta.objective.foregroundSigmaMax !== undefined ? ` (faded out towards σ ${meta.objective.foregroundSigmaMax})` : ''}`,
        ]
      : []),
    ...(meta.objective.temporalWeight !== undefined
      ? [`plus ${meta.objective.temporalWeight}× the error of the predicted motion (frame differences of x̂₀)`]
      : []),
  ].join(', ');
  const sampler = `FlowMatchEulerDiscreteScheduler, shift ${meta.scheduler.shift}${x0 ? ', prediction_type sample (the model predicts x₀)' : ''}${meta.scheduler.stochastic_sampling ? ', stochastic sampling (fresh noise each step)' : ''}`;
  return `# mask2dit-world

A Mask²DiT model trained from scratch, in TypeScript on CPU, on the procedural multi-scene world of
\`src/data/\` (clips of 2–4 scenes × 9 frames at 64×64; one character per clip; captions from a small
grammar, later scenes say "it"). Weights are the EMA of training. Layout: \`weights/README.md\`.

| part | architecture | parameters | training |
|---|---|---|---|
| vae/ | AutoencoderKLCogVideoX, block_out_channels [${parts.vae.config.block_out_channels.join(', ')}], ${parts.vae.config.latent_channels} latent channels, ${parts.vae.spatialCompression}× space / ${parts.vae.temporalCompression}× time, scaling_factor ${parts.vae.config.scaling_factor} | ${n(parts.vae.countParams())} | ${vaeTraining} |
| transformer/ | MultiPromptCogVideoXTransformer3DModel, ${t.num_layers} layers, ${t.num_attention_heads}×${t.attention_head_dim} heads, ${t.use_rotary_positional_embeddings === true ? '3D RoPE' : '3D sin-cos positions'}, patch ${t.patch_size}, ${t.max_text_seq_length} text tokens a scene | ${n(parts.transformer.countParams())} | ${dFrom}${d.steps} steps jointly with the text encoder, ${d.hours.toFixed(2)} h; final loss (${objective}; mean of last 50) ${d.finalLoss} |
| text_encoder/ | T5-style encoder, d_model ${parts.textEncoder.config.d_model}, ${parts.textEncoder.config.num_layers} layers | ${n(parts.textEncoder.countParams())} | trained jointly with the transformer (from T5's initialisation) |
| tokenizer/ | word tokenizer of the world's grammar, ${t.max_text_seq_length} ids a scene | – | – |
| scheduler/ | ${sampler} | – | – |

Data: world clips of seeds below ${TRAIN_SEEDS.toLocaleString('en-US')} (evaluation uses seeds from there on);
the DiT saw ${meta.clips} precomputed clips. Objectives: README "Training". Machine: ${meta.machine}.
${baseTable}
Reproduce (wasm backend, 2 cores):

\`\`\`bash
${meta.commands}
\`\`\`
`;
}

export interface ExportOptions {
  /** The pipeline folder to write. */
  out: string;
  /** The commands that trained the run, for the model card. */
  commands: string;
  /** The machine it trained on, for the model card. */
  machine: string;
  /** Write `stochastic_sampling: true` into the scheduler config. */
  stochasticSampling: boolean;
  /** Replace an existing folder. */
  force: boolean;
}

/** Write the EMA weights of `run` as a pipeline folder with a model card; stale latents are refused. */
export async function exportRun(run: string, o: ExportOptions): Promise<void> {
  const { vae, step: vaeStep } = await emaVae(run);
  const dir = path.join(run, 'dit');
  const tRaw = readJson(path.join(dir, 'transformer.json'));
  const eRaw = readJson(path.join(dir, 'text_encoder.json'));
  const transformer = new Mask2DiTTransformer(
    parseTransformerConfig(tRaw, 'dit/transformer.json').config,
    WeightSource.zeros(),
  );
  const textEncoder = new T5Encoder(parseTextEncoderConfig(eRaw, 'dit/text_encoder.json').config, WeightSource.zeros());
  const { configs } = await loadEma(path.join(dir, 'checkpoint.safetensors'), {
    transformer,
    text_encoder: textEncoder,
  });
  const metadata = await readLatentsMetadata(path.join(run, 'latents.safetensors')); // header only
  await checkLatentsFresh(run, metadata, vaeStep);
  const trained = fs.existsSync(path.join(dir, 'scheduler.json'))
    ? readJson(path.join(dir, 'scheduler.json'))
    : { shift: 1.0 };
  const scheduler = FlowMatchSchedulerConfigSchema.parse({
    ...trained,
    ...(o.stochasticSampling && { stochastic_sampling: true }),
  });
  const objective = configs['objective'] !== undefined ? JSON.parse(configs['objective']) : {};
  const card = modelCard(
    run,
    { transformer, vae, textEncoder },
    { clips: metadata['clips'] ?? '?', machine: o.machine, commands: o.commands, scheduler, objective },
  );
  const tokenizer = WordTokenizer.forWorld(transformer.config.max_text_seq_length);
  await saveModelFolder(
    o.out,
    { transformer, vae, textEncoder, tokenizer, schedulerConfig: scheduler, samplerName: 'flow-euler' },
    { force: o.force, files: { 'README.md': card } },
  );
  for (const m of [vae, transformer, textEncoder]) m.dispose();
}
