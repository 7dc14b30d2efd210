/**
 * `mask2dit extend --from film.mp4|film.latents.safetensors --prompt "…" --out film2.mp4`: one more
 * scene by autoregressive extension (the conditional-mask pipeline): the film's scenes are clean
 * conditioning, the new scene is denoised. The output is the whole sequence (all scenes) with its own
 * contact sheet and latents file, so extending is repeatable.
 *
 * The previous scenes come from the latents file (given, or found next to the mp4: exact), else from
 * the mp4's frames encoded by the VAE; then `--scenes` must give the scene file the film was made
 * from (its prompts and frames per scene). Unset settings (steps, guidance, sampler, fps) are the film's,
 * the seed is the film's + the new scene's index, and the model is the one its latents file records.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../../errors.js';
import { LatentsFileError, readLatentsFile, type FilmMeta, type FilmScene } from '../../io/latentsFile.js';
import { framesToTensor, readVideoFrames } from '../../io/video.js';
import { Mask2DiTExtendPipeline, type PreviousScenes } from '../../model/extendPipeline.js';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, type LoadedModel } from '../../model/modelFolder.js';
import { SAMPLER_NAMES } from '../../sampler/index.js';
import { log } from '../../log.js';
import {
  addSamplingOptions,
  checkModelDir,
  filmScenes,
  guidanceNegative,
  readEmbeddingsFile,
  recordedModel,
  resolveSettings,
  sceneEmbeddings,
  stepReporter,
  type FilmPaths,
  type HelpDefaults,
  type SceneText,
} from '../film.js';
import {
  addFilmOutputOptions,
  runFilm,
  type Film,
  type FilmCommandFlags,
  type FilmRun,
  type ModelToLoad,
} from '../filmCommand.js';
import { checkInterrupted } from '../interrupt.js';
import { latentsPathFor } from '../outputs.js';
import { readSceneFile } from '../sceneFile.js';
import { framesPerScene } from './generate.js';

interface ExtendFlags extends FilmCommandFlags {
  from: string;
  prompt?: string;
  embeddings?: string;
  caption?: string;
  scenes?: string;
}

/** Where the previous scenes come from. */
type Source = { kind: 'latents'; file: string } | { kind: 'video'; file: string; scenes: string };

function findSource(flags: ExtendFlags): Source {
  const from = flags.from;
  if (!fs.existsSync(from)) throw new Mask2DiTError('INPUT', `--from ${from}: no such file`);
  if (from.endsWith('.safetensors')) return { kind: 'latents', file: from };
  const sibling = latentsPathFor(from);
  if (fs.existsSync(sibling)) return { kind: 'latents', file: sibling };
  if (flags.scenes === undefined) {
    throw new Mask2DiTError(
      'INPUT',
      `--from ${from}: no ${path.basename(sibling)} next to it; give the scene file the film was made from with --scenes (its prompts and frames per scene), so its frames can be encoded with the VAE`,
    );
  }
  return { kind: 'video', file: from, scenes: flags.scenes };
}

/** The previous film as the extension needs it: scenes, geometry, settings and conditioning. */
type Optional<T> = { [K in keyof T]?: T[K] | undefined };

interface Previous {
  meta: Omit<FilmMeta, 'steps' | 'guidance' | 'seed' | 'sampler' | 'fps' | 'model'> & Optional<FilmMeta>;
  /** Scene texts for encoding when no embeddings are stored. */
  texts: SceneText[];
  promptEmbeds?: tf.Tensor;
  negativeEmbeds?: tf.Tensor;
  previous: PreviousScenes;
  tensors: tf.Tensor[];
}

async function fromLatents(file: string): Promise<Previous> {
  const film = await readLatentsFile(file);
  return {
    meta: film.meta,
    texts: [],
    promptEmbeds: film.promptEmbeds,
    ...(film.negativeEmbeds !== undefined ? { negativeEmbeds: film.negativeEmbeds } : {}),
    previous: { latents: film.latents },
    tensors: [film.latents, film.promptEmbeds, ...(film.negativeEmbeds !== undefined ? [film.negativeEmbeds] : [])],
  };
}

