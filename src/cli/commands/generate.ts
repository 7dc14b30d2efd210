/**
 * `mask2dit generate --scenes scenes.json --out film.mp4`: all scenes of a scene file generated jointly
 * under the Mask²DiT dual mask (the fixed-scene pipeline), then decoded scene by scene. Writes the mp4,
 * the contact sheet (`film.sheet.png`) and the latents file (`film.latents.safetensors`, for `extend`),
 * all or nothing.
 */
import type { Command } from 'commander';
import { Mask2DiTPipeline } from '../../model/pipeline.js';
import { SAMPLER_NAMES } from '../../sampler/index.js';
import {
  addSamplingOptions,
  checkModelDir,
  encodeSceneFile,
  filmScenes,
  generateRequest,
  modelDir,
  resolveSettings,
  stepReporter,
  type FilmPaths,
} from '../film.js';
import { addFilmOutputOptions, runFilm, type Film, type FilmCommandFlags, type FilmRun } from '../filmCommand.js';
import { checkInterrupted } from '../interrupt.js';
import { readSceneFile, SceneFileError, type SceneFile } from '../sceneFile.js';

interface GenerateFlags extends FilmCommandFlags {
  scenes: string;
}

/** Every scene must have the same frame count: the transformer splits the latent frames evenly. */
export function framesPerScene(sf: SceneFile, file: string): number {
  const f = sf.scenes[0]!.frames;
  const odd = sf.scenes.findIndex((s) => s.frames !== f);
  if (odd >= 0)
    throw new SceneFileError(file, [
      `scenes[${odd}].frames: every scene must have the same frame count (the model splits the latent frames evenly), got ${sf.scenes[odd]!.frames} and ${f}`,
    ]);
  return f;
}

/** All scenes of the scene file denoised jointly. */
async function generateFilm(r: FilmRun<FilmPaths>, sf: SceneFile, frames: number, flags: GenerateFlags): Promise<Film> {
  const { model, signal, progress, owned } = r;
  const settings = resolveSettings(flags, sf.defaults ?? {}, model.samplerName);
  checkInterrupted(signal);
  const { prompts, negative } = await encodeSceneFile(model, sf, { settings, progress, owned });
  checkInterrupted(signal);
  progress.phase(
    'denoise',
    `${settings.steps} steps, ${settings.sampler}, guidance ${settings.guidance}, seed ${settings.seed}`,
  );
  progress.startSteps();
  const pipe = new Mask2DiTPipeline({
    transformer: model.transformer,
    vae: model.vae,
    scheduler: model.schedulerConfig,
  });
  const run = await pipe.generate({
    ...generateRequest({
      prompts,
      negative,
      scenes: sf.scenes.length,
      frames,
      width: sf.width,
      height: sf.height,
      settings,
    }),
    onStep: stepReporter(progress),
    signal,
  });
  owned.push(run.latents);
  return {
    latents: run.latents,
    prompts,
    negative,
    settings,
    scenes: filmScenes(sf, frames),
    width: sf.width,
    height: sf.height,
    negativePrompt: sf.negative_prompt ?? '',
  };
}

async function runGenerate(flags: GenerateFlags, cmd: Command): Promise<void> {
  const sf = await readSceneFile(flags.scenes, { samplers: SAMPLER_NAMES });
  const frames = framesPerScene(sf, flags.scenes);
  const dir = modelDir(flags);
  checkModelDir(dir);
  await runFilm(flags, cmd, {
    open: async () => ({ dir }),
    make: (r) => generateFilm(r, sf, frames, flags),
  });
}

export function register(program: Command): void {
  const c = program
    .command('generate')
    .description(
      'generate a multi-scene video from a scene file (all scenes jointly under the dual mask); writes the mp4, <name>.sheet.png and <name>.latents.safetensors',
    )
    .requiredOption(
      '--scenes <file>',
      'scene file (JSON): per-scene prompts or embeddings, frames, width, height, defaults',
    )
    .requiredOption('--out <file.mp4>', 'the video to write');
  addFilmOutputOptions(addSamplingOptions(c)).action(runGenerate);
}
