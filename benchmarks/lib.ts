/** Shared benchmark plumbing: flags, machine description, timing, peak tensor memory, table + JSON lines. */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';

export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export const flag = (name: string): boolean => process.argv.includes(name);

export const machine = (): string => `${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;

/** Median wall time (ms) of `reps` runs of `fn` after `warmup` runs; `fn` must finish its GPU/worker work (await data). */
export async function timeIt(fn: () => Promise<void>, reps: number, warmup = 1): Promise<{ medianMs: number; allMs: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const all: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    all.push(performance.now() - t0);
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)]!, allMs: all };
}

/** Peak bytes of live tensors while `fn` runs, above what was live before (tf.profile). */
export async function peakTensorBytes(fn: () => Promise<void>): Promise<number> {
  const info = await tf.profile(async () => {
    await fn();
  });
  return info.peakBytes;
}

export const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

export type Row = Record<string, string | number | boolean | null>;

/** Print rows as an aligned table (columns in the order given), then one JSON line per row. */
export function report(title: string, rows: Row[], columns: string[]): void {
  const cell = (v: Row[string] | undefined) => (v === undefined || v === null ? '-' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${title}\n${line(columns)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(line(columns.map((c) => cell(r[c]))) + '\n');
  process.stdout.write('\n');
  for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
}