async function fromVideo(file: string, scenesFile: string): Promise<Previous> {
  const sf = await readSceneFile(scenesFile, { samplers: SAMPLER_NAMES });
  const frames = framesPerScene(sf, scenesFile);
  const video = await readVideoFrames(file);
  const S = sf.scenes.length;
  if (video.width !== sf.width || video.height !== sf.height)
    throw new Mask2DiTError(
      'INPUT',
      `${file}: frames are ${video.width}×${video.height}, the scene file ${scenesFile} says ${sf.width}×${sf.height}`,
    );
  if (video.frames.length !== S * frames)
    throw new Mask2DiTError(
      'INPUT',
      `${file}: ${video.frames.length} frames, the scene file ${scenesFile} says ${S} scenes × ${frames} frames = ${S * frames}`,
    );
  const videos = Array.from(
    { length: S },
    (_, s) =>
      tf.tidy(() =>
        tf.transpose(
          framesToTensor(video.frames.slice(s * frames, (s + 1) * frames), video.width, video.height),
          [0, 2, 1, 3, 4],
        ),
      ), // [1, frames, 3, H, W]
  );
  const scenes = filmScenes(sf, frames);
  const d = sf.defaults ?? {};
  const fps = d.fps ?? (Number.isFinite(video.fps) && video.fps > 0 && video.fps <= 240 ? video.fps : undefined);
  return {
    meta: {
      scenes,
      width: sf.width,
      height: sf.height,
      negativePrompt: sf.negative_prompt ?? '',
      ...d,
      ...(fps !== undefined ? { fps } : {}),
    },
    texts: sf.scenes,
    previous: { videos },
    tensors: videos,
  };
}

/** `--model`, else the model the film's latents file records (found relative to it), else the shipped default. */
function modelFor(flags: ExtendFlags, recorded: string | undefined, source: Source): string {
  if (flags.model !== undefined) return flags.model;
  if (recorded === undefined) return DEFAULT_MODEL_DIR;
  const dir = recordedModel(recorded, source.file);
  if (dir === undefined)
    log.warn(
      `${source.file}: the model it was made with (${recorded}) is not found; using the shipped ${DEFAULT_MODEL_NAME} (pass --model to choose)`,
    );
  return dir ?? DEFAULT_MODEL_DIR;
}

/** The film being extended, read once the backend is up (its tensors go in `owned`), and the model to extend it with. */
interface Opened extends ModelToLoad {
  prev: Previous;
}

async function openFilm(flags: ExtendFlags, source: Source, owned: tf.Tensor[]): Promise<Opened> {
  const prev = source.kind === 'latents' ? await fromLatents(source.file) : await fromVideo(source.file, source.scenes);
  owned.push(...prev.tensors);
  const n = prev.meta.scenes.length;
  const dir = modelFor(flags, prev.meta.model, source);
  checkModelDir(dir);
  return { dir, detail: `; ${n} scene${n > 1 ? 's' : ''} from ${source.file}`, prev };
}

/** The film's prompt embeddings and the new scene's, `[S, T, D]`; what is made here goes in `owned`. */
async function extendedPrompts(
  model: LoadedModel,
  { dir, prev }: Opened,
  a: { flags: ExtendFlags; source: Source; owned: tf.Tensor[] },
): Promise<tf.Tensor> {
  const { max_text_seq_length: T, text_embed_dim: D } = model.transformer.config;
  const before = prev.promptEmbeds ?? (await sceneEmbeddings(model, prev.texts));
  if (prev.promptEmbeds === undefined) a.owned.push(before);
  if (before.shape[1] !== T || before.shape[2] !== D)
    throw new LatentsFileError(
      a.source.file,
      `prompt embeddings are [${before.shape}], the model ${dir} takes [S, ${T}, ${D}]`,
    );
  const fresh =
    a.flags.embeddings !== undefined ? await readEmbeddingsFile(path.resolve(a.flags.embeddings), T, D) : undefined;
  const added =
    fresh !== undefined ? tf.expandDims(fresh, 0) : await sceneEmbeddings(model, [{ prompt: a.flags.prompt! }]); // [1, T, D]
  fresh?.dispose();
  a.owned.push(added);
  const prompts = tf.concat([before, added], 0); // [S, T, D]
  a.owned.push(prompts);
  return prompts;
}

