/**
 * One component of a diffusers-style pipeline folder as the reference writes it: `config.json` plus
 * one float32 safetensors file whose tensor names are the reference parameter names (and whose
 * layouts are the reference's: the caller converts anything it keeps transposed).
 *
 *   transformer/ config.json + diffusion_pytorch_model.safetensors
 *   vae/         config.json + diffusion_pytorch_model.safetensors
 *
 * Both files are written atomically (temp file + rename); an existing file is refused unless `force`.
 */
import fs from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import { OutputExistsError, writeFileAtomic } from './atomic.js';
import { writeSafetensors, type TensorToWrite } from './safetensors.js';

/** The diffusers version whose config keys this project reads and writes. */
export const DIFFUSERS_VERSION = '0.30.3';

/** The weights file name of a diffusers model component. */
export const DIFFUSERS_WEIGHTS = 'diffusion_pytorch_model.safetensors';

export interface ComponentFiles {
  /** The `config.json` object, written with 2-space indentation. */
  config: Record<string, unknown>;
  /** Tensors by reference name, already in the reference layout (not disposed here). */
  tensors: Iterable<[string, tf.Tensor]>;
  /** Weights file name inside `dir` (default `diffusion_pytorch_model.safetensors`). */
  weightsFile?: string;
  /** Replace existing files (default false: OutputExistsError). */
  force?: boolean;
}

/** Write `dir/config.json` and `dir/<weightsFile>` (F32); `dir` is created if missing. */
export async function writeDiffusersComponent(dir: string, files: ComponentFiles): Promise<void> {
  const weights = path.join(dir, files.weightsFile ?? DIFFUSERS_WEIGHTS);
  const config = path.join(dir, 'config.json');
  const force = files.force ?? false;
  for (const f of [config, weights]) if (!force && fs.existsSync(f)) throw new OutputExistsError(f);
  fs.mkdirSync(dir, { recursive: true });
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of files.tensors)
    out[name] = { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array };
  await writeSafetensors(weights, out, { format: 'pt', producer: 'mask2dit-ts' });
  await writeFileAtomic(config, `${JSON.stringify(files.config, null, 2)}\n`, { force });
}
