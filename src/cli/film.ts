/**
 * What `generate` and `extend` share: flags → run settings, scene prompts → embedding blocks,
 * and the outputs of a film (mp4, contact sheet, latents file, optional PNG frames) written as one
 * staged set.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError, ShapeError } from '../errors.js';
import { log } from '../log.js';
import { contactSheet } from '../io/contactSheet.js';
import { writeLatentsFile, type FilmMeta, type FilmScene } from '../io/latentsFile.js';
import { writePng, writePngSequence } from '../io/png.js';
import { openSafetensors } from '../io/safetensors.js';
import { tensorToFrames, VIDEO_EXTENSIONS, writeMp4 } from '../io/video.js';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME, ModelFolderError, type LoadedModel } from '../model/modelFolder.js';
import { decodeScenes, type GenerateOptions, type StepProgress } from '../model/pipeline.js';
import { isSamplerName, SAMPLER_NAMES, type SamplerName } from '../sampler/index.js';
import { PromptEncoder } from '../text/promptEncoder.js';
import { addOffloadOption } from './common.js';
import { latentsPathFor, sheetPathFor, type OutputSet } from './outputs.js';
import type { Progress } from './progress.js';
import { sceneCaption, type SceneDefaults, type SceneFile } from './sceneFile.js';

// ---- flags ----------------------------------------------------------------------------------------

/** Flags shared by generate, extend and attention. */
export interface SamplingFlags {
  model?: string;
  steps?: string;
  guidance?: string;
  seed?: string;
  sampler?: string;
  fps?: string;
  offload?: string;
}

export interface RunSettings {
  steps: number;
  guidance: number;
  seed: number;
  sampler: SamplerName;
  fps: number;
}

function optionError(flag: string, want: string, got: string): Mask2DiTError {
  return new Mask2DiTError('OPTION', `--${flag}: expected ${want}, got ${JSON.stringify(got)}`);
}

export function intFlag(
  v: string | undefined,
  flag: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    throw optionError(flag, `an integer in [${min}, ${max}]`, v);
  return n;
}

function numFlag(v: string | undefined, flag: string, ok: (n: number) => boolean, want: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw optionError(flag, want, v);
  return n;
}

/** Settings from the flags, else the scene file's (or latents file's) defaults, else the model's / built-in defaults. */
export function resolveSettings(
  flags: SamplingFlags,
  defaults: Partial<SceneDefaults>,
  modelSampler: SamplerName,
): RunSettings {
  const sampler = flags.sampler ?? defaults.sampler ?? modelSampler;
  if (!isSamplerName(sampler))
    throw new Mask2DiTError(
      'OPTION',
      `${flags.sampler !== undefined ? '--sampler' : 'defaults.sampler'}: unknown sampler ${JSON.stringify(sampler)}, expected one of ${SAMPLER_NAMES.join(', ')}`,
    );
  return {
    steps: intFlag(flags.steps, 'steps', 1, 10_000) ?? defaults.steps ?? 50,
    guidance: numFlag(flags.guidance, 'guidance', (n) => n >= 0, 'a number >= 0') ?? defaults.guidance ?? 6,
    seed: intFlag(flags.seed, 'seed', 0, 2 ** 32 - 1) ?? defaults.seed ?? 0,
    sampler,
    fps: numFlag(flags.fps, 'fps', (n) => n > 0 && n <= 240, 'a number in (0, 240]') ?? defaults.fps ?? 8,
  };
}

/** `--model`, else the default model folder. */
export function modelDir(flags: SamplingFlags): string {
  return flags.model ?? DEFAULT_MODEL_DIR;
}

/** Where a command's unset flags take their defaults from, for its help (see resolveSettings). */
export interface HelpDefaults {
  /** e.g. "the scene file's". */
  from: string;
  /** The default seed, when it is not simply `from`. */
  seed?: string;
  /** The default model, when it is not simply the shipped one. */
  model?: string;
}

