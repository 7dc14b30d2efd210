/**
 * Training checkpoints: one safetensors file holding, by name, every module's weights
 * (`<module>.<reference name>`), their EMA (`ema.<module>.<name>`), the AdamW moments
 * (`optim.m.<module>.<name>`, `optim.v.…`) and, in `__metadata__`, the step, the optimizer's t, the
 * seed and the configs. Written atomically (temp file + rename) by `writeSafetensors`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';

export interface CheckpointMeta {
  kind: string;
  step: number;
  optimizerT: number;
  seed: number;
  /** JSON strings: module configs, trainer options. */
  configs: Record<string, string>;
}

export async function saveCheckpoint(
  file: string,
  tensors: Map<string, tf.Tensor>,
  meta: CheckpointMeta,
): Promise<void> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of tensors) out[name] = { dtype: 'F32', shape: t.shape, data: (await t.data()) as Float32Array };
  await writeSafetensors(file, out, {
    format: 'mask2dit-train',
    kind: meta.kind,
    step: String(meta.step),
    optimizer_t: String(meta.optimizerT),
    seed: String(meta.seed),
    ...Object.fromEntries(Object.entries(meta.configs).map(([k, v]) => [`config.${k}`, v])),
  });
}

/** The `__metadata__` of a training checkpoint, validated. */
function parseMeta(md: Record<string, string>, file: string): CheckpointMeta {
  if (md['format'] !== 'mask2dit-train')
    throw new Mask2DiTError(
      'CHECKPOINT',
      `${file}: not a mask2dit training checkpoint (__metadata__.format = ${md['format'] ?? 'absent'}, expected mask2dit-train)`,
    );
  const num = (k: string) => {
    const v = Number(md[k]);
    if (!Number.isInteger(v) || v < 0)
      throw new Mask2DiTError('CHECKPOINT', `${file}: __metadata__.${k} must be a non-negative integer, got ${md[k]}`);
    return v;
  };
  return {
    kind: md['kind'] ?? '',
    step: num('step'),
    optimizerT: num('optimizer_t'),
    seed: num('seed'),
    configs: Object.fromEntries(
      Object.entries(md)
        .filter(([k]) => k.startsWith('config.'))
        .map(([k, v]) => [k.slice(7), v]),
    ),
  };
}

/** A checkpoint's metadata only (reads the header, no tensors). */
export async function readCheckpointMeta(file: string): Promise<CheckpointMeta> {
  const src = await openSafetensors(file);
  try {
    return parseMeta(src.metadata, file);
  } finally {
    await src.close();
  }
}

export async function loadCheckpoint(file: string): Promise<{ tensors: Map<string, tf.Tensor>; meta: CheckpointMeta }> {
  const src = await openSafetensors(file);
  try {
    const meta = parseMeta(src.metadata, file);
    const tensors = new Map<string, tf.Tensor>();
    for (const name of src.names())
      tensors.set(name, tf.tensor((await src.read(name)) as Float32Array, src.info(name).shape, 'float32'));
    return { tensors, meta };
  } finally {
    await src.close();
  }
}

/** Assign `prefix<name>` tensors to variables; every variable must be present with its shape. */
export function assignFrom(
  tensors: Map<string, tf.Tensor>,
  prefix: string,
  vars: Map<string, tf.Variable>,
  file: string,
): void {
  const problems: string[] = [];
  for (const [name, v] of vars) {
    const t = tensors.get(prefix + name);
    if (t === undefined) problems.push(`missing ${prefix}${name}`);
    else if (t.shape.join(',') !== v.shape.join(','))
      problems.push(`${prefix}${name}: shape [${t.shape}], model has [${v.shape}]`);
  }
  if (problems.length > 0)
    throw new Mask2DiTError(
      'CHECKPOINT',
      `${file} does not match the model: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? `; … ${problems.length - 10} more` : ''}`,
    );
  for (const [name, v] of vars) v.assign(tensors.get(prefix + name)!);
}
