/**
 * The PyTorch side-by-side plumbing (src/bench/reference.ts) with a stand-in "python": the arguments it
 * is given (threads, schedule, quick), the rows made from its JSON line, the ratio lines, and skipped
 * rows (with the reason) when the interpreter or torch is missing. The real script needs torch, which
 * CI does not have; benchmarks/RESULTS.md has a real run.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseScriptLine, REFERENCE_SCRIPT, referenceStepRows, sideBySide } from '../../src/bench/reference.js';
import type { BenchRow } from '../../src/bench/suite.js';

/** An executable that echoes its arguments back inside a result line (dense: 200 ms, blockwise: 100 ms). */
function fakePython(dir: string, body?: string): string {
  const file = path.join(dir, 'python');
  fs.writeFileSync(
    file,
    `#!${process.execPath}\n` +
      (body ??
        `const a = process.argv.slice(3); const get = (n) => a[a.indexOf(n) + 1];
console.log('warming up');
console.log(JSON.stringify({ component: 'step', config: 'small: cfg ' + (a.includes('--quick') ? 'quick' : 'full'), backend: 'torch 9.9 ' + get('--device'),
  attention: get('--attention'), threads: Number(get('--threads')), msPerCall: get('--attention') === 'dense' ? 200 : 100, tokensPerS: 5 }));`),
  );
  fs.chmodSync(file, 0o755);
  return file;
}

const tsRow = (config: string, ms: number): BenchRow => ({
  component: 'step',
  config,
  backend: 'wasm',
  device: 'x',
  msPerCall: ms,
  tokensPerS: 1,
  gflops: 1,
  flops: 1e9,
  flopFormula: 'f',
  peakMiB: 1,
  reps: 1,
  skipped: null,
  machine: 'm',
  date: 'd',
});

describe('PyTorch reference rows', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-ref-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const script = path.join(dir, 'step.py');
  fs.writeFileSync(script, '# stands in for pytorch_step.py\n');

  it('runs the script once per schedule with the given threads and makes rows of its JSON line', async () => {
    const rows = await referenceStepRows({
      python: fakePython(dir),
      script,
      threads: 3,
      quick: true,
      reps: 2,
      flops: 4e9,
      flopFormula: 'F',
      expectConfig: 'small: cfg quick',
    });
    expect(rows.map((r) => [r.backend, r.config, r.device, r.msPerCall, r.gflops, r.skipped])).toEqual([
      ['torch 9.9 cpu (block-wise, as the reference)', 'small: cfg quick', 'cpu, 3 threads', 100, 40, null],
      ['torch 9.9 cpu (naive dense mask)', 'small: cfg quick', 'cpu, 3 threads', 200, 20, null],
    ]);
    expect(rows[0]!.flopFormula).toContain('F');
  });

  it('refuses a result for another geometry than the TypeScript row (no ratio of different work)', async () => {
    const rows = await referenceStepRows({
      python: fakePython(dir),
      script,
      threads: 1,
      quick: false,
      reps: 1,
      expectConfig: 'small: cfg quick',
    });
    expect(rows[0]!.skipped).toContain(
      'the script measured "small: cfg full", not the TypeScript row\'s "small: cfg quick"',
    );
    expect(rows.every((r) => r.msPerCall === null)).toBe(true);
  });

  it('kills a run that outlives its timeout, and skips when the script is missing', async () => {
    const slow = fakePython(dir, 'setTimeout(() => {}, 60_000);');
    const t0 = Date.now();
    const rows = await referenceStepRows({ python: slow, script, threads: 1, quick: true, reps: 1, timeoutMs: 300 });
    expect(rows[0]!.skipped).toContain('timed out after 0.3 s');
    expect(Date.now() - t0).toBeLessThan(10_000);
    const gone = await referenceStepRows({
      python: fakePython(dir),
      script: path.join(dir, 'missing.py'),
      threads: 1,
      quick: true,
      reps: 1,
    });
    expect(gone[0]!.skipped).toContain('missing.py not found');
  });

  it('prints wasm / torch for rows of the same config only', () => {
    const torch = [
      { ...tsRow('small: a', 200), backend: 'torch 9.9 cpu (naive dense mask)', device: 'cpu, 2 threads' },
      { ...tsRow('small: b', 100), backend: 'torch 9.9 cpu (block-wise, as the reference)' },
    ];
    const lines = sideBySide([tsRow('small: a', 300), tsRow('shipped', 10), ...torch]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      'wasm / torch 9.9 cpu (naive dense mask): 1.50× the time (300 vs 200 ms; x vs torch cpu, 2 threads; small: a)',
    );
  });

  it('gives skipped rows with the reason when the interpreter is missing or torch does not import', async () => {
    const missing = await referenceStepRows({
      python: path.join(dir, 'no-such-python'),
      script,
      threads: 1,
      quick: true,
      reps: 1,
    });
    expect(missing.map((r) => r.skipped)).toEqual([
      expect.stringContaining('could not start'),
      expect.stringContaining('could not start'),
    ]);
    expect(missing.every((r) => r.msPerCall === null)).toBe(true);
    const noTorch = fakePython(
      dir,
      `process.stderr.write("Traceback...\\nModuleNotFoundError: No module named 'torch'\\n"); process.exit(1);`,
    );
    const rows = await referenceStepRows({ python: noTorch, script, threads: 1, quick: true, reps: 1 });
    expect(rows[0]!.skipped).toContain("exited with 1: ModuleNotFoundError: No module named 'torch'");
  });

  it('finds the shipped script next to the module, whatever the working directory', () => {
    expect(fs.existsSync(REFERENCE_SCRIPT)).toBe(true);
    expect(path.isAbsolute(REFERENCE_SCRIPT)).toBe(true);
  });

  it('reads the last result line and refuses output without one', () => {
    expect(parseScriptLine('noise\n{"x":1}\n{"config":"c","msPerCall":5,"backend":"b"}\n').msPerCall).toBe(5);
    expect(() => parseScriptLine('Traceback\n{"x": 1}\n')).toThrow(/no result line/);
  });
});