const SCENE_FILE_DEFAULTS: HelpDefaults = { from: "the scene file's" };

/** Options every sampling command takes. */
export function addSamplingOptions(c: Command, d: HelpDefaults = SCENE_FILE_DEFAULTS): Command {
  return addOffloadOption(c)
    .option(
      '--model <dir>',
      `pipeline folder (model_index.json, transformer/, vae/, scheduler/, …) (default: ${d.model ?? `the shipped ${DEFAULT_MODEL_NAME}`})`,
    )
    .option('--steps <n>', `denoising steps (default: ${d.from}, else 50)`)
    .option('--guidance <g>', `classifier-free guidance scale, 1 = none (default: ${d.from}, else 6)`)
    .option('--seed <s>', `seed of all noise (default: ${d.seed ?? d.from}, else 0)`)
    .option('--sampler <name>', `${SAMPLER_NAMES.join(' | ')} (default: ${d.from}, else the model's scheduler)`);
}

// ---- the model a film records ----------------------------------------------------------------------

/** How a latents file names the shipped default model (wherever the package is installed). */
const DEFAULT_MODEL_RECORD = `package:${DEFAULT_MODEL_NAME}`;

/**
 * The model folder as a latents file records it, portable: the shipped default by name, any other
 * folder relative to the latents file's folder (so a project folder holding both can move or be copied).
 */
export function recordModel(dir: string, latentsFile: string): string {
  const abs = path.resolve(dir);
  if (abs === path.resolve(DEFAULT_MODEL_DIR)) return DEFAULT_MODEL_RECORD;
  return (
    path
      .relative(path.dirname(path.resolve(latentsFile)), abs)
      .split(path.sep)
      .join('/') || '.'
  );
}

/** The model folder a latents file recorded (see recordModel; older files hold an absolute path), or undefined if it is not there. */
export function recordedModel(recorded: string, latentsFile: string): string | undefined {
  const dir = recorded === DEFAULT_MODEL_RECORD ? DEFAULT_MODEL_DIR : path.resolve(path.dirname(latentsFile), recorded);
  return fs.existsSync(dir) ? dir : undefined;
}

// ---- text -----------------------------------------------------------------------------------------

/** A scene's text: a prompt to encode, or an embeddings file. */
export interface SceneText {
  prompt?: string | undefined;
  embeddings?: string | undefined;
}

/** The prompt embedding of an embeddings file: `prompt_embeds` or its only tensor, `[T, D]` or `[1, T, D]` → `[T, D]`. */
export async function readEmbeddingsFile(file: string, T: number, D: number): Promise<tf.Tensor> {
  const src = await openSafetensors(file);
  try {
    const names = src.names();
    const name = names.includes('prompt_embeds') ? 'prompt_embeds' : names.length === 1 ? names[0]! : undefined;
    if (name === undefined)
      throw new ShapeError(
        file,
        `expected a tensor "prompt_embeds" (or a single tensor), found ${names.length}: ${names.slice(0, 5).join(', ')}`,
      );
    const { shape } = src.info(name);
    const core = shape.length === 3 && shape[0] === 1 ? shape.slice(1) : shape;
    if (core.length !== 2 || core[0] !== T || core[1] !== D)
      throw new ShapeError(
        `${file} "${name}"`,
        `expected [${T}, ${D}] (the model's max_text_seq_length × text_embed_dim), got [${shape}]`,
      );
    const data = await src.read(name);
    return tf.tensor(
      data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>),
      [T, D],
      'float32',
    );
  } finally {
    await src.close();
  }
}

function noTextError(model: LoadedModel, what: string): Mask2DiTError {
  return new ModelFolderError(
    model.dir,
    `${what} needs the model's tokenizer and text encoder. ${model.notes.join(' ')}`.trim(),
  );
}

