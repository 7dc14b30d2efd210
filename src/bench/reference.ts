/**
 * The PyTorch side of the side-by-side step row: runs benchmarks/reference/pytorch_step.py (same
 * layers, widths, tokens, RoPE and dual mask as the `step small` row, random weights) once per
 * attention schedule and turns its JSON line into a BenchRow.
 *
 *   dense      the reference's way: a dense [L, L] boolean mask (SDPA on torch ≥ 2, masked softmax on 1.13)
 *   blockwise  our schedule (src/layers/maskedAttention.ts) written in torch: the fair comparison of kernels
 *
 * Optional by design: the project never depends on Python. A missing interpreter or torch gives a
 * skipped row saying so, not an error.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { machine } from './measure.js';
import type { BenchRow } from './suite.js';

export const REFERENCE_SCRIPT = path.join('benchmarks', 'reference', 'pytorch_step.py');
export const REFERENCE_ATTENTION = ['dense', 'blockwise'] as const;

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
  /** Per run (default 30 min: the dense full-size step takes ~25 s a call on 2 cores). */
  timeoutMs?: number;
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

/** Run a command; resolves with stdout, or rejects with the reason (exit code + stderr tail, spawn error, timeout). */
function runScript(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
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
      if (typeof j.config === 'string' && typeof j.msPerCall === 'number' && typeof j.backend === 'string') return j as ScriptLine;
    } catch {
      // not JSON: keep looking
    }
  }
  throw new Error(`no result line in its output (${JSON.stringify(stdout.slice(-200))})`);
}

/** One row per attention schedule; skipped rows (with the reason) when Python or torch is missing. */
export async function referenceStepRows(o: ReferenceOptions): Promise<BenchRow[]> {
  const python = o.python ?? process.env['MASK2DIT_PYTHON'] ?? 'python3';
  const device = o.device ?? 'cpu';
  const date = new Date().toISOString().slice(0, 10);
  const rows: BenchRow[] = [];
  for (const attention of REFERENCE_ATTENTION) {
    const args = [o.script ?? REFERENCE_SCRIPT, '--threads', String(o.threads), '--device', device, '--reps', String(o.reps), '--attention', attention, ...(o.quick ? ['--quick'] : [])];
    const base = { component: 'step' as const, flops: o.flops ?? null, flopFormula: `${o.flopFormula ?? '-'} (the wasm row's count: same model, same useful work)`, reps: o.reps, machine: machine(), date };
    try {
      const j = parseScriptLine(await runScript(python, args, o.timeoutMs ?? 30 * 60_000));
      rows.push({
        ...base,
        config: j.config,
        backend: `${j.backend} (${attention} mask)`,
        device: `${device}, ${j.threads} thread${j.threads > 1 ? 's' : ''}`,
        msPerCall: j.msPerCall,
        tokensPerS: j.tokensPerS,
        gflops: o.flops !== undefined && o.flops !== null ? Number((o.flops / j.msPerCall / 1e6).toPrecision(3)) : null,
        peakMiB: null,
        skipped: null,
      });
    } catch (e) {
      rows.push({ ...base, config: `PyTorch reference (${attention} mask)`, backend: `torch (${attention} mask)`, device, msPerCall: null, tokensPerS: null, gflops: null, peakMiB: null, reps: 0, skipped: `skipped: ${(e as Error).message}` });
    }
  }
  return rows;
}

/** `wasm ms / torch ms` for each TypeScript step row and reference row of the same config. */
export function sideBySide(rows: BenchRow[]): string[] {
  const torch = rows.filter((r) => r.backend.startsWith('torch') && r.msPerCall !== null);
  const ours = rows.filter((r) => r.component === 'step' && !r.backend.startsWith('torch') && r.msPerCall !== null);
  const out: string[] = [];
  for (const a of ours) for (const t of torch) if (t.config === a.config) out.push(`  ${a.backend} / ${t.backend}: ${(a.msPerCall! / t.msPerCall!).toFixed(2)}× the time (${a.msPerCall} vs ${t.msPerCall} ms, ${a.config})`);
  return out;
}
