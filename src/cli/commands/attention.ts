/**
 * `mask2dit attention --scenes scenes.json --block 3 --head 0 --step 10 --out attn.png [--scene k]`:
 * runs the generation of a scene file up to denoising step `--step` (0-based), captures the attention
 * probabilities of one block and head there (conditional branch), and renders them as a heatmap over
 * the joint sequence `[T0 … ; V0 …]`. With `--scene k` only scene k's query rows are kept.
 */
import type { Command } from 'commander';
import type * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../../errors.js';
import { layoutSegments, renderAttentionImage } from '../../io/attentionImage.js';
import { writePng } from '../../io/png.js';
import { Mask2DiTPipeline, PipelineAbortedError } from '../../model/pipeline.js';
import { Probe } from '../../layers/probe.js';
import { uniformLayout } from '../../scene/layout.js';
import { SAMPLER_NAMES } from '../../sampler/index.js';
import {
  addSamplingOptions,
  checkModelDir,
  encodeSceneFile,
  generateRequest,
  intFlag,
  modelDir,
  resolveSettings,
  stepReporter,
  type RunSettings,
  type SamplingFlags,
} from '../film.js';
import { runFilmCommand, type FilmRun } from '../filmCommand.js';
import { checkInterrupted } from '../interrupt.js';
import { Progress, progressMode } from '../progress.js';
import { readSceneFile, type SceneFile } from '../sceneFile.js';
import { framesPerScene } from './generate.js';

interface AttentionFlags extends SamplingFlags {
  scenes: string;
  block: string;
  head: string;
  step: string;
  scene?: string;
  out: string;
  transform?: string;
  force?: boolean;
  quiet?: boolean;
  progress?: boolean;
  json?: boolean;
}

const TRANSFORMS = ['linear', 'sqrt', 'log'] as const;

/** What to capture, from the flags. */
interface Capture {
  flags: AttentionFlags;
  sf: SceneFile;
  frames: number;
  block: number;
  head: number;
  step: number;
  scene: number | undefined;
  transform: (typeof TRANSFORMS)[number];
}

function outOfRange(flag: string, v: number, n: number, what: string): Mask2DiTError {
  return new Mask2DiTError('OPTION', `--${flag}: ${v} is out of range; ${what} ${n} (0 … ${n - 1})`);
}

/** Denoise up to step `a.step` with `probe` capturing there; the timestep of that step. */
async function denoiseTo(r: FilmRun<string>, a: Capture, settings: RunSettings, probe: Probe): Promise<number> {
  const { model, signal, progress, owned } = r;
  const { prompts, negative } = await encodeSceneFile(model, a.sf, { settings, progress, owned });
  checkInterrupted(signal);
  progress.phase(
    'denoise',
    `up to step ${a.step} of ${settings.steps} (${settings.sampler}), capturing block ${a.block} head ${a.head}`,
  );
  progress.startSteps();
  // the run stops right after the captured step: nothing later is needed
  const stop = new AbortController();
  const report = stepReporter(progress);
  let timestep = NaN;
  const pipe = new Mask2DiTPipeline({
    transformer: model.transformer,
    vae: model.vae,
    scheduler: model.schedulerConfig,
  });
  try {
    const run = await pipe.generate({
      ...generateRequest({
        prompts,
        negative,
        scenes: a.sf.scenes.length,
        frames: a.frames,
        width: a.sf.width,
        height: a.sf.height,
        settings,
      }),
      capture: { step: a.step, probe },
      onStep: (p) => {
        report(p);
        if (p.step === a.step) {
          timestep = p.timestep;
          stop.abort();
        }
      },
      signal: AbortSignal.any([signal, stop.signal]),
    });
    run.latents.dispose(); // only when step is the last one
  } catch (e) {
    if (!(e instanceof PipelineAbortedError && stop.signal.aborted && !signal.aborted)) throw e;
  }
  progress.end();
  return timestep;
}

/** The captured probabilities as a heatmap over the joint sequence (or one scene's query rows). */
async function heatmap(r: FilmRun<string>, a: Capture, settings: RunSettings, probs: tf.Tensor, timestep: number) {
  const { model } = r;
  const c = model.transformer.config;
  const [, , Lq, Lk] = probs.shape as [number, number, number, number];
  const geo = {
    f: (a.frames - 1) / model.vae.temporalCompression + 1,
    h: a.sf.height / model.vae.spatialCompression,
    w: a.sf.width / model.vae.spatialCompression,
  };
  const p = c.patch_size;
  const layout = uniformLayout(a.sf.scenes.length, c.max_text_seq_length, geo.f * (geo.h / p) * (geo.w / p));
  const data = (await probs.data()) as Float32Array;
  const { block, head, step, scene } = a;
  const title = [
    `block ${block}, head ${head}, step ${step} of ${settings.steps} (t = ${Number(timestep.toFixed(3))}), conditional branch${scene !== undefined ? `, queries of scene ${scene}` : ''}`,
  ];
  const axes =
    scene === undefined
      ? { layout }
      : {
          rows: [
            { label: `T${scene}`, length: layout.text[scene]! },
            { label: `V${scene}`, length: layout.video[scene]! },
          ].filter((row) => row.length > 0),
          cols: layoutSegments(layout),
        };
  return { Lq, Lk, img: renderAttentionImage(data, Lq, Lk, { ...axes, transform: a.transform, title }) };
}

