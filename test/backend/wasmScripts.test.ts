/**
 * The threads shim writes the Emscripten scripts that pool workers load while other workers may be
 * reading them: whole (temp file + rename) and not again when unchanged. A plain rewrite truncated
 * the file first, and a worker reading it then ran an empty script and exited before loading — the rare
 * failed pool start of test/backend/wasmFallback.test.ts's stall case.
 *
 * The scripts live in one folder per user that every process reuses (`scriptFolder`): a folder per
 * process, removed on 'exit', was left behind by every jest run (jest's `process` copy never emits
 * 'exit') and every killed process.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { scriptFolder, writeScript } from '../../src/backend/wasmThreads.js';

const tmpDirs: string[] = [];
/** A fresh folder under the real tmpdir, removed after the file's tests. */
function freshDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});

it('replaces a script whole, leaves no temp file, and does not touch an unchanged one', () => {
  const dir = freshDir('m2d-scripts-');
  const file = path.join(dir, 'worker.js');
  writeScript(file, 'a'.repeat(1 << 20));
  const first = fs.statSync(file);
  // a reader holding the old file keeps reading all of it while the script is replaced
  const fd = fs.openSync(file, 'r');
  writeScript(file, 'b'.repeat(1 << 20));
  const old = Buffer.alloc(1 << 20);
  expect(fs.readSync(fd, old, 0, old.length, 0)).toBe(1 << 20);
  fs.closeSync(fd);
  expect(old.toString()).toBe('a'.repeat(1 << 20)); // not truncated under the reader
  expect(fs.readFileSync(file, 'utf8')).toBe('b'.repeat(1 << 20));
  const second = fs.statSync(file);
  expect(second.ino).not.toBe(first.ino); // a new file renamed into place
  writeScript(file, 'b'.repeat(1 << 20));
  expect(fs.statSync(file).ino).toBe(second.ino); // unchanged: not written again
  expect(fs.readdirSync(dir)).toEqual(['worker.js']);
});

it('does not rewrite a script another process already left with the same text', () => {
  const dir = freshDir('m2d-scripts-');
  const file = path.join(dir, 'other.js');
  fs.writeFileSync(file, 'same text');
  const before = fs.statSync(file);
  writeScript(file, 'same text');
  expect(fs.statSync(file).ino).toBe(before.ino);
  writeScript(file, 'other text'); // different text: replaced
  expect(fs.readFileSync(file, 'utf8')).toBe('other text');
});

describe('scriptFolder', () => {
  const posix = process.platform !== 'win32';

  it('is one private folder per user, the same on every call, and sweeps stale temp files only', () => {
    const base = freshDir('m2d-scripts-');
    const dir = scriptFolder(base);
    expect(path.dirname(dir)).toBe(base);
    expect(path.basename(dir)).toMatch(/^mask2dit-wasm-mt-/);
    expect(scriptFolder(base)).toBe(dir);
    if (posix) {
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      expect(fs.statSync(dir).uid).toBe(process.getuid!());
    }
    const stale = path.join(dir, 'wasm-main-x.js.1.abc.tmp');
    const fresh = path.join(dir, 'wasm-main-x.js.2.def.tmp');
    fs.writeFileSync(stale, '');
    fs.writeFileSync(fresh, '');
    const hourAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(stale, hourAgo, hourAgo);
    expect(scriptFolder(base)).toBe(dir);
    expect(fs.readdirSync(dir)).toEqual([path.basename(fresh)]); // a write in progress elsewhere is left alone
    expect(fs.readdirSync(base)).toEqual([path.basename(dir)]);
  });

  (posix ? it : it.skip)('refuses a folder others may write or a link, for a private one of its own', () => {
    const base = freshDir('m2d-scripts-');
    const shared = scriptFolder(base);
    fs.chmodSync(shared, 0o777);
    const own = scriptFolder(base);
    expect(own).not.toBe(shared);
    expect(path.basename(own)).toMatch(/^mask2dit-wasm-mt-/);
    expect(fs.statSync(own).mode & 0o777).toBe(0o700);
    fs.rmSync(shared, { recursive: true });
    const elsewhere = freshDir('m2d-scripts-');
    fs.symlinkSync(elsewhere, shared);
    expect(scriptFolder(base)).not.toBe(shared);
  });
});

it('threaded wasm in two processes leaves one folder in TMPDIR, and the second process reuses its scripts', () => {
  const tmp = freshDir('m2d-scripts-');
  const program = path.join(freshDir('m2d-scripts-'), 'start.mjs');
  fs.writeFileSync(
    program,
    // (outside the repository, so both modules by absolute URL: the same tfjs-core as src/ resolves)
    `import * as tf from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core')).href)};
import { selectBackend, shutdownBackends } from ${JSON.stringify(pathToFileURL(path.resolve('src/backend/index.ts')).href)};
const info = await selectBackend('wasm', { threads: 2 });
const y = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]));
console.log(info.threads, Array.from(await y.data()).join(','));
shutdownBackends();
`,
  );
  const run = () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', program], {
      encoding: 'utf8',
      timeout: 90_000,
      env: { ...process.env, TMPDIR: tmp, TMP: tmp, TEMP: tmp, MASK2DIT_THREADS: '2', MASK2DIT_LOG: 'warn' },
    });
    expect({ code: r.status, stdout: r.stdout.trim(), stderr: r.stderr }).toEqual({
      code: 0,
      stdout: '2 19,22,43,50',
      stderr: '',
    });
    const folders = fs.readdirSync(tmp).filter((f) => f.startsWith('mask2dit-')); // (tsx keeps its cache there too)
    expect(folders).toEqual([expect.stringMatching(/^mask2dit-wasm-mt-/)]);
    const dir = path.join(tmp, folders[0]!);
    return new Map(fs.readdirSync(dir).map((f) => [f, fs.statSync(path.join(dir, f)).ino]));
  };
  const first = run();
  expect([...first.keys()].sort()).toEqual([
    expect.stringMatching(/^wasm-main-[0-9a-f]{16}\.js$/),
    expect.stringMatching(/^wasm-worker-[0-9a-f]{16}\.js$/),
  ]);
  expect(run()).toEqual(first); // the same files, not written again
}, 240_000);
