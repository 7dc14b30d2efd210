/**
 * `mask2dit generate --scenes scenes.json --out film.mp4`: all scenes of a scene file generated jointly
 * under the Mask²DiT dual mask (the fixed-scene pipeline), then decoded scene by scene. Writes the mp4,
 * the contact sheet (`film.sheet.png`) and the latents file (`film.latents.safetensors`, for `extend`),
 * all or nothing.
 */
import path from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { loadModelFolder } from '../../model/modelFolder.js';
import { Mask2DiTPipeline } from '../../model/pipeline.js';
import { SAMPLER_NAMES } from '../../sampler/index.js';
import { backendFromFlags, offloadFromFlags } from '../common.js';
import {
  addSamplingOptions,
  checkModelDir,
  generateRequest,
  filmPaths,
  modelDir,
  negativeEmbedding,
  printResult,
  reserveFilm,
  resolveSettings,
  sceneEmbeddings,
  stepReporter,
  writeFilm,
  type OutputFlags,
  type SamplingFlags,
} from '../film.js';
import { checkInterrupted, withInterrupt } from '../interrupt.js';
import { OutputSet } from '../outputs.js';
import { Progress, progressMode } from '../progress.js';
import { readSceneFile, sceneCaption, SceneFileError, type SceneFile } from '../sceneFile.js';

export interface FilmCommandFlags extends SamplingFlags, OutputFlags {
  force?: boolean;
  quiet?: boolean;
  progress?: boolean;
  json?: boolean;
}

interface GenerateFlags extends FilmCommandFlags {
  scenes: string;
}

/** Every scene must have the same frame count: the transformer splits the latent frames evenly. */
export function framesPerScene(sf: SceneFile, file: string): number {
  const f = sf.scenes[0]!.frames;
  const odd = sf.scenes.findIndex((s) => s.frames !== f);
  if (odd >= 0) throw new SceneFileError(file, [`scenes[${odd}].frames: every scene must have the same frame count (the model splits the latent frames evenly), got ${sf.scenes[odd]!.frames} and ${f}`]);
  return f;
}

async function runGenerate(flags: GenerateFlags, cmd: Command): Promise<void> {
  const t0 = performance.now();
  const sf = await readSceneFile(flags.scenes, { samplers: SAMPLER_NAMES });
  const frames = framesPerScene(sf, flags.scenes);
  const dir = modelDir(flags);
  checkModelDir(dir);
  const offload = offloadFromFlags(flags.offload);
  const paths = filmPaths(flags);
  const latentsOnly = flags.latentsOnly === true;
  const progress = new Progress(progressMode(flags));
  const result = await withInterrupt(async (signal) => {
    const outputs = new OutputSet(flags.force === true);
    try {
      const temp = reserveFilm(outputs, paths, latentsOnly);
      const backend = await backendFromFlags(cmd);
      progress.phase('load', `${dir} on ${backend.name}`);
      const model = await loadModelFolder(dir, { offload });
      for (const note of model.offload.notes) progress.phase('offload', note);
      const owned: tf.Tensor[] = [];
      try {
        const settings = resolveSettings(flags, sf.defaults ?? {}, model.samplerName);
        checkInterrupted(signal);
        const S = sf.scenes.length;
        progress.phase('encode text', `${S} scene${S > 1 ? 's' : ''}`);
        const prompts = await sceneEmbeddings(model, sf.scenes);
        owned.push(prompts);
        const negative = settings.guidance > 1 ? negativeEmbedding(model, sf.negative_prompt ?? '') : undefined;
        if (negative !== undefined) owned.push(negative);
        checkInterrupted(signal);
        progress.phase('denoise', `${settings.steps} steps, ${settings.sampler}, guidance ${settings.guidance}, seed ${settings.seed}`);
        progress.startSteps();
        const pipe = new Mask2DiTPipeline({ transformer: model.transformer, vae: model.vae, scheduler: model.schedulerConfig });
        const run = await pipe.generate({
          ...generateRequest({ prompts, negative, scenes: S, frames, width: sf.width, height: sf.height, settings }),
          onStep: stepReporter(progress),
          signal,
        });
        owned.push(run.latents);
        checkInterrupted(signal);
        const film = await writeFilm({
          model,
          latents: run.latents,
          promptEmbeds: prompts,
          ...(negative !== undefined ? { negativeEmbeds: negative } : {}),
          meta: {
            scenes: sf.scenes.map((s, i) => ({ ...(s.prompt !== undefined ? { prompt: s.prompt } : {}), caption: sceneCaption(sf, i), frames })),
            width: sf.width,
            height: sf.height,
            fps: settings.fps,
            steps: settings.steps,
            guidance: settings.guidance,
            seed: settings.seed,
            sampler: settings.sampler,
            model: path.resolve(dir),
            negativePrompt: sf.negative_prompt ?? '',
          },
          paths,
          temp,
          latentsOnly,
          progress,
          signal,
        });
        checkInterrupted(signal);
        await outputs.commit();
        return film;
      } finally {
        tf.dispose(owned);
        model.dispose();
      }
    } catch (e) {
      await outputs.abort();
      throw e;
    }
  });
  printResult({ ...result, seconds: (performance.now() - t0) / 1000 }, flags.json === true, flags.quiet === true);
}

/** Output options of generate and extend. */
export function addFilmOutputOptions(c: Command): Command {
  return c
    .option('--fps <n>', 'frames per second of the mp4 (default: the scene file\'s, else 8)')
    .option('--frames <dir>', 'also write every frame as PNG into this folder')
    .option('--sheet <png>', 'contact sheet path (default: next to the mp4, <name>.sheet.png)')
    .option('--latents-only', 'skip the VAE: write only <name>.latents.safetensors')
    .option('--force', 'overwrite existing outputs')
    .option('--quiet', 'no progress and no summary line')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .option('--json', 'print the result as one JSON document on stdout');
}

export function register(program: Command): void {
  const c = program
    .command('generate')
    .description('generate a multi-scene video from a scene file (all scenes jointly under the dual mask); writes the mp4, <name>.sheet.png and <name>.latents.safetensors')
    .requiredOption('--scenes <file>', 'scene file (JSON): per-scene prompts or embeddings, frames, width, height, defaults')
    .requiredOption('--out <file.mp4>', 'the video to write');
  addFilmOutputOptions(addSamplingOptions(c)).action(runGenerate);
}