/** The new scene denoised with the film's scenes as clean conditioning; the film is all of them. */
async function extendFilm(r: FilmRun<FilmPaths>, input: Opened, flags: ExtendFlags, source: Source): Promise<Film> {
  const { model, signal, progress, owned } = r;
  const { prev } = input;
  const m = prev.meta;
  const S = m.scenes.length + 1;
  // a new seed per scene by default: the film's seed + the new scene's index
  const defaults = { ...m, ...(m.seed !== undefined ? { seed: (m.seed + S - 1) % 2 ** 32 } : {}) };
  const settings = resolveSettings(flags, defaults, model.samplerName);
  checkInterrupted(signal);
  progress.phase('encode text', source.kind === 'latents' ? 'the new scene' : `${S} scenes`);
  const prompts = await extendedPrompts(model, input, { flags, source, owned });
  const negative = guidanceNegative(model, {
    settings,
    negativePrompt: m.negativePrompt,
    owned,
    stored: prev.negativeEmbeds,
  });
  checkInterrupted(signal);
  progress.phase(
    'denoise',
    `scene ${S} of ${S}: ${settings.steps} steps, ${settings.sampler}, guidance ${settings.guidance}, seed ${settings.seed}${source.kind === 'video' ? ' (previous scenes encoded by the VAE)' : ''}`,
  );
  progress.startSteps();
  const pipe = new Mask2DiTExtendPipeline({
    transformer: model.transformer,
    vae: model.vae,
    scheduler: model.schedulerConfig,
  });
  const run = await pipe.extend({
    prompts,
    ...(negative !== undefined ? { negative } : {}),
    previous: prev.previous,
    steps: settings.steps,
    guidanceScale: settings.guidance,
    seed: settings.seed,
    sampler: settings.sampler,
    output: 'latent',
    onStep: stepReporter(progress),
    signal,
  });
  tf.dispose([run.latents, run.sceneLatents]);
  owned.push(run.cleanLatents);
  const scene: FilmScene = {
    ...(flags.prompt !== undefined ? { prompt: flags.prompt } : {}),
    caption: flags.caption ?? flags.prompt ?? path.basename(flags.embeddings!),
    frames: m.scenes[0]!.frames,
  };
  return {
    latents: run.cleanLatents,
    prompts,
    negative,
    settings,
    scenes: [...m.scenes, scene],
    width: m.width,
    height: m.height,
    negativePrompt: m.negativePrompt,
  };
}

async function runExtend(flags: ExtendFlags, cmd: Command): Promise<void> {
  if ((flags.prompt === undefined) === (flags.embeddings === undefined))
    throw new Mask2DiTError('OPTION', 'give the new scene as --prompt "…" or --embeddings FILE (one of them)');
  const source = findSource(flags);
  await runFilm(flags, cmd, {
    check: (paths) => {
      for (const p of [paths.mp4, paths.latents])
        if (path.resolve(p) === path.resolve(source.file))
          throw new Mask2DiTError(
            'OPTION',
            `--out ${flags.out}: would overwrite the film being extended (${source.file}); choose another name`,
          );
    },
    open: (owned) => openFilm(flags, source, owned),
    make: (r, input) => extendFilm(r, input, flags, source),
  });
}

export function register(program: Command): void {
  const c = program
    .command('extend')
    .description(
      'add one scene to a film by autoregressive extension; writes the whole sequence (mp4, <name>.sheet.png, <name>.latents.safetensors)',
    )
    .requiredOption(
      '--from <file>',
      'film.mp4 (its film.latents.safetensors is used when present) or film.latents.safetensors',
    )
    .option('--prompt <text>', "the new scene's prompt")
    .option('--embeddings <file>', "the new scene's prompt embeddings (safetensors) instead of --prompt")
    .option('--caption <text>', 'caption of the new scene on the contact sheet (default: the prompt)')
    .option('--scenes <file>', 'the scene file of an mp4 without its latents file (prompts, frames per scene)')
    .requiredOption('--out <file.mp4>', 'the extended video to write');
  // unset settings are the film's (the seed moves on by one per scene), not the built-in defaults
  const d: HelpDefaults = {
    from: "the film's, from its latents file or the --scenes file",
    seed: "the film's seed + the new scene's index",
    model: `the one recorded in the film's latents file, else the shipped ${DEFAULT_MODEL_NAME}`,
  };
  addFilmOutputOptions(addSamplingOptions(c, d), d).action(runExtend);
}
