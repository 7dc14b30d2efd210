/**
 * `mask2dit inspect <file.safetensors | index.json | folder>`: prints what
 * `inspectPath` (src/io/checkpointSummary.ts) finds, as a table or `--json`.
 */
import type { Command } from 'commander';
import { inspectPath, type CheckpointSummary } from '../../io/checkpointSummary.js';

const fmtCount = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n));

function render(s: CheckpointSummary, all: boolean, limit: number): string {
  const lines: string[] = [];
  lines.push(`${s.path}`);
  if (s.config !== undefined) {
    const cls = s.config['_class_name'];
    lines.push(`  config: ${typeof cls === 'string' ? cls : 'config.json'} ${JSON.stringify(Object.fromEntries(Object.entries(s.config).filter(([k]) => !k.startsWith('_'))))}`);
  }
  if (Object.keys(s.metadata).length > 0) lines.push(`  metadata: ${JSON.stringify(s.metadata)}`);
  const dtypes = [...new Set(s.tensors.map((t) => t.dtype))].join(', ');
  lines.push(`  tensors: ${s.tensors.length}, parameters: ${s.totalParams.toLocaleString('en-US')} (${fmtCount(s.totalParams)}), dtypes: ${dtypes || '-'}`);
  lines.push('  parameters per component / block:');
  for (const [g, n] of Object.entries(s.groups)) lines.push(`    ${g.padEnd(36)} ${n.toLocaleString('en-US').padStart(16)}`);
  const shown = all ? s.tensors : s.tensors.slice(0, limit);
  const w = Math.min(72, Math.max(4, ...shown.map((t) => t.name.length)));
  lines.push(`  ${'name'.padEnd(w)}  dtype  ${'shape'.padEnd(20)} params`);
  for (const t of shown) lines.push(`  ${t.name.padEnd(w)}  ${t.dtype.padEnd(5)}  ${JSON.stringify(t.shape).padEnd(20)} ${t.params.toLocaleString('en-US')}`);
  if (shown.length < s.tensors.length) lines.push(`  … ${s.tensors.length - shown.length} more (use --all)`);
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('list the tensors of a safetensors file, sharded index or (diffusers) model folder: names, dtypes, shapes, parameter counts')
    .argument('<path>', 'a .safetensors file, a *.safetensors.index.json, or a folder')
    .option('--json', 'print one JSON document on stdout')
    .option('--all', 'list every tensor (default: the first 200 per checkpoint)')
    .action(async (target: string, opts: { json?: boolean; all?: boolean }) => {
      const summaries = await inspectPath(target);
      if (opts.json === true) process.stdout.write(JSON.stringify(summaries) + '\n');
      else process.stdout.write(summaries.map((s) => render(s, opts.all === true, 200)).join('\n\n') + '\n');
    });
}