/** The model's prompt encoder (tokenizer + T5), or a ModelFolderError saying why there is none. */
function promptEncoder(model: LoadedModel, what: string): PromptEncoder {
  if (model.tokenizer === undefined || model.textEncoder === undefined) throw noTextError(model, what);
  return new PromptEncoder(model.tokenizer, model.textEncoder);
}

/** Say on stderr what a prompt loses to the tokenizer: words it does not know (`<unk>`) and words cut by truncation. */
export function warnPromptLoss(model: LoadedModel, label: string, text: string): void {
  const r = model.tokenizer?.report(text);
  if (r === undefined) return;
  if (r.unknown.length > 0)
    log.warn(
      `${label}: ${r.unknown.length} part(s) unknown to the tokenizer of ${model.dir} become <unk>: ${r.unknown.map((u) => JSON.stringify(u)).join(', ')}`,
    );
  if (r.truncated)
    log.warn(
      `${label}: ${r.tokens} tokens, the model reads ${model.tokenizer!.length}; the end is cut (${r.dropped} token(s)): ${JSON.stringify(r.droppedText)}`,
    );
}

/** One `[T, D]` embedding per scene, stacked: `[S, T, D]`. Prompts are encoded in one batch, as the reference pipelines. */
export async function sceneEmbeddings(model: LoadedModel, scenes: readonly SceneText[]): Promise<tf.Tensor> {
  const { max_text_seq_length: T, text_embed_dim: D } = model.transformer.config;
  const blocks: tf.Tensor[] = [];
  const prompted = scenes.map((s, i) => ({ s, i })).filter(({ s }) => s.embeddings === undefined);
  let encoded: tf.Tensor[] = [];
  try {
    if (prompted.length > 0) {
      const pe = promptEncoder(model, `scene ${prompted[0]!.i + 1}'s prompt`);
      prompted.forEach(({ s, i }) => warnPromptLoss(model, `scene ${i + 1}'s prompt`, s.prompt ?? ''));
      const all = pe.encode(prompted.map(({ s }) => s.prompt ?? '')); // [P, T, D]
      encoded = tf.unstack(all, 0); // P × [T, D]
      all.dispose();
    }
    let next = 0;
    for (const s of scenes)
      blocks.push(
        s.embeddings !== undefined ? await readEmbeddingsFile(s.embeddings, T, D) : tf.clone(encoded[next++]!),
      );
    return tf.stack(blocks); // [S, T, D]
  } finally {
    tf.dispose([...blocks, ...encoded]);
  }
}

/** The negative prompt's embedding `[1, T, D]` (used for every scene, as the reference): encoded when the model has a text encoder, else zeros (said on stderr). */
function negativeEmbedding(model: LoadedModel, negativePrompt: string): tf.Tensor {
  const { max_text_seq_length: T, text_embed_dim: D } = model.transformer.config;
  if (model.tokenizer === undefined || model.textEncoder === undefined) {
    log.warn(`${model.dir}: no text encoder, so guidance uses a zero embedding as the negative prompt`);
    return tf.zeros([1, T, D]);
  }
  warnPromptLoss(model, 'the negative prompt', negativePrompt);
  return promptEncoder(model, 'the negative prompt').encode([negativePrompt]); // [1, T, D]
}

/**
 * The negative embedding guidance needs (scale > 1; else undefined): `stored` (a latents file's) when
 * it fits the model, else the negative prompt's, put in `owned`.
 */
export function guidanceNegative(
  model: LoadedModel,
  a: { settings: RunSettings; negativePrompt: string; owned: tf.Tensor[]; stored?: tf.Tensor | undefined },
): tf.Tensor | undefined {
  if (a.settings.guidance <= 1) return undefined;
  const { max_text_seq_length: T, text_embed_dim: D } = model.transformer.config;
  if (a.stored !== undefined && a.stored.shape.join() === [1, T, D].join()) return a.stored;
  const negative = negativeEmbedding(model, a.negativePrompt);
  a.owned.push(negative);
  return negative;
}

