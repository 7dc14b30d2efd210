/** The `mask2dit` binary as a user runs it: help, inspect, typed errors → exit 2, exits by itself. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { fixturePath } from '../helpers/fixtures.js';
import { VERSION } from '../../src/version.js';

describe('mask2dit CLI', () => {
  test('--help lists the commands; --version prints the package version', () => {
    const help = runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/inspect/);
    expect(help.stdout).toMatch(/--backend/);
    const v = runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(VERSION);
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });

  test('inspect a model folder prints names, dtypes, shapes and parameter counts', () => {
    const r = runCli(['inspect', fixturePath('mask2dit_multiscene')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/transformer_blocks\.0\.attn1\.to_q\.weight\s+F32\s+\[32,32\]\s+1,024/);
    expect(r.stdout).toMatch(/BF16/); // the bf16 twin is found too
    expect(r.stdout).toMatch(/parameters per component/);
  });

  test('inspect --json gives the same counts as the file', () => {
    const r = runCli(['inspect', '--json', fixturePath('transformer_2b_single', 'weights.safetensors')]);
    expect(r.code).toBe(0);
    const [s] = JSON.parse(r.stdout) as { totalParams: number; tensors: { name: string; params: number }[] }[];
    expect(s!.totalParams).toBe(s!.tensors.reduce((n, t) => n + t.params, 0));
    expect(s!.totalParams).toBeGreaterThan(1000);
  });

  test('a corrupt file is refused with the typed error, one line, exit code 2', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-cli-'));
    try {
      const bad = path.join(dir, 'broken.safetensors');
      fs.writeFileSync(
        bad,
        fs.readFileSync(fixturePath('transformer_2b_single', 'weights.safetensors')).subarray(0, 100),
      );
      const r = runCli(['inspect', bad]);
      expect(r.signal).toBeNull();
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/broken\.safetensors/);
      const missing = runCli(['inspect', path.join(dir, 'nope')]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/nope/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('unknown command or option exits non-zero', () => {
    expect(runCli(['frobnicate']).code).toBe(2);
    expect(runCli(['inspect', '--bogus', 'x']).code).toBe(2);
  });

  test('backend smoke on cpu and on threaded wasm exits by itself (worker threads shut down)', () => {
    for (const [backend, threads] of [
      ['cpu', '1'],
      ['wasm', '2'],
    ] as const) {
      const r = runCli(['--backend', backend, '--threads', threads, 'backend', '--json'], { timeoutMs: 60_000 });
      expect(r.signal).toBeNull();
      expect(r.code).toBe(0);
      const info = JSON.parse(r.stdout) as { name: string; matmulOk: boolean };
      expect(info.name).toBe(backend);
      expect(info.matmulOk).toBe(true);
    }
  });

  test('an unavailable backend is a clear error, not a crash', () => {
    const r = runCli(['--backend', 'tensorflow', 'backend']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/tfjs-node/);
    const u = runCli(['--backend', 'nonsense', 'backend']);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/wasm/);
  });
});

describe('mask2dit forward transformer', () => {
  test('runs a fixture checkpoint on its inputs, writes sample + captures under the fixture names, compares', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-fwd-'));
    try {
      const c = 'mask2dit_conditional';
      const out = path.join(dir, 'out.safetensors');
      const r = runCli([
        '--backend',
        'cpu',
        'forward',
        'transformer',
        '--model',
        fixturePath(c),
        '--weights',
        fixturePath(c, 'weights.safetensors'),
        '--inputs',
        fixturePath(c, 'io.safetensors'),
        '--out',
        out,
        '--capture',
        'block.1.*,block.0.attn1.probs',
        '--heads',
        '1',
        '--scene',
        '0',
        '--compare',
        fixturePath(c, 'io.safetensors'),
        '--json',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as {
        compare: { name: string; maxAbs: number }[];
        tensors: { name: string; shape: number[] }[];
      };
      const names = report.tensors.map((t) => t.name);
      expect(names).toContain('sample');
      expect(names).toContain('block.1.hidden_states');
      expect(report.tensors.find((t) => t.name === 'block.0.attn1.probs')!.shape).toEqual([2, 1, 6 + 48, 162]);
      const cmp = new Map(report.compare.map((x) => [x.name, x.maxAbs]));
      expect(cmp.get('sample')).toBeLessThan(1e-4);
      expect(cmp.get('block.1.encoder_hidden_states')).toBeLessThan(1e-4);
      const { openSafetensors } = await import('../../src/io/safetensors.js');
      const f = await openSafetensors(out);
      expect(f.names()).toEqual(expect.arrayContaining(['sample', 'block.1.hidden_states']));
      await f.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing input tensor names the file and the tensor; nothing is written', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-fwd-'));
    try {
      const c = 'transformer_2b_single';
      const out = path.join(dir, 'out.safetensors');
      const r = runCli([
        '--backend',
        'cpu',
        'forward',
        'transformer',
        '--model',
        fixturePath(c),
        '--weights',
        fixturePath(c, 'weights.safetensors'),
        '--inputs',
        fixturePath(c, 'weights.safetensors'),
        '--out',
        out,
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/weights\.safetensors: missing tensor "hidden_states"/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
