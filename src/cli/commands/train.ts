/**
 * `mask2dit train vae|prepare|dit --run DIR`: training on the synthetic world, in stages that share a
 * run folder:
 *
 *   DIR/vae/{config.json, checkpoint.safetensors, loss.jsonl, loss.png}      train vae
 *   DIR/latents.safetensors                                                  train prepare (EMA VAE)
 *   DIR/dit/{transformer.json, text_encoder.json, checkpoint.safetensors, loss.jsonl, loss.png}   train dit
 *
 * A stage with a checkpoint continues only with `--resume` (exactly: same losses as an uninterrupted
 * run), or starts over with `--force`. Ctrl-C (or SIGTERM) saves a checkpoint, then exits 130 (143 for SIGTERM).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { Mask2DiTError } from '../../errors.js';
import { exportRun } from '../../train/exportRun.js';
import type { SigmaSampling } from '../../train/flowMatchingObjective.js';
import { writeLossCurve } from '../../train/lossCurve.js';
import { ditStage, prepareLatents, vaeStage, type DitArchitecture } from '../../train/stages.js';
import { TRAIN_DEFAULTS, type StepRecord, type Trainer, type TrainOptions } from '../../train/trainer.js';
import { backendFromFlags } from '../common.js';
import { InterruptedError, type InterruptSignal } from '../interrupt.js';

/** Training clips use world seeds below this; evaluation uses seeds from it on. */
export { TRAIN_SEEDS } from '../../train/stages.js';

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
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < 0)
    throw new Mask2DiTError('OPTION', `${flag}: expected a non-negative ${int ? 'integer' : 'number'}, got "${v}"`);
  return n;
};

function trainOptions(o: StageOpts): TrainOptions {
  const steps = num(o.steps, '--steps');
  const lr = num(o.lr, '--lr', false);
  return {
    ...TRAIN_DEFAULTS,
    lr,
    minLr: lr / 10,
    totalSteps: steps,
    warmupSteps: num(o.warmup, '--warmup'),
    seed: num(o.seed, '--seed'),
  };
}

/** Refuse to clobber a stage without --resume/--force. */
function checkStage(dir: string, o: StageOpts): string {
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  if (fs.existsSync(ckpt) && o.resume !== true && o.force !== true)
    throw new Mask2DiTError('EXISTS', `${ckpt} exists: pass --resume to continue it or --force to start over`);
  if (o.resume === true && !fs.existsSync(ckpt))
    throw new Mask2DiTError('CHECKPOINT', `--resume: ${ckpt} does not exist`);
  if (o.force === true && o.resume !== true)
    for (const f of ['checkpoint.safetensors', 'loss.jsonl', 'loss.png']) fs.rmSync(path.join(dir, f), { force: true });
  fs.mkdirSync(dir, { recursive: true });
  return ckpt;
}

