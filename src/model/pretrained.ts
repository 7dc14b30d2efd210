/**
 * Loading a component from a diffusers/Hugging Face folder, shared by the transformer, the VAE and
 * the text encoder: find `dir/config.json` (or `dir/<sub>/config.json` in a pipeline folder), read the
 * (sharded) safetensors, build the module from a WeightSource and report every missing, unexpected
 * or wrongly shaped parameter in one error (the half-built module is disposed).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { openSafetensors, type TensorSource } from '../io/safetensors.js';
import type { M2Layer } from '../layers/layer.js';
import { WeightSource } from '../layers/weightSource.js';

export interface PretrainedOptions {
  /** Tolerate unexpected keys (default false: they are an error). */
  strict?: boolean;
  /** A weights file or index.json (default: the one checkpoint in the folder). */
  weights?: string;
  /** Take only tensors whose names start with this, without it (a combined pipeline checkpoint). */
  prefix?: string;
}

/** The floating tensors (bf16/f16/f64 decoded to float32) whose names start with `prefix`, under their names without it. */
export async function readTensors(src: TensorSource, prefix = ''): Promise<Map<string, tf.Tensor>> {
  const out = new Map<string, tf.Tensor>();
  for (const name of src.names()) {
    const info = src.info(name);
    if (!name.startsWith(prefix) || !['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) continue;
    const data = await src.read(name);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as Float64Array);
    out.set(name.slice(prefix.length), tf.tensor(f32, info.shape, 'float32'));
  }
  return out;
}

/**
 * @param sub the component's folder name inside a pipeline folder (`transformer`, `vae`, `text_encoder`)
 * @param what a description for the missing-config error
 * @param ignore tensor names to drop before building (e.g. a tied embedding)
 */
export async function loadPretrained<C, T extends M2Layer>(
  dir: string,
  sub: string,
  what: string,
  readConfig: (file: string) => C,
  build: (config: C, ws: WeightSource) => T,
  options: PretrainedOptions & { ignore?: string[] } = {},
): Promise<T> {
  const root = fs.existsSync(path.join(dir, sub, 'config.json')) ? path.join(dir, sub) : dir;
  const configPath = path.join(root, 'config.json');
  if (!fs.existsSync(configPath)) throw new ConfigError(configPath, '(file)', `missing: expected ${what} folder (or a pipeline folder with ${sub}/) holding config.json`);
  const config = readConfig(configPath);
  const src = await openSafetensors(options.weights ?? root);
  try {
    const tensors = await readTensors(src, options.prefix ?? '');
    for (const n of options.ignore ?? []) {
      tensors.get(n)?.dispose();
      tensors.delete(n);
    }
    const ws = WeightSource.fromTensors(src.path, tensors);
    const model = build(config, ws);
    try {
      ws.finish(options.strict ?? true);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  } finally {
    await src.close();
  }
}