/** Capture one block/head at one step and write its heatmap to the reserved PNG; the command's report. */
async function captureAttention(r: FilmRun<string>, a: Capture) {
  const c = r.model.transformer.config;
  const { block, head, step, scene } = a;
  if (block >= c.num_layers) throw outOfRange('block', block, c.num_layers, 'the transformer has blocks');
  if (head >= c.num_attention_heads) throw outOfRange('head', head, c.num_attention_heads, 'each block has heads');
  const settings = resolveSettings(a.flags, a.sf.defaults ?? {}, r.model.samplerName);
  if (step >= settings.steps) throw outOfRange('step', step, settings.steps, 'the run has steps');
  const probe = new Probe([`block.${block}.attn1.probs`], { heads: [head], ...(scene !== undefined ? { scene } : {}) });
  try {
    const timestep = await denoiseTo(r, a, settings, probe);
    checkInterrupted(r.signal);
    const probs = probe.get(`block.${block}.attn1.probs`);
    if (probs === undefined)
      throw new Mask2DiTError('ATTENTION', `block ${block}: no attention probabilities were captured`);
    const { Lq, Lk, img } = await heatmap(r, a, settings, probs, timestep);
    r.progress.phase('write', a.flags.out);
    await writePng(r.temp, img.image);
    return {
      out: a.flags.out,
      block,
      head,
      step,
      timestep,
      ...(scene !== undefined ? { scene } : {}),
      queries: Lq,
      keys: Lk,
      width: img.image.width,
      height: img.image.height,
      max: img.max,
    };
  } finally {
    probe.dispose();
  }
}

async function runAttention(flags: AttentionFlags, cmd: Command): Promise<void> {
  const sf = await readSceneFile(flags.scenes, { samplers: SAMPLER_NAMES });
  const frames = framesPerScene(sf, flags.scenes);
  const block = intFlag(flags.block, 'block')!;
  const head = intFlag(flags.head, 'head')!;
  const step = intFlag(flags.step, 'step')!;
  const scene = intFlag(flags.scene, 'scene');
  if (scene !== undefined && scene >= sf.scenes.length)
    throw outOfRange('scene', scene, sf.scenes.length, 'the scene file has');
  const transform = flags.transform ?? 'linear';
  if (!(TRANSFORMS as readonly string[]).includes(transform))
    throw new Mask2DiTError('OPTION', `--transform: expected one of ${TRANSFORMS.join(', ')}, got ${transform}`);
  const dir = modelDir(flags);
  checkModelDir(dir);
  const report = await runFilmCommand({
    cmd,
    force: flags.force === true,
    progress: new Progress(progressMode(flags)),
    // no `offload`: attention has always loaded with the loader's default
    reserve: (outputs) => outputs.file(flags.out),
    open: async () => ({ dir }),
    run: (r) =>
      captureAttention(r, {
        flags,
        sf,
        frames,
        block,
        head,
        step,
        scene,
        transform: transform as Capture['transform'],
      }),
  });
  if (flags.json === true) process.stdout.write(JSON.stringify(report) + '\n');
  else if (flags.quiet !== true)
    process.stdout.write(
      `wrote ${report.out} (${report.queries} queries × ${report.keys} keys, max probability ${report.max.toPrecision(3)})\n`,
    );
}

export function register(program: Command): void {
  const c = program
    .command('attention')
    .description(
      "run a generation up to one denoising step and render one block/head's attention probabilities as a heatmap",
    )
    .requiredOption('--scenes <file>', 'scene file (JSON)')
    .requiredOption('--block <i>', 'transformer block (0-based)')
    .requiredOption('--head <h>', 'attention head (0-based)')
    .requiredOption('--step <n>', 'denoising step (0-based) to capture')
    .requiredOption('--out <file.png>', 'PNG to write')
    .option('--scene <k>', "only scene k's query rows (its text, then its video tokens)");
  addSamplingOptions(c)
    .option('--transform <t>', `colour scale: ${TRANSFORMS.join(', ')} (default linear)`)
    .option('--force', 'overwrite an existing PNG')
    .option('--quiet', 'no progress and no summary line')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .option('--json', 'print the result as one JSON document on stdout')
    .action(runAttention);
}