/** Run the trainer to `steps` with progress, a loss log, checkpoints and a loss curve; Ctrl-C saves and exits 130 (SIGTERM: 143). */
async function runStage(name: string, dir: string, trainer: Trainer, o: StageOpts): Promise<void> {
  const ckpt = path.join(dir, 'checkpoint.safetensors');
  const log = path.join(dir, 'loss.jsonl');
  if (o.resume === true) {
    await trainer.resume(ckpt);
    // keep the log consistent with the checkpoint: drop records of steps after it
    if (fs.existsSync(log))
      fs.writeFileSync(
        log,
        fs
          .readFileSync(log, 'utf8')
          .split('\n')
          .filter((l) => l !== '' && (JSON.parse(l) as StepRecord).step < trainer.step)
          .map((l) => l + '\n')
          .join(''),
      );
  }
  const steps =
    o.until !== undefined ? Math.min(trainer.options.totalSteps, num(o.until, '--until')) : trainer.options.totalSteps;
  const every = Math.max(1, num(o.checkpointEvery, '--checkpoint-every'));
  const abort = new AbortController();
  let received: InterruptSignal = 'SIGINT';
  const onSigint = (s: NodeJS.Signals) => {
    if (s === 'SIGTERM') received = 'SIGTERM';
    abort.abort();
  };
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
      const losses = fs
        .readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as StepRecord).loss);
      await writeLossCurve(path.join(dir, 'loss.png'), losses, `${name} loss (log scale)`);
    }
    // `--steps 0` from a fresh start (e.g. a pipeline taken in with --init, as it is): its checkpoint at step 0
    if (!fs.existsSync(ckpt) && !abort.signal.aborted) await trainer.save(ckpt);
  } finally {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    if (tty) process.stderr.write('\n');
  }
  // main() prints the message and exits 130 (SIGTERM: 143)
  if (abort.signal.aborted)
    throw new InterruptedError(
      received,
      `interrupted: checkpoint saved at step ${trainer.step} (${ckpt}); continue with --resume`,
    );
  if (o.quiet !== true)
    process.stderr.write(`${name}: ${trainer.step} of ${trainer.options.totalSteps} steps done; checkpoint ${ckpt}\n`);
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
    .option(
      '--until <n>',
      'stop after this many completed steps (the schedule still ends at --steps); continue later with --resume',
    )
    .option('--resume', 'continue from the stage checkpoint')
    .option('--force', 'start the stage over')
    .option('--quiet', 'no progress output');

type VaeFlags = StageOpts & {
  widths: string;
  latentChannels: string;
  temporalCompression: string;
  fgWeight: string;
  edgeWeight: string;
  init?: string;
  freezeEncoder?: boolean;
};
type DitFlags = StageOpts & {
  layers: string;
  heads: string;
  headDim: string;
  textLayers: string;
  patchSize: string;
  pConditional: string;
  pDropText: string;
  fgWeight: string;
  fgSigmaMax?: string;
  init?: string;
  positions: string;
  prediction: string;
  sigmaSampling: string;
  sigmaLocation?: string;
  temporalWeight: string;
};

async function trainVae(o: VaeFlags, cmd: Command): Promise<void> {
  await backendFromFlags(cmd);
  const dir = path.join(o.run, 'vae');
  checkStage(dir, o);
  if (o.freezeEncoder === true && o.init === undefined && o.resume !== true)
    throw new Mask2DiTError('OPTION', '--freeze-encoder: needs --init (a random encoder would stay random)');
  // a resumed stage keeps the architecture it started with (its config.json); --init brings its own
  const architecture =
    o.resume === true || o.init !== undefined
      ? undefined
      : {
          widths: o.widths.split(',').map((s) => num(s, '--widths')),
          latentChannels: num(o.latentChannels, '--latent-channels'),
          temporalCompression: num(o.temporalCompression, '--temporal-compression'),
        };
  const stage = await vaeStage(dir, {
    architecture,
    init: o.resume === true ? undefined : o.init,
    freezeEncoder: o.freezeEncoder === true,
    batchSize: num(o.batch, '--batch'),
    foregroundWeight: num(o.fgWeight, '--fg-weight', false),
    edgeWeight: num(o.edgeWeight, '--edge-weight', false),
    train: trainOptions(o),
  });
  await runStage('vae', dir, stage.trainer, o);
  stage.dispose();
}

async function trainPrepare(o: { run: string; clips: string }, cmd: Command): Promise<void> {
  await backendFromFlags(cmd);
  const clips = num(o.clips, '--clips');
  const p = await prepareLatents(o.run, {
    clips,
    onClip: (i) => (i + 1) % 50 === 0 && process.stderr.write(`prepare: ${i + 1}/${clips} clips\n`),
  });
  process.stderr.write(
    `prepare: scaling_factor ${p.scalingFactor} (latent std ${p.std.toFixed(4)}); ${p.groups.map((g) => `${g.count} clips of ${g.scenes} scenes`).join(', ')}\n`,
  );
}

