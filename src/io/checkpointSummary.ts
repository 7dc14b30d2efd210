/**
 * Summaries of checkpoints for `mask2dit inspect` and for code: tensor names, dtypes, shapes and
 * parameter counts (total, per component and per numbered block). A folder may be a diffusers
 * layout (`transformer/`, `vae/`, …): every checkpoint inside it is summarised.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Mask2DiTError } from '../errors.js';
import { openSafetensors, type TensorInfo, type TensorSource } from './safetensors.js';

export interface CheckpointSummary {
  path: string;
  metadata: Record<string, string>;
  config?: Record<string, unknown>;
  totalParams: number;
  /** Parameter count per group: `patch_embed`, `transformer_blocks.3`, … */
  groups: Record<string, number>;
  tensors: { name: string; dtype: string; shape: number[]; params: number }[];
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** `transformer_blocks.3.attn1.to_q.weight` → `transformer_blocks.3`; `proj_out.weight` → `proj_out`. */
export function groupOf(name: string): string {
  const [first, second] = name.split('.');
  return second !== undefined && /^\d+$/.test(second) ? `${first}.${second}` : (first ?? name);
}

export function summarise(src: TensorSource, config?: Record<string, unknown>): CheckpointSummary {
  const tensors = src.names().map((n) => {
    const info: TensorInfo = src.info(n);
    return { name: n, dtype: info.dtype, shape: info.shape, params: numel(info.shape) };
  });
  const groups: Record<string, number> = {};
  for (const t of tensors) groups[groupOf(t.name)] = (groups[groupOf(t.name)] ?? 0) + t.params;
  const summary: CheckpointSummary = {
    path: src.path,
    metadata: src.metadata,
    totalParams: tensors.reduce((a, t) => a + t.params, 0),
    groups,
    tensors,
  };
  if (config !== undefined) summary.config = config;
  return summary;
}

/** The checkpoints to inspect under `target`: itself if a file, else what a (diffusers) folder holds. */
export function findCheckpoints(target: string): string[] {
  const st = fs.statSync(target, { throwIfNoEntry: false });
  if (st === undefined) throw new Mask2DiTError('NOT_FOUND', `${target}: no such file or directory`);
  if (st.isFile()) return [target];
  const found: string[] = [];
  const visit = (dir: string, depth: number) => {
    const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    const index = entries.find((e) => e.isFile() && e.name.endsWith('.safetensors.index.json'));
    if (index !== undefined) found.push(path.join(dir, index.name));
    else for (const e of entries) if (e.isFile() && e.name.endsWith('.safetensors')) found.push(path.join(dir, e.name));
    if (depth > 0) for (const e of entries) if (e.isDirectory()) visit(path.join(dir, e.name), depth - 1);
  };
  visit(target, 1);
  if (found.length === 0)
    throw new Mask2DiTError(
      'NOT_FOUND',
      `${target}: no .safetensors file or *.safetensors.index.json in this folder or its subfolders`,
    );
  return found;
}

function readConfigNextTo(file: string): Record<string, unknown> | undefined {
  const p = path.join(path.dirname(file), 'config.json');
  if (!fs.existsSync(p)) return undefined;
  try {
    const v: unknown = JSON.parse(fs.readFileSync(p, 'utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    throw new Mask2DiTError('CONFIG', `${p}: not valid JSON`);
  }
}

export async function inspectPath(target: string): Promise<CheckpointSummary[]> {
  const out: CheckpointSummary[] = [];
  for (const file of findCheckpoints(target)) {
    const src = await openSafetensors(file);
    try {
      out.push(summarise(src, readConfigNextTo(file)));
    } finally {
      await src.close();
    }
  }
  return out;
}
