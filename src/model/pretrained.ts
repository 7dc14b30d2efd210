/**
 * Loading a component from a diffusers/Hugging Face folder, shared by the transformer, the VAE and
 * the text encoder: find `dir/config.json` (or `dir/<sub>/config.json` in a pipeline folder), read the
 * (sharded) safetensors, build the module from a WeightSource and report every missing, unexpected
 * or wrongly shaped parameter in one error (the half-built module is disposed).
 *
 * Tensors are read one at a time as the layers ask for them (synchronously, widened to float32 and,
 * for Linear kernels, transposed in JS), so a load never holds more than the model plus one tensor.
 * Before anything is read, what the load will hold is checked against the backend's budget and the
 * free RAM (`chooseOffload`): a model with blocks (transformer, T5) is loaded resident or with its
 * blocks offloaded (`offload: 'auto' | 'none' | 'blocks'`), and one that cannot fit is refused with
 * a MemoryBudgetError naming the folder — never a wasm "memory access out of bounds".
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../errors.js';
import { openSafetensors, type TensorSource } from '../io/safetensors.js';
import type { M2Layer } from '../layers/layer.js';
import { WeightSource } from '../layers/weightSource.js';
import { log } from '../log.js';
import {
  chooseOffload,
  footprint,
  memoryAvailable,
  StoredWeights,
  type BlockLayout,
  type MemoryAvailable,
  type OffloadDecision,
  type OffloadMode,
} from './offload.js';

export interface PretrainedOptions {
  /** Tolerate unexpected keys (default false: they are an error). */
  strict?: boolean;
  /** A weights file or index.json (default: the one checkpoint in the folder). */
  weights?: string;
  /** Take only tensors whose names start with this, without it (a combined pipeline checkpoint). */
  prefix?: string;
}

/** Loading options of models with blocks (the transformer, the T5 encoder). */
export interface OffloadOptions {
  /**
   * Where the blocks' weights live: `'none'` all resident in the backend (float32), `'blocks'` left
   * in the checkpoint and materialised one block at a time per forward, `'auto'` (default) resident
   * when it fits the backend's budget with room for activations, else blocks.
   */
  offload?: OffloadMode;
  /** The memory to plan against (default: the current backend's budget and the free RAM). */
  memory?: MemoryAvailable;
  /** Told the decision (mode and why) before the model is built; it is also logged at info level. */
  onDecision?: (decision: OffloadDecision) => void;
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
 * @param build builds the model; `store` is given when its blocks are offloaded (the model then owns it)
 * @param options.ignore tensor names to drop before building (e.g. a tied embedding)
 * @param options.blocks the model's block layout (models without one always load resident)
 * @throws MemoryBudgetError before reading when the model cannot fit (see `chooseOffload`)
 */
export async function loadPretrained<C, T extends M2Layer>(
  dir: string,
  sub: string,
  what: string,
  readConfig: (file: string) => C,
  build: (config: C, ws: WeightSource, store?: StoredWeights) => T,
  options: PretrainedOptions & OffloadOptions & { ignore?: string[]; blocks?: (config: C) => BlockLayout } = {},
): Promise<T> {
  const root = fs.existsSync(path.join(dir, sub, 'config.json')) ? path.join(dir, sub) : dir;
  const configPath = path.join(root, 'config.json');
  if (!fs.existsSync(configPath))
    throw new ConfigError(
      configPath,
      '(file)',
      `missing: expected ${what} folder (or a pipeline folder with ${sub}/) holding config.json`,
    );
  const config = readConfig(configPath);
  const src = await openSafetensors(options.weights ?? root);
  let store: StoredWeights | undefined;
  try {
    store = StoredWeights.fromSource(src, {
      ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
      ignore: options.ignore ?? [],
    });
    const layout = options.blocks?.(config);
    const decision = chooseOffload(
      `${sub} (${root})`,
      options.offload ?? 'auto',
      footprint(store, layout),
      options.memory ?? memoryAvailable(),
      layout !== undefined,
    );
    log.info(decision.note);
    options.onDecision?.(decision);
    const ws = WeightSource.fromReader(store);
    const offloaded = decision.mode === 'blocks' ? store : undefined;
    const model = build(config, ws, offloaded);
    if (offloaded !== undefined) store = undefined; // the model owns it now (closed by its dispose)
    try {
      ws.finish(options.strict ?? true);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  } finally {
    store?.close();
    await src.close();
  }
}