async function trainDit(o: DitFlags, cmd: Command): Promise<void> {
  await backendFromFlags(cmd);
  if (o.prediction !== 'flow' && o.prediction !== 'sample')
    throw new Mask2DiTError('OPTION', `--prediction: expected flow or sample, got "${o.prediction}"`);
  if (o.sigmaSampling !== 'uniform' && o.sigmaSampling !== 'logit-normal')
    throw new Mask2DiTError('OPTION', `--sigma-sampling: expected uniform or logit-normal, got "${o.sigmaSampling}"`);
  const sigmaSampling: SigmaSampling = o.sigmaSampling;
  if (o.sigmaLocation !== undefined && sigmaSampling !== 'logit-normal')
    throw new Mask2DiTError('OPTION', '--sigma-location: only with --sigma-sampling logit-normal');
  const sigmaLocation = o.sigmaLocation === undefined ? undefined : Number(o.sigmaLocation);
  if (sigmaLocation !== undefined && !Number.isFinite(sigmaLocation))
    throw new Mask2DiTError('OPTION', `--sigma-location: expected a number, got "${o.sigmaLocation}"`);
  if (o.positions !== 'rope' && o.positions !== 'sincos')
    throw new Mask2DiTError('OPTION', `--positions: expected rope or sincos, got "${o.positions}"`);
  const dir = path.join(o.run, 'dit');
  checkStage(dir, o);
  // a resumed stage keeps the architecture it started with (its transformer.json and text_encoder.json); --init brings its own
  const architecture: DitArchitecture | undefined =
    o.resume === true || o.init !== undefined
      ? undefined
      : {
          layers: num(o.layers, '--layers'),
          heads: num(o.heads, '--heads'),
          headDim: num(o.headDim, '--head-dim'),
          textLayers: num(o.textLayers, '--text-layers'),
          patchSize: num(o.patchSize, '--patch-size'),
          positions: o.positions,
        };
  const stage = await ditStage(o.run, {
    architecture,
    init: o.resume === true ? undefined : o.init,
    batchSize: num(o.batch, '--batch'),
    pConditional: num(o.pConditional, '--p-conditional', false),
    pDropText: num(o.pDropText, '--p-drop-text', false),
    foregroundWeight: num(o.fgWeight, '--fg-weight', false),
    foregroundSigmaMax: o.fgSigmaMax === undefined ? undefined : num(o.fgSigmaMax, '--fg-sigma-max', false),
    prediction: o.prediction === 'sample' ? 'sample' : 'flow_prediction',
    sigmaSampling,
    sigmaLocation,
    temporalWeight: num(o.temporalWeight, '--temporal-weight', false),
    train: trainOptions(o),
  });
  await runStage('dit', dir, stage.trainer, o);
  stage.dispose();
}

async function trainExport(
  o: { run: string; out: string; commands: string; stochasticSampling?: boolean; force?: boolean },
  cmd: Command,
): Promise<void> {
  const info = await backendFromFlags(cmd);
  await exportRun(o.run, {
    out: o.out,
    commands: o.commands,
    machine: info.device,
    stochasticSampling: o.stochasticSampling === true,
    force: o.force === true,
  });
  process.stderr.write(`export: wrote ${o.out}\n`);
}

