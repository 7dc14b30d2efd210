/**
 * The PyTorch side of the side-by-side step row: runs benchmarks/reference/pytorch_step.py (the model
 * of the `step small` row: same layers, widths, tokens, RoPE and dual mask; random weights) once per
 * attention schedule and turns its JSON line into a BenchRow.
 *
 *   blockwise  the Mask²DiT reference processor's schedule (per scene, attention over gathered keys),
 *              which is also ours (src/layers/maskedAttention.ts): the fair comparison
 *   dense      a naive dense [L, L] boolean mask: what materialising the mask costs (not the reference)
 *
 * Optional by design: the project never depends on Python. A missing interpreter, torch or script gives
 * a skipped row saying so, not an error.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machine } from './measure.js';
import type { BenchRow } from './suite.js';

/** The script, two levels above this module (src/bench/ or dist/bench/); shipped in the package. */
export const REFERENCE_SCRIPT = fileURLToPath(new URL('../../benchmarks/reference/pytorch_step.py', import.meta.url));
export const REFERENCE_ATTENTION = ['blockwise', 'dense'] as const;
const LABEL: Record<(typeof REFERENCE_ATTENTION)[number], string> = {
  blockwise: 'block-wise, as the reference',
  dense: 'naive dense mask',
};
/** Bytes of a child's stdout / stderr kept (the result line is short). */
const OUTPUT_CAP = 64 * 1024;

/** `--reference`, `--python`, `--reference-device` flags as the suite's option (undefined without --reference). */
export function referenceFromFlags(f: {
  reference?: boolean;
  python?: string | undefined;
  referenceDevice?: string | undefined;
}): { reference?: { python?: string; device?: string } } {
  if (f.reference !== true) return {};
  return {
    reference: {
      ...(f.python !== undefined && { python: f.python }),
      ...(f.referenceDevice !== undefined && { device: f.referenceDevice }),
    },
  };
}

export interface ReferenceOptions {
  /** Python interpreter with torch (default `MASK2DIT_PYTHON`, else `python3`). */
  python?: string;
  /** torch threads: the wasm row's thread count, so both sides use the same cores. */
  threads: number;
  quick: boolean;
  reps: number;
  /** torch device (default cpu; `cuda` next to a webgpu row). */
  device?: string;
  /** The script to run (tests pass a fake). */
  script?: string;
  /** Per run (default 5 min quick, 30 min full: the dense full-size step takes 20–30 s a call on 2 cores). */
  timeoutMs?: number;
  /** The `step small` row's config: a script result for another geometry is refused (so ratios never pair different work). */
  expectConfig?: string;
  /** The `step small` row's FLOPs, so GFLOP/s count the same useful work on both sides. */
  flops?: number | null;
  flopFormula?: string;
}

interface ScriptLine {
  config: string;
  backend: string;
  attention: string;
  threads: number;
  msPerCall: number;
  tokensPerS: number;
}

/**
 * Run a command in its own process group; resolves with stdout, or rejects with the reason (exit code +
 * stderr tail, spawn error, timeout). On timeout the whole group is killed (a wrapper's children too).
 */
function runScript(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-OUTPUT_CAP)));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-OUTPUT_CAP)));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      child.stdout.destroy();
      child.stderr.destroy();
      reject(new Error(`timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const lastErr = err.trim().split('\n').pop() ?? '';
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited with ${code}${lastErr !== '' ? `: ${lastErr}` : ''}`));
    });
  });
}

/** The last line of stdout that parses as the script's JSON row. */
export function parseScriptLine(stdout: string): ScriptLine {
  const lines = stdout.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      const j = JSON.parse(l) as Partial<ScriptLine>;
      if (typeof j.config === 'string' && typeof j.msPerCall === 'number' && typeof j.backend === 'string')
        return j as ScriptLine;
    } catch {
      // not JSON: keep looking
    }
  }
  throw new Error(`no result line in its output (${JSON.stringify(stdout.slice(-200))})`);
}

/** One row per attention schedule; skipped rows (with the reason) when Python, torch or the script is missing. */
export async function referenceStepRows(o: ReferenceOptions): Promise<BenchRow[]> {
  const python = o.python ?? process.env['MASK2DIT_PYTHON'] ?? 'python3';
  const script = o.script ?? REFERENCE_SCRIPT;
  const device = o.device ?? 'cpu';
  const date = new Date().toISOString().slice(0, 10);
  const rows: BenchRow[] = [];
  for (const attention of REFERENCE_ATTENTION) {
    const args = [
      script,
      '--threads',
      String(o.threads),
      '--device',
      device,
      '--reps',
      String(o.reps),
      '--attention',
      attention,
      ...(o.quick ? ['--quick'] : []),
    ];
    const base = {
      component: 'step' as const,
      flops: o.flops ?? null,
      flopFormula: `${o.flopFormula ?? '-'} (the wasm row's count: same model, same useful work)`,
      reps: o.reps,
      machine: machine(),
      date,
    };
    try {
      if (!fs.existsSync(script)) throw new Error(`${script} not found`);
      const j = parseScriptLine(await runScript(python, args, o.timeoutMs ?? (o.quick ? 5 : 30) * 60_000));
      if (o.expectConfig !== undefined && j.config !== o.expectConfig)
        throw new Error(`the script measured "${j.config}", not the TypeScript row's "${o.expectConfig}"`);
      rows.push({
        ...base,
        config: j.config,
        backend: `${j.backend} (${LABEL[attention]})`,
        device: `${device}, ${j.threads} thread${j.threads > 1 ? 's' : ''}`,
        msPerCall: j.msPerCall,
        tokensPerS: j.tokensPerS,
        gflops: o.flops !== undefined && o.flops !== null ? Number((o.flops / j.msPerCall / 1e6).toPrecision(3)) : null,
        peakMiB: null,
        skipped: null,
      });
    } catch (e) {
      rows.push({
        ...base,
        config: `PyTorch reference (${LABEL[attention]})`,
        backend: `torch (${LABEL[attention]})`,
        device,
        msPerCall: null,
        tokensPerS: null,
        gflops: null,
        peakMiB: null,
        reps: 0,
        skipped: `skipped: ${(e as Error).message}`,
      });
    }
  }
  return rows;
}

/** `ours ms / torch ms` for each TypeScript step row and reference row of the same config, with both devices. */
export function sideBySide(rows: BenchRow[]): string[] {
  const torch = rows.filter((r) => r.backend.startsWith('torch') && r.msPerCall !== null);
  const ours = rows.filter((r) => r.component === 'step' && !r.backend.startsWith('torch') && r.msPerCall !== null);
  const out: string[] = [];
  for (const a of ours) {
    for (const t of torch) {
      if (t.config === a.config)
        out.push(
          `  ${a.backend} / ${t.backend}: ${(a.msPerCall! / t.msPerCall!).toFixed(2)}× the time (${a.msPerCall} vs ${t.msPerCall} ms; ${a.device} vs torch ${t.device}; ${a.config})`,
        );
    }
  }
  return out;
}
