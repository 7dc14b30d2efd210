/**
 * The skeleton of the commands that load a model folder and write outputs (`generate`, `extend`,
 * `attention`): every output is reserved before any work (an existing one fails fast), then the
 * backend, the inputs and the model are loaded with progress, and the outputs are committed together
 * when the run ends, or all deleted on an error or Ctrl-C. Errors reach main(), which prints one line
 * and picks the exit code (2 typed, 130/143 interrupted, 1 otherwise).
 *
 * `runFilm` is the part `generate` and `extend` share on top: the film outputs of `--out`, the
 * latents → mp4 / contact sheet / latents file, and the summary line.
 */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import type { FilmScene } from '../io/latentsFile.js';
import { loadModelFolder, type LoadedModel } from '../model/modelFolder.js';
import type { OffloadMode } from '../model/offload.js';
import { backendFromFlags, offloadFromFlags } from './common.js';
import {
  filmPaths,
  printResult,
  recordModel,
  reserveFilm,
  writeFilm,
  type FilmPaths,
  type HelpDefaults,
  type OutputFlags,
  type RunSettings,
  type SamplingFlags,
} from './film.js';
import { checkInterrupted, withInterrupt } from './interrupt.js';
import { OutputSet } from './outputs.js';
import { Progress, progressMode } from './progress.js';

/** The model folder a command loads, once its inputs are read. */
export interface ModelToLoad {
  dir: string;
  /** Added to the 'load' progress line, e.g. "; 3 scenes from film.latents.safetensors". */
  detail?: string;
}

/** What a command's run gets. */
export interface FilmRun<R> {
  model: LoadedModel;
  /** What `reserve` returned: the temp paths to write the outputs to. */
  temp: R;
  signal: AbortSignal;
  progress: Progress;
  /** Tensors freed when the run ends, however it ends. */
  owned: tf.Tensor[];
}

export interface FilmCommand<R, I extends ModelToLoad, T> {
  cmd: Command;
  force: boolean;
  progress: Progress;
  /** `--offload`; unset, the loader's default is used and its offload notes are not shown (`attention`). */
  offload?: OffloadMode;
  /** Reserve every output in `outputs`, before any work. */
  reserve: (outputs: OutputSet) => R;
  /** Once the backend is up: read the inputs (their tensors go in `owned`) and name the model folder. */
  open: (owned: tf.Tensor[]) => Promise<I>;
  run: (r: FilmRun<R>, input: I) => Promise<T>;
}

/** Run a command through the skeleton above; its outputs are committed only when `run` returns uninterrupted. */
export async function runFilmCommand<R, I extends ModelToLoad, T>(c: FilmCommand<R, I, T>): Promise<T> {
  return withInterrupt(async (signal) => {
    const outputs = new OutputSet(c.force);
    const owned: tf.Tensor[] = [];
    let model: LoadedModel | undefined;
    try {
      const temp = c.reserve(outputs);
      const backend = await backendFromFlags(c.cmd);
      const input = await c.open(owned);
      c.progress.phase('load', `${input.dir} on ${backend.name}${input.detail ?? ''}`);
      model = await loadModelFolder(input.dir, c.offload !== undefined ? { offload: c.offload } : {});
      if (c.offload !== undefined) for (const note of model.offload.notes) c.progress.phase('offload', note);
      const result = await c.run({ model, temp, signal, progress: c.progress, owned }, input);
      checkInterrupted(signal);
      await outputs.commit();
      return result;
    } catch (e) {
      await outputs.abort();
      throw e;
    } finally {
      tf.dispose(owned);
      model?.dispose();
    }
  });
}

// ---- generate and extend -------------------------------------------------------------------------

export interface FilmCommandFlags extends SamplingFlags, OutputFlags {
  force?: boolean;
  quiet?: boolean;
  progress?: boolean;
  json?: boolean;
}

/** What `generate` or `extend` made: the clean latents `[1, S·f, C, h, w]`, their conditioning and the film's scenes. */
export interface Film {
  latents: tf.Tensor;
  prompts: tf.Tensor;
  negative: tf.Tensor | undefined;
  settings: RunSettings;
  scenes: FilmScene[];
  width: number;
  height: number;
  negativePrompt: string;
}

export interface FilmSpec<I extends ModelToLoad> {
  /** Refuse flags that clash with the outputs (before any work). */
  check?: (paths: FilmPaths) => void;
  open: (owned: tf.Tensor[]) => Promise<I>;
  /** Denoise the film (its tensors go in `r.owned`); runFilm decodes and writes it. */
  make: (r: FilmRun<FilmPaths>, input: I) => Promise<Film>;
}

/** `generate` / `extend`: the film of `--out` made, decoded and written as one set, then the summary line. */
export async function runFilm<I extends ModelToLoad>(
  flags: FilmCommandFlags,
  cmd: Command,
  spec: FilmSpec<I>,
): Promise<void> {
  const t0 = performance.now();
  const paths = filmPaths(flags);
  spec.check?.(paths);
  const latentsOnly = flags.latentsOnly === true;
  const offload = offloadFromFlags(flags.offload);
  const result = await runFilmCommand({
    cmd,
    force: flags.force === true,
    progress: new Progress(progressMode(flags)),
    offload,
    reserve: (outputs) => reserveFilm(outputs, paths, latentsOnly),
    open: spec.open,
    run: async (r, input) => {
      const film = await spec.make(r, input);
      checkInterrupted(r.signal);
      const s = film.settings;
      return writeFilm({
        model: r.model,
        latents: film.latents,
        promptEmbeds: film.prompts,
        ...(film.negative !== undefined ? { negativeEmbeds: film.negative } : {}),
        meta: {
          scenes: film.scenes,
          width: film.width,
          height: film.height,
          fps: s.fps,
          steps: s.steps,
          guidance: s.guidance,
          seed: s.seed,
          sampler: s.sampler,
          model: recordModel(input.dir, paths.latents),
          negativePrompt: film.negativePrompt,
        },
        paths,
        temp: r.temp,
        latentsOnly,
        progress: r.progress,
        signal: r.signal,
      });
    },
  });
  printResult({ ...result, seconds: (performance.now() - t0) / 1000 }, flags.json === true, flags.quiet === true);
}

/** Output options of generate and extend. */
export function addFilmOutputOptions(c: Command, d: HelpDefaults = { from: "the scene file's" }): Command {
  return c
    .option('--fps <n>', `frames per second of the mp4 (default: ${d.from}, else 8)`)
    .option('--frames <dir>', 'also write every frame as PNG into this folder')
    .option('--sheet <png>', 'contact sheet path (default: next to the mp4, <name>.sheet.png)')
    .option('--latents-only', 'skip the VAE: write only <name>.latents.safetensors')
    .option('--force', 'overwrite existing outputs')
    .option('--quiet', 'no progress and no summary line')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .option('--json', 'print the result as one JSON document on stdout');
}
