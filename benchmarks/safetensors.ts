/**
 * safetensors read benchmark: lazy tensor-by-tensor reading (SafetensorsFile) vs fs.readFileSync of
 * the whole file, throughput and peak RSS.
 *
 *   node --expose-gc --import tsx benchmarks/safetensors.ts [--size-mib 1024] [--tensor-mib 16]
 *
 * Writes a file of F32 tensors in os.tmpdir() with our writer, then runs each mode in its own child
 * process (same Node flags, `--mode reader|readfile --file F`) so the memory peaks do not mix. The
 * file was just written, so both modes read from the page cache: this measures our code's overhead,
 * not the disk. Prints a table and the ratios, then one JSON line per mode on stdout. Deletes the file.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';

interface Result {
  bench: 'safetensors';
  mode: 'reader' | 'readfile';
  sizeBytes: number;
  mbPerS: number;
  peakRssBytes: number;
  baselineRssBytes: number;
  seconds: number;
  tensors: number;
  node: string;
  machine: string;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const machine = () => `${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}`;

/** RSS sampler: every `ms` on a timer, plus whenever `sample()` is called. */
function rssSampler(ms = 2) {
  let peak = process.memoryUsage.rss();
  const sample = () => {
    const r = process.memoryUsage.rss();
    if (r > peak) peak = r;
  };
  const timer = setInterval(sample, ms);
  return {
    sample,
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

function settle(): number {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage.rss();
}

async function child(mode: string, file: string): Promise<void> {
  const baseline = settle();
  const sampler = rssSampler();
  const size = fs.statSync(file).size;
  let tensors = 0;
  const t0 = process.hrtime.bigint();
  if (mode === 'reader') {
    const src = await SafetensorsFile.open(file);
    let checksum = 0;
    for (const name of src.names()) {
      const data = await src.read(name);
      checksum += data.length; // keep the read observable; the array is dropped right after
      tensors++;
      sampler.sample();
    }
    await src.close();
    if (checksum === 0 && size > 1024) throw new Error('nothing read');
  } else if (mode === 'readfile') {
    const buf = fs.readFileSync(file);
    sampler.sample(); // the whole file is alive here (the timer cannot fire during a sync read)
    tensors = 1;
    if (buf.length !== size) throw new Error('short read');
  } else {
    throw new Error(`unknown --mode ${mode}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const peak = sampler.stop();
  const r: Result = {
    bench: 'safetensors',
    mode: mode as Result['mode'],
    sizeBytes: size,
    mbPerS: size / 1e6 / seconds,
    peakRssBytes: peak,
    baselineRssBytes: baseline,
    seconds,
    tensors,
    node: process.version,
    machine: machine(),
  };
  process.stdout.write(JSON.stringify(r) + '\n');
}

async function main(): Promise<void> {
  const mode = arg('--mode');
  if (mode !== undefined) return child(mode, arg('--file') ?? '');

  const sizeMiB = Number(arg('--size-mib') ?? 1024);
  const tensorMiB = Math.min(Number(arg('--tensor-mib') ?? 16), sizeMiB);
  if (!(sizeMiB > 0) || !(tensorMiB > 0)) throw new Error('--size-mib and --tensor-mib must be positive');
  const count = Math.max(1, Math.round(sizeMiB / tensorMiB));
  const elems = (tensorMiB * 1024 * 1024) / 4;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-bench-'));
  const file = path.join(dir, 'bench.safetensors');
  try {
    // a few distinct buffers shared between tensors: the writer streams tensor by tensor, so the
    // parent never holds the whole file
    const pool = Array.from({ length: Math.min(4, count) }, (_, k) => {
      const a = new Float32Array(elems);
      for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.001 + k);
      return a;
    });
    const tensors: Record<string, TensorToWrite> = {};
    for (let i = 0; i < count; i++)
      tensors[`blocks.${String(i).padStart(3, '0')}.weight`] = {
        dtype: 'F32',
        shape: [elems / 1024, 1024],
        data: pool[i % pool.length]!,
      };
    const tw = Date.now();
    await writeSafetensors(file, tensors, { format: 'pt' });
    const size = fs.statSync(file).size;
    process.stderr.write(
      `wrote ${count} × ${tensorMiB} MiB F32 tensors (${(size / 2 ** 20).toFixed(1)} MiB) in ${Date.now() - tw} ms: ${file}\n`,
    );

    const results: Result[] = [];
    for (const m of ['reader', 'readfile'] as const) {
      const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--mode', m, '--file', file], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      if (r.status !== 0) throw new Error(`child --mode ${m} failed (${r.status ?? r.signal}): ${r.stderr}`);
      const line = r.stdout.trim().split('\n').pop() ?? '';
      results.push(JSON.parse(line) as Result);
    }

    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    const rows = results.map((r) => [
      r.mode,
      r.mbPerS.toFixed(0),
      mib(r.peakRssBytes),
      mib(r.peakRssBytes - r.baselineRssBytes),
    ]);
    const head = ['mode', 'MB/s', 'peak RSS MiB', 'RSS over baseline MiB'];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
    const lines = [
      `safetensors read, ${mib(results[0]!.sizeBytes)} MiB file, ${count} tensors, ${process.version}, ${machine()}`,
      fmt(head),
      ...rows.map(fmt),
    ];
    const [reader, readfile] = results as [Result, Result];
    lines.push(
      `reader / readFileSync: throughput ×${(reader.mbPerS / readfile.mbPerS).toFixed(2)}, ` +
        `RSS over baseline ×${((reader.peakRssBytes - reader.baselineRssBytes) / Math.max(1, readfile.peakRssBytes - readfile.baselineRssBytes)).toFixed(3)}`,
    );
    process.stderr.write(lines.join('\n') + '\n');
    for (const r of results) {
      process.stdout.write(
        JSON.stringify({
          bench: r.bench,
          mode: r.mode,
          sizeBytes: r.sizeBytes,
          mbPerS: Number(r.mbPerS.toFixed(1)),
          peakRssBytes: r.peakRssBytes,
          node: r.node,
          machine: r.machine,
        }) + '\n',
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
