/** Helpers shared by CLI commands: backend from the global flags, tensors in and out of safetensors. */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, type BackendInfo } from '../backend/index.js';
import { Mask2DiTError } from '../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { parseOffloadMode, type OffloadMode } from '../model/offload.js';

/** Initialise the backend named by `--backend`/`--threads` (or the environment). */
export async function backendFromFlags(cmd: Command): Promise<BackendInfo> {
  const g = cmd.optsWithGlobals<{ backend?: string; threads?: string }>();
  const threads = g.threads !== undefined ? Number(g.threads) : undefined;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1))
    throw new Mask2DiTError('OPTION', `--threads: expected a positive integer, got ${g.threads}`);
  return selectBackend(g.backend, threads !== undefined ? { threads } : {});
}

/** `--offload auto|none|blocks` (generate, extend, forward). */
export function addOffloadOption(c: Command): Command {
  return c.option(
    '--offload <mode>',
    "where the transformer's and text encoder's block weights live: auto (default: resident when they fit the backend's memory, else read from the checkpoint one block at a time), none (all resident), blocks",
  );
}

/** The `--offload` value, checked (default 'auto'). */
export function offloadFromFlags(value: string | undefined): OffloadMode {
  return value === undefined ? 'auto' : parseOffloadMode(value, '--offload');
}

/** Every tensor of a safetensors file: floats as float32 tf tensors, integers as number arrays. */
export async function readTensorFile(
  file: string,
): Promise<{ floats: Map<string, tf.Tensor>; ints: Map<string, number[]> }> {
  const src = await openSafetensors(file);
  const floats = new Map<string, tf.Tensor>();
  const ints = new Map<string, number[]>();
  try {
    for (const name of src.names()) {
      const { dtype, shape } = src.info(name);
      const data = await src.read(name);
      if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64') {
        floats.set(
          name,
          tf.tensor(data instanceof Float32Array ? data : Float32Array.from(data as Float64Array), shape, 'float32'),
        );
      } else {
        ints.set(
          name,
          data instanceof BigInt64Array ? Array.from(data, Number) : Array.from(data as ArrayLike<number>),
        );
      }
    }
  } finally {
    await src.close();
  }
  return { floats, ints };
}

/** Write tensors to a safetensors file (atomically): int32 as I32, everything else as F32. */
export async function writeTensorFile(
  file: string,
  tensors: Map<string, tf.Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of tensors)
    out[name] =
      t.dtype === 'int32'
        ? { dtype: 'I32', shape: t.shape, data: (await t.data()) as Int32Array }
        : { dtype: 'F32', shape: t.shape, data: (await t.data()) as Float32Array };
  await writeSafetensors(file, out, { format: 'pt', producer: 'mask2dit-ts', ...metadata });
}

/** Max abs difference of each produced tensor against a same-named reference tensor, as table rows. */
export async function compareWith(
  file: string,
  produced: Map<string, tf.Tensor>,
): Promise<{ name: string; maxAbs: number; maxRef: number }[]> {
  const { floats, ints: _ } = await readTensorFile(file);
  const rows: { name: string; maxAbs: number; maxRef: number }[] = [];
  for (const [name, t] of produced) {
    const ref = floats.get(name);
    if (ref === undefined || ref.size !== t.size) continue;
    const [a, r] = await Promise.all([t.data(), ref.data()]);
    let maxAbs = 0;
    let maxRef = 0;
    for (let i = 0; i < a.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(a[i]! - r[i]!));
      maxRef = Math.max(maxRef, Math.abs(r[i]!));
    }
    rows.push({ name, maxAbs, maxRef });
  }
  tf.dispose([...floats.values()]);
  return rows;
}