export function register(program: Command): void {
  const train = program
    .command('train')
    .description('train the VAE and the DiT (+ text encoder) on the synthetic multi-scene world');

  common(train.command('vae').description('train the causal VAE on world scenes: L1 reconstruction + 1e-4·KL'), {
    steps: 600,
    batch: 1,
    lr: 1e-3,
    warmup: 20,
  })
    .option('--widths <list>', 'block_out_channels', '8,16,16,16')
    .option('--latent-channels <n>', 'latent channels', '16')
    .option('--temporal-compression <n>', 'frames per latent frame (1, 2, 4, …; at most 2^(blocks − 1))', '4')
    .option('--fg-weight <w>', 'loss weight of character pixels relative to background ones (1: plain L1)', '1')
    .option('--edge-weight <e>', 'weight of the edge term: L1 of horizontal/vertical pixel differences (0: none)', '0')
    .option('--init <dir>', 'start from a trained VAE (a pipeline folder or its vae/ folder), with its architecture')
    .option('--freeze-encoder', 'train only the decoder (with --init): the latents stay as they are')
    .action(trainVae);

  train
    .command('prepare')
    .description(
      'encode world clips with the trained (EMA) VAE into a latent dataset; sets the VAE scaling_factor to 1/std of the latents',
    )
    .requiredOption('--run <dir>', 'run folder with vae/')
    .option('--clips <n>', 'number of training clips', '400')
    .action(trainPrepare);

  common(
    train
      .command('dit')
      .description(
        'train the Mask²DiT transformer and the text encoder jointly: flow matching, joint + conditional objectives',
      ),
    { steps: 1500, batch: 4, lr: 5e-4, warmup: 50 },
  )
    .option('--layers <n>', 'transformer blocks', '4')
    .option('--heads <n>', 'attention heads', '4')
    .option('--head-dim <n>', 'attention head dim (multiple of 16)', '32')
    .option('--text-layers <n>', 'text encoder blocks', '2')
    .option(
      '--patch-size <n>',
      'latent pixels per token side (2 as CogVideoX; 4 keeps the token count of a 2× finer VAE)',
      '2',
    )
    .option('--p-conditional <p>', 'probability of the segment-level conditional objective', '0.3')
    .option('--p-drop-text <p>', 'probability of dropping a scene prompt (for guidance)', '0.1')
    .option(
      '--prediction <kind>',
      'what the transformer predicts: flow (the velocity ε − x₀, as every reference flow model) or sample (the clean latents x₀; written to the exported scheduler config)',
      'flow',
    )
    .option(
      '--positions <kind>',
      'video token positions: rope (3D RoPE in attention, as CogVideoX-5B) or sincos (a 3D sin-cos table added to the tokens, as CogVideoX-2B)',
      'rope',
    )
    .option(
      '--fg-weight <w>',
      "flow loss weight of the character's latent pixels relative to the background's (1: plain mean)",
      '1',
    )
    .option(
      '--fg-sigma-max <s>',
      'fade the character weight out with the noise level: 1 + (w − 1)·max(0, 1 − σ/s), full at σ = 0, none from s up (default: constant)',
    )
    .option(
      '--sigma-sampling <kind>',
      'how the noise level σ is drawn per clip: uniform, or logit-normal (sigmoid of N(0, 1), as SD3: more mid σ, fewer σ near 0)',
      'uniform',
    )
    .option(
      '--sigma-location <m>',
      'location of logit-normal σ = sigmoid(m + N(0, 1)); m > 0 spends more steps at high σ, where a sample is laid out (default 0)',
    )
    .option(
      '--temporal-weight <λ>',
      "add λ × the error of the predicted motion: ((x̂₀[f+1] − x̂₀[f]) − (x₀[f+1] − x₀[f]))² over a scene's consecutive latent frames, where the static frame content cancels (0: none)",
      '0',
    )
    .option(
      '--init <dir>',
      "start from a trained pipeline's transformer and text encoder (their architecture; fresh optimizer), e.g. to fine-tune the shipped model",
    )
    .action(trainDit);

  train
    .command('export')
    .description(
      'write the EMA weights of a run as a pipeline folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/) with a model card',
    )
    .requiredOption('--run <dir>', 'run folder with vae/ and dit/ checkpoints')
    .requiredOption('--out <dir>', 'the pipeline folder to write')
    .option('--commands <text>', 'the commands that trained it, for the model card', '')
    .option(
      '--stochastic-sampling',
      'write stochastic_sampling: true into the scheduler config (each Euler step re-noises x̂₀ with fresh noise)',
    )
    .option('--force', 'replace an existing folder')
    .action(trainExport);
}
