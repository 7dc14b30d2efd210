/**
 * `mask2dit extend --from film.mp4|film.latents.safetensors --prompt "…" --out film2.mp4`: one more
 * scene by autoregressive extension (the conditional-mask pipeline): the film's scenes are clean
 * conditioning, the new scene is denoised. The output is the whole sequence (all scenes) with its own
 * contact sheet and latents file, so extending is repeatable.
 *
 * The previous scenes come from the latents file (given, or found next to the mp4: exact), else from
 * the mp4's frames encoded by the VAE; then `--scenes` must give the scene file the film was made
 * from (its prompts and frames per scene).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../../errors.js';
import { LatentsFileError, readLatentsFile, type FilmMeta, type FilmScene } from '../../io/latentsFile.js';
import { framesToTensor, readVideoFrames } from '../../io/video.js';
import { Mask2DiTExtendPipeline, type PreviousScenes } from '../../model/extendPipeline.js';
import { DEFAULT_MODEL_DIR, loadModelFolder } from '../../model/modelFolder.js';
import { SAMPLER_NAMES } from '../../sampler/index.js';
import { backendFromFlags, offloadFromFlags } from '../common.js';
import { addSamplingOptions, checkModelDir, filmPaths, negativeEmbedding, printResult, readEmbeddingsFile, reserveFilm, resolveSettings, sceneEmbeddings, stepReporter, writeFilm, type SceneText } from '../film.js';
import { checkInterrupted, withInterrupt } from '../interrupt.js';
import { latentsPathFor, OutputSet } from '../outputs.js';
import { Progress, progressMode } from '../progress.js';
import { readSceneFile, sceneCaption } from '../sceneFile.js';
import { addFilmOutputOptions, framesPerScene, type FilmCommandFlags } from './generate.js';

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
    throw new Mask2DiTError('INPUT', `--from ${from}: no ${path.basename(sibling)} next to it; give the scene file the film was made from with --scenes (its prompts and frames per scene), so its frames can be encoded with the VAE`);
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
  if (video.width !== sf.width || video.height !== sf.height) throw new Mask2DiTError('INPUT', `${file}: frames are ${video.width}×${video.height}, the scene file ${scenesFile} says ${sf.width}×${sf.height}`);
  if (video.frames.length !== S * frames) throw new Mask2DiTError('INPUT', `${file}: ${video.frames.length} frames, the scene file ${scenesFile} says ${S} scenes × ${frames} frames = ${S * frames}`);
  const videos = Array.from({ length: S }, (_, s) =>
    tf.tidy(() => tf.transpose(framesToTensor(video.frames.slice(s * frames, (s + 1) * frames), video.width, video.height), [0, 2, 1, 3, 4])), // [1, frames, 3, H, W]
  );
  const scenes: FilmScene[] = sf.scenes.map((s, i) => ({ ...(s.prompt !== undefined ? { prompt: s.prompt } : {}), caption: sceneCaption(sf, i), frames }));
  const d = sf.defaults ?? {};
  const fps = d.fps ?? (Number.isFinite(video.fps) && video.fps > 0 && video.fps <= 240 ? video.fps : undefined);
  return {
    meta: { scenes, width: sf.width, height: sf.height, negativePrompt: sf.negative_prompt ?? '', ...d, ...(fps !== undefined ? { fps } : {}) },
    texts: sf.scenes,
    previous: { videos },
    tensors: videos,
  };
}

async function runExtend(flags: ExtendFlags, cmd: Command): Promise<void> {
  const t0 = performance.now();
  if ((flags.prompt === undefined) === (flags.embeddings === undefined)) throw new Mask2DiTError('OPTION', 'give the new scene as --prompt "…" or --embeddings FILE (one of them)');
  const source = findSource(flags);
  const paths = filmPaths(flags);
  for (const p of [paths.mp4, paths.latents]) if (path.resolve(p) === path.resolve(source.file)) throw new Mask2DiTError('OPTION', `--out ${flags.out}: would overwrite the film being extended (${source.file}); choose another name`);
  const latentsOnly = flags.latentsOnly === true;
  const offload = offloadFromFlags(flags.offload);
  const progress = new Progress(progressMode(flags));
  const result = await withInterrupt(async (signal) => {
    const outputs = new OutputSet(flags.force === true);
    let prev: Previous | undefined;
    try {
      const temp = reserveFilm(outputs, paths, latentsOnly);
      const backend = await backendFromFlags(cmd);
      prev = source.kind === 'latents' ? await fromLatents(source.file) : await fromVideo(source.file, source.scenes);
      const m = prev.meta;
      const dir = flags.model ?? (m.model !== undefined && fs.existsSync(m.model) ? m.model : DEFAULT_MODEL_DIR);
      checkModelDir(dir);
      progress.phase('load', `${dir} on ${backend.name}; ${m.scenes.length} scene${m.scenes.length > 1 ? 's' : ''} from ${source.file}`);
      const model = await loadModelFolder(dir, { offload });
      for (const note of model.offload.notes) progress.phase('offload', note);
      const owned: tf.Tensor[] = [];
      try {
        const S = m.scenes.length + 1;
        // a new seed per scene by default: the film's seed + the new scene's index
        const defaults = { ...m, ...(m.seed !== undefined ? { seed: (m.seed + S - 1) % 2 ** 32 } : {}) };
        const settings = resolveSettings(flags, defaults, model.samplerName);
        checkInterrupted(signal);
        progress.phase('encode text', source.kind === 'latents' ? 'the new scene' : `${S} scenes`);
        const { max_text_seq_length: T, text_embed_dim: D } = model.transformer.config;
        const before = prev.promptEmbeds ?? (await sceneEmbeddings(model, prev.texts));
        if (prev.promptEmbeds === undefined) owned.push(before);
        if (before.shape[1] !== T || before.shape[2] !== D) throw new LatentsFileError(source.file, `prompt embeddings are [${before.shape}], the model ${dir} takes [S, ${T}, ${D}]`);
        const fresh = flags.embeddings !== undefined ? await readEmbeddingsFile(path.resolve(flags.embeddings), T, D) : undefined;
        const added = fresh !== undefined ? tf.expandDims(fresh, 0) : await sceneEmbeddings(model, [{ prompt: flags.prompt! }]); // [1, T, D]
        fresh?.dispose();
        owned.push(added);
        const prompts = tf.concat([before, added], 0); // [S, T, D]
        owned.push(prompts);
        let negative: tf.Tensor | undefined;
        if (settings.guidance > 1) {
          negative = prev.negativeEmbeds !== undefined && prev.negativeEmbeds.shape.join() === [1, T, D].join() ? prev.negativeEmbeds : negativeEmbedding(model, m.negativePrompt);
          if (negative !== prev.negativeEmbeds) owned.push(negative);
        }
        checkInterrupted(signal);
        progress.phase('denoise', `scene ${S} of ${S}: ${settings.steps} steps, ${settings.sampler}, guidance ${settings.guidance}, seed ${settings.seed}${source.kind === 'video' ? ' (previous scenes encoded by the VAE)' : ''}`);
        progress.startSteps();
        const pipe = new Mask2DiTExtendPipeline({ transformer: model.transformer, vae: model.vae, scheduler: model.schedulerConfig });
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
        checkInterrupted(signal);
        const frames = m.scenes[0]!.frames;
        const scene: FilmScene = { ...(flags.prompt !== undefined ? { prompt: flags.prompt } : {}), caption: flags.caption ?? flags.prompt ?? path.basename(flags.embeddings!), frames };
        return await writeFilm({
          model,
          latents: run.cleanLatents,
          promptEmbeds: prompts,
          ...(negative !== undefined ? { negativeEmbeds: negative } : {}),
          meta: { scenes: [...m.scenes, scene], width: m.width, height: m.height, fps: settings.fps, steps: settings.steps, guidance: settings.guidance, seed: settings.seed, sampler: settings.sampler, model: path.resolve(dir), negativePrompt: m.negativePrompt },
          paths,
          temp,
          latentsOnly,
          progress,
          signal,
        }).then(async (film) => {
          checkInterrupted(signal);
          await outputs.commit();
          return film;
        });
      } finally {
        tf.dispose(owned);
        model.dispose();
      }
    } catch (e) {
      await outputs.abort();
      throw e;
    } finally {
      if (prev !== undefined) tf.dispose(prev.tensors);
    }
  });
  printResult({ ...result, seconds: (performance.now() - t0) / 1000 }, flags.json === true, flags.quiet === true);
}

export function register(program: Command): void {
  const c = program
    .command('extend')
    .description('add one scene to a film by autoregressive extension; writes the whole sequence (mp4, <name>.sheet.png, <name>.latents.safetensors)')
    .requiredOption('--from <file>', 'film.mp4 (its film.latents.safetensors is used when present) or film.latents.safetensors')
    .option('--prompt <text>', 'the new scene\'s prompt')
    .option('--embeddings <file>', 'the new scene\'s prompt embeddings (safetensors) instead of --prompt')
    .option('--caption <text>', 'caption of the new scene on the contact sheet (default: the prompt)')
    .option('--scenes <file>', 'the scene file of an mp4 without its latents file (prompts, frames per scene)')
    .requiredOption('--out <file.mp4>', 'the extended video to write');
  addFilmOutputOptions(addSamplingOptions(c)).action(runExtend);
}
