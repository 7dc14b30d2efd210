/**
 * The latents file written next to every film (`film.latents.safetensors`), so that extending a film
 * is exact: no lossy mp4 decode, no VAE encode, the same prompt embeddings.
 *
 *   latents                  F32 [1, S·f, C, h, w]  clean latents of all S scenes (VAE latents × scaling_factor)
 *   prompt_embeds            F32 [S, T, D]          the prompt embedding block of each scene
 *   negative_prompt_embeds   F32 [1, T, D]          (when guidance was used)
 *   __metadata__             format "mask2dit-latents", version "1", film: JSON (FilmMeta)
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.js';

export const LATENTS_FORMAT = 'mask2dit-latents';

export interface FilmScene {
  /** The prompt, or absent when the scene came from an embeddings file. */
  prompt?: string;
  caption: string;
  frames: number;
}

export interface FilmMeta {
  scenes: FilmScene[];
  width: number;
  height: number;
  fps: number;
  steps: number;
  guidance: number;
  seed: number;
  sampler: string;
  /** The model that made it: `package:weights/<name>` for a shipped model, else its folder relative to the latents file (older files: an absolute path). */
  model: string;
  negativePrompt: string;
}

export interface FilmLatents {
  latents: tf.Tensor;
  promptEmbeds: tf.Tensor;
  negativeEmbeds?: tf.Tensor;
  meta: FilmMeta;
}

/** A latents file that is not one, or whose parts do not fit together. */
export class LatentsFileError extends Mask2DiTError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super('LATENTS_FILE', `${file}: ${detail}`);
  }
}

async function f32(t: tf.Tensor): Promise<TensorToWrite> {
  return { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array };
}

/** Writes the latents file (atomically, replacing `file`: callers write to a reserved temp path). */
export async function writeLatentsFile(file: string, film: FilmLatents): Promise<void> {
  const tensors: Record<string, TensorToWrite> = {
    latents: await f32(film.latents),
    prompt_embeds: await f32(film.promptEmbeds),
  };
  if (film.negativeEmbeds !== undefined) tensors['negative_prompt_embeds'] = await f32(film.negativeEmbeds);
  await writeSafetensors(file, tensors, {
    format: LATENTS_FORMAT,
    version: '1',
    producer: 'mask2dit-ts',
    film: JSON.stringify(film.meta),
  });
}

function checkMeta(file: string, raw: unknown): FilmMeta {
  const m = raw as Partial<FilmMeta> | null;
  const bad = (field: string, want: string) =>
    new LatentsFileError(file, `__metadata__.film.${field}: expected ${want}`);
  if (m === null || typeof m !== 'object') throw bad('(root)', 'an object');
  if (!Array.isArray(m.scenes) || m.scenes.length === 0) throw bad('scenes', 'a non-empty array');
  m.scenes.forEach((s, i) => {
    if (
      s === null ||
      typeof s !== 'object' ||
      typeof s.caption !== 'string' ||
      !Number.isInteger(s.frames) ||
      (s.prompt !== undefined && typeof s.prompt !== 'string')
    ) {
      throw bad(`scenes[${i}]`, '{prompt?: string, caption: string, frames: integer}');
    }
  });
  for (const k of ['width', 'height', 'fps', 'steps', 'guidance', 'seed'] as const)
    if (typeof m[k] !== 'number') throw bad(k, 'a number');
  for (const k of ['sampler', 'model', 'negativePrompt'] as const)
    if (typeof m[k] !== 'string') throw bad(k, 'a string');
  return m as FilmMeta;
}

/** Reads and checks a latents file; the caller disposes the tensors. */
export async function readLatentsFile(file: string): Promise<FilmLatents> {
  const src = await openSafetensors(file);
  const out: tf.Tensor[] = [];
  try {
    if (src.metadata['format'] !== LATENTS_FORMAT)
      throw new LatentsFileError(
        file,
        `not a mask2dit latents file (__metadata__.format = ${src.metadata['format'] ?? 'absent'}, expected ${LATENTS_FORMAT})`,
      );
    let meta: FilmMeta;
    try {
      meta = checkMeta(file, JSON.parse(src.metadata['film'] ?? 'null'));
    } catch (e) {
      if (e instanceof LatentsFileError) throw e;
      throw new LatentsFileError(file, `__metadata__.film is not valid JSON: ${(e as Error).message}`);
    }
    const read = async (name: string, rank: number): Promise<tf.Tensor> => {
      if (!src.names().includes(name)) throw new LatentsFileError(file, `missing tensor "${name}"`);
      const info = src.info(name);
      if (info.shape.length !== rank)
        throw new LatentsFileError(file, `tensor "${name}" has shape [${info.shape}], expected rank ${rank}`);
      const data = await src.read(name);
      const t = tf.tensor(
        data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>),
        info.shape,
        'float32',
      );
      out.push(t);
      return t;
    };
    const latents = await read('latents', 5);
    const promptEmbeds = await read('prompt_embeds', 3);
    const negativeEmbeds = src.names().includes('negative_prompt_embeds')
      ? await read('negative_prompt_embeds', 3)
      : undefined;
    const S = meta.scenes.length;
    if (promptEmbeds.shape[0] !== S)
      throw new LatentsFileError(file, `prompt_embeds has ${promptEmbeds.shape[0]} scenes, the metadata lists ${S}`);
    if (latents.shape[0] !== 1 || latents.shape[1]! % S !== 0)
      throw new LatentsFileError(file, `latents [${latents.shape}] do not split into ${S} scenes of [1, f, C, h, w]`);
    return { latents, promptEmbeds, ...(negativeEmbeds !== undefined ? { negativeEmbeds } : {}), meta };
  } catch (e) {
    tf.dispose(out);
    throw e;
  } finally {
    await src.close();
  }
}
