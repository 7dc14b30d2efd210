/** Shared benchmark plumbing for the scripts in benchmarks/: flags, table + JSON lines (timing lives in src/bench/measure.ts). */
export { machine, peakTensorBytes, timeIt } from '../src/bench/measure.js';

export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

export const flag = (name: string): boolean => process.argv.includes(name);

export const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

export type Row = Record<string, string | number | boolean | null>;

/** Print rows as an aligned table (columns in the order given), then one JSON line per row. */
export function report(title: string, rows: Row[], columns: string[]): void {
  const cell = (v: Row[string] | undefined) =>
    v === undefined || v === null
      ? '-'
      : typeof v === 'number'
        ? Number.isInteger(v)
          ? String(v)
          : v.toPrecision(4)
        : String(v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${title}\n${line(columns)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(line(columns.map((c) => cell(r[c]))) + '\n');
  process.stdout.write('\n');
  for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
}