/** A scene file's prompt embeddings `[S, T, D]` and the negative one guidance needs, both put in `owned`. */
export async function encodeSceneFile(
  model: LoadedModel,
  sf: SceneFile,
  a: { settings: RunSettings; progress: Progress; owned: tf.Tensor[] },
): Promise<{ prompts: tf.Tensor; negative: tf.Tensor | undefined }> {
  const S = sf.scenes.length;
  a.progress.phase('encode text', `${S} scene${S > 1 ? 's' : ''}`);
  const prompts = await sceneEmbeddings(model, sf.scenes);
  a.owned.push(prompts);
  return {
    prompts,
    negative: guidanceNegative(model, {
      settings: a.settings,
      negativePrompt: sf.negative_prompt ?? '',
      owned: a.owned,
    }),
  };
}

/** The scenes of a film made from a scene file (every scene `frames` long). */
export function filmScenes(sf: SceneFile, frames: number): FilmScene[] {
  return sf.scenes.map((s, i) => ({
    ...(s.prompt !== undefined ? { prompt: s.prompt } : {}),
    caption: sceneCaption(sf, i),
    frames,
  }));
}

// ---- progress --------------------------------------------------------------------------------------

/** The latent-only generate request of a scene-file run (`generate`, `attention`): what both share. */
export function generateRequest(a: {
  prompts: tf.Tensor;
  negative: tf.Tensor | undefined;
  scenes: number;
  frames: number;
  width: number;
  height: number;
  settings: RunSettings;
}): GenerateOptions {
  return {
    prompts: a.prompts,
    ...(a.negative !== undefined ? { negative: a.negative } : {}),
    scenes: a.scenes,
    frames: a.frames,
    width: a.width,
    height: a.height,
    steps: a.settings.steps,
    guidanceScale: a.settings.guidance,
    seed: a.settings.seed,
    sampler: a.settings.sampler,
    output: 'latent',
  };
}

export function stepReporter(progress: Progress): (p: StepProgress) => void {
  return (p) => progress.step(p.step, p.steps);
}

// ---- outputs ---------------------------------------------------------------------------------------

export interface FilmPaths {
  mp4: string;
  sheet: string;
  latents: string;
  frames?: string;
}

export interface OutputFlags {
  out: string;
  sheet?: string;
  frames?: string;
  latentsOnly?: boolean;
}

/** The outputs of `--out` (and `--sheet`, `--frames`); a name the writers cannot honour is refused. */
export function filmPaths(flags: OutputFlags): FilmPaths {
  const ext = path.extname(flags.out);
  if (!VIDEO_EXTENSIONS.includes(ext.toLowerCase())) {
    throw new Mask2DiTError(
      'OPTION',
      `--out ${flags.out}: ${ext === '' ? 'no file extension' : `cannot write a "${ext}" file`}; the film is an H.264 mp4: use a name ending in ${VIDEO_EXTENSIONS.join(' or ')}`,
    );
  }
  if (flags.sheet !== undefined && path.extname(flags.sheet).toLowerCase() !== '.png')
    throw new Mask2DiTError('OPTION', `--sheet ${flags.sheet}: the contact sheet is a PNG: use a name ending in .png`);
  return {
    mp4: flags.out,
    sheet: flags.sheet ?? sheetPathFor(flags.out),
    latents: latentsPathFor(flags.out),
    ...(flags.frames !== undefined ? { frames: flags.frames } : {}),
  };
}

/** Reserve every output of a film now (an existing one without --force fails before any work). */
export function reserveFilm(outputs: OutputSet, paths: FilmPaths, latentsOnly: boolean): FilmPaths {
  const temp: FilmPaths = { mp4: '', sheet: '', latents: '' };
  if (!latentsOnly) {
    temp.mp4 = outputs.file(paths.mp4);
    temp.sheet = outputs.file(paths.sheet);
  }
  temp.latents = outputs.file(paths.latents);
  if (!latentsOnly && paths.frames !== undefined) temp.frames = outputs.dir(paths.frames);
  return temp;
}

