/**
 * `mask2dit inspect <file.safetensors | index.json | folder>`: prints what
 * `inspectPath` (src/io/checkpointSummary.ts) finds, as a table or `--json`.
 */
import type { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { inspectPath, type CheckpointSummary } from '../../io/checkpointSummary.js';
import { Mask2DiTError } from '../../errors.js';

const fmtCount = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}B`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(2)}M`
      : n >= 1e3
        ? `${(n / 1e3).toFixed(1)}K`
        : String(n);

function render(s: CheckpointSummary, all: boolean, limit: number): string {
  const lines: string[] = [];
  lines.push(`${s.path}`);
  if (s.config !== undefined) {
    const cls = s.config['_class_name'];
    lines.push(
      `  config: ${typeof cls === 'string' ? cls : 'config.json'} ${JSON.stringify(Object.fromEntries(Object.entries(s.config).filter(([k]) => !k.startsWith('_'))))}`,
    );
  }
  if (Object.keys(s.metadata).length > 0) lines.push(`  metadata: ${JSON.stringify(s.metadata)}`);
  const dtypes = [...new Set(s.tensors.map((t) => t.dtype))].join(', ');
  lines.push(
    `  tensors: ${s.tensors.length}, parameters: ${s.totalParams.toLocaleString('en-US')} (${fmtCount(s.totalParams)}), dtypes: ${dtypes || '-'}`,
  );
  lines.push('  parameters per component / block:');
  for (const [g, n] of Object.entries(s.groups))
    lines.push(`    ${g.padEnd(36)} ${n.toLocaleString('en-US').padStart(16)}`);
  const shown = all ? s.tensors : s.tensors.slice(0, limit);
  const w = Math.min(72, Math.max(4, ...shown.map((t) => t.name.length)));
  lines.push(`  ${'name'.padEnd(w)}  dtype  ${'shape'.padEnd(20)} params`);
  for (const t of shown)
    lines.push(
      `  ${t.name.padEnd(w)}  ${t.dtype.padEnd(5)}  ${JSON.stringify(t.shape).padEnd(20)} ${t.params.toLocaleString('en-US')}`,
    );
  if (shown.length < s.tensors.length) lines.push(`  … ${s.tensors.length - shown.length} more (use --all)`);
  return lines.join('\n');
}

/** A pipeline folder (model_index.json): its class and, per component, class, parameters and config. */
interface PipelineSummary {
  path: string;
  className: string;
  components: {
    name: string;
    library: string | null;
    className: string | null;
    params: number | null;
    config?: Record<string, unknown>;
  }[];
}

function readJsonObject(file: string): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    throw new Mask2DiTError('CONFIG', `${file}: not valid JSON`);
  }
}

const COMPONENT_CONFIGS = ['config.json', 'scheduler_config.json', 'tokenizer.json'];

function pipelineSummary(dir: string, checkpoints: CheckpointSummary[]): PipelineSummary {
  const index = readJsonObject(path.join(dir, 'model_index.json')) ?? {};
  const components = Object.entries(index)
    .filter(([k, v]) => !k.startsWith('_') && Array.isArray(v))
    .map(([name, v]) => {
      const [library, className] = v as [string | null, string | null];
      const sub = path.resolve(dir, name);
      const inside = checkpoints.filter((c) => path.resolve(c.path).startsWith(sub + path.sep));
      const params = inside.length > 0 ? inside.reduce((n, c) => n + c.totalParams, 0) : null;
      let config: Record<string, unknown> | undefined;
      for (const f of COMPONENT_CONFIGS) config ??= readJsonObject(path.join(sub, f));
      if (name === 'tokenizer' && config !== undefined && Array.isArray(config['vocab']))
        config = { ...config, vocab: `${config['vocab'].length} tokens` };
      return { name, library, className, params, ...(config !== undefined ? { config } : {}) };
    });
  return { path: dir, className: typeof index['_class_name'] === 'string' ? index['_class_name'] : '?', components };
}

function renderPipeline(p: PipelineSummary): string {
  const lines = [`${p.path}: pipeline ${p.className}`];
  const total = p.components.reduce((n, c) => n + (c.params ?? 0), 0);
  lines.push(`  ${'component'.padEnd(14)} ${'class'.padEnd(52)} ${'parameters'.padStart(14)}`);
  for (const c of p.components) {
    const cls = c.className === null ? '(absent)' : `${c.className} (${c.library})`;
    lines.push(
      `  ${c.name.padEnd(14)} ${cls.padEnd(52)} ${(c.params === null ? '-' : c.params.toLocaleString('en-US')).padStart(14)}`,
    );
  }
  lines.push(`  ${'total'.padEnd(14)} ${''.padEnd(52)} ${total.toLocaleString('en-US').padStart(14)}`);
  for (const c of p.components) {
    if (c.config === undefined) continue;
    const shown = Object.fromEntries(Object.entries(c.config).filter(([k]) => !k.startsWith('_')));
    lines.push(`  ${c.name} config: ${JSON.stringify(shown)}`);
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description(
      'list the tensors of a safetensors file, sharded index or (diffusers) model folder: names, dtypes, shapes, parameter counts; a pipeline folder (model_index.json) also gets its components, configs and parameters per component',
    )
    .argument('<path>', 'a .safetensors file, a *.safetensors.index.json, or a folder')
    .option('--json', 'print one JSON document on stdout')
    .option('--all', 'list every tensor (default: the first 200 per checkpoint)')
    .action(async (target: string, opts: { json?: boolean; all?: boolean }) => {
      const summaries = await inspectPath(target);
      const pipeline = fs.existsSync(path.join(target, 'model_index.json'))
        ? pipelineSummary(target, summaries)
        : undefined;
      if (opts.json === true)
        process.stdout.write(
          JSON.stringify(pipeline !== undefined ? { pipeline, checkpoints: summaries } : summaries) + '\n',
        );
      else
        process.stdout.write(
          [
            ...(pipeline !== undefined ? [renderPipeline(pipeline)] : []),
            ...summaries.map((s) => render(s, opts.all === true, 200)),
          ].join('\n\n') + '\n',
        );
    });
}