export interface FilmResult {
  scenes: number;
  frames: number;
  width: number;
  height: number;
  fps: number;
  files: string[];
}

/**
 * Decode the clean latents `[1, S·f, C, h, w]` (unless latents-only) and write every output to its
 * reserved temp path: mp4, contact sheet, PNG frames, latents file. The caller commits the set.
 */
export async function writeFilm(args: {
  model: LoadedModel;
  latents: tf.Tensor;
  promptEmbeds: tf.Tensor;
  negativeEmbeds?: tf.Tensor;
  meta: FilmMeta;
  paths: FilmPaths;
  temp: FilmPaths;
  latentsOnly: boolean;
  progress: Progress;
  signal: AbortSignal;
}): Promise<FilmResult> {
  const { meta, paths, temp, progress } = args;
  const S = meta.scenes.length;
  const written: string[] = [];
  let total = 0;
  if (!args.latentsOnly) {
    progress.phase('decode', `${S} scene${S > 1 ? 's' : ''} with the VAE`);
    const video = await decodeScenes(args.model.vae, args.latents, S); // [1, 3, S·frames, H, W] in [0, 1]
    const signed = tf.tidy(() => tf.sub(tf.mul(video, 2), 1));
    video.dispose();
    const { width, height, frames } = await tensorToFrames(signed);
    signed.dispose();
    total = frames.length;
    if (width !== meta.width || height !== meta.height)
      throw new ShapeError('decoded video', `is ${width}×${height}, expected ${meta.width}×${meta.height}`);
    progress.phase('write', `${paths.mp4} (${frames.length} frames, ${width}×${height}, ${meta.fps} fps)`);
    await writeMp4(temp.mp4, frames, { width, height, fps: meta.fps, signal: args.signal });
    written.push(paths.mp4);
    let at = 0;
    const sheetScenes = meta.scenes.map((s) => {
      const part = frames.slice(at, at + s.frames);
      at += s.frames;
      return { frames: part, caption: s.caption };
    });
    await writePng(temp.sheet, contactSheet(sheetScenes, { width, height }));
    written.push(paths.sheet);
    if (temp.frames !== undefined && paths.frames !== undefined) {
      await writePngSequence(temp.frames, frames, { width, height });
      written.push(paths.frames);
    }
  } else {
    progress.phase('write', paths.latents);
  }
  await writeLatentsFile(temp.latents, {
    latents: args.latents,
    promptEmbeds: args.promptEmbeds,
    ...(args.negativeEmbeds !== undefined ? { negativeEmbeds: args.negativeEmbeds } : {}),
    meta,
  });
  written.push(paths.latents);
  return { scenes: S, frames: total, width: meta.width, height: meta.height, fps: meta.fps, files: written };
}

/** The one-line summary on stdout (or the JSON document). */
export function printResult(result: FilmResult & { seconds: number }, json: boolean, quiet: boolean): void {
  if (json) process.stdout.write(JSON.stringify(result) + '\n');
  else if (!quiet) {
    const what =
      result.frames > 0
        ? `${result.scenes} scenes, ${result.frames} frames ${result.width}×${result.height} at ${result.fps} fps`
        : `latents of ${result.scenes} scenes`;
    process.stdout.write(`wrote ${result.files.join(', ')} (${what}) in ${result.seconds.toFixed(1)} s\n`);
  }
}

/** Checks that `dir` exists before the (slow) load, so a typo fails fast. */
export function checkModelDir(dir: string): void {
  if (!fs.existsSync(dir))
    throw new ModelFolderError(
      dir,
      `no such model folder${dir === DEFAULT_MODEL_DIR ? ` (the default model ${DEFAULT_MODEL_NAME} is missing from the package; pass --model)` : ''}`,
    );
}
