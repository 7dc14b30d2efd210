import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  AtomicOutput,
  OutputExistsError,
  pendingCleanups,
  withAtomicOutput,
  writeFileAtomic,
} from '../../src/io/atomic.js';
import { runScript, src, waitFor } from './childProcess.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-test-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fresh empty directory per test. */
function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d);
  return d;
}

describe('writeFileAtomic', () => {
  it('writes, refuses to overwrite without force, overwrites with force, leaves no temp files', async () => {
    const d = dir('basic');
    const f = path.join(d, 'out.txt');
    await writeFileAtomic(f, 'one');
    const err = await writeFileAtomic(f, 'two').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputExistsError);
    expect(err).toMatchObject({ code: 'EXISTS', message: `${f}: already exists (use --force to overwrite)` });
    expect(fs.readFileSync(f, 'utf8')).toBe('one');
    await writeFileAtomic(f, 'three', { force: true });
    expect(fs.readFileSync(f, 'utf8')).toBe('three');
    expect(fs.readdirSync(d)).toEqual(['out.txt']);
    expect(pendingCleanups()).toBe(0);
  });

  it('names a missing directory', async () => {
    const f = path.join(tmp, 'no-such-dir', 'x');
    await expect(writeFileAtomic(f, 'x')).rejects.toMatchObject({
      code: 'IO',
      message: `${f}: directory ${path.dirname(f)} does not exist`,
    });
  });
});

describe('AtomicOutput', () => {
  it('removes the temp file when the writer throws', async () => {
    const d = dir('throws');
    const f = path.join(d, 'out.bin');
    let temp = '';
    await expect(
      withAtomicOutput(f, {}, async (t) => {
        temp = t;
        fs.writeFileSync(t, 'partial');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(path.dirname(temp)).toBe(d);
    expect(fs.readdirSync(d)).toEqual([]);
    expect(pendingCleanups()).toBe(0);
  });

  it('does not replace a file that appeared while writing (without force)', async () => {
    const d = dir('race');
    const f = path.join(d, 'out.txt');
    const out = AtomicOutput.open(f);
    fs.writeFileSync(out.tempPath, 'mine');
    fs.writeFileSync(f, 'theirs');
    await expect(out.commit()).rejects.toMatchObject({ code: 'EXISTS' });
    expect(fs.readFileSync(f, 'utf8')).toBe('theirs');
    expect(fs.readdirSync(d)).toEqual(['out.txt']);
  });

  it('removes the temp file on SIGINT and still dies of the signal', async () => {
    const d = dir('sigint');
    const code = `
      import fs from 'node:fs';
      import { AtomicOutput } from ${src('io/atomic.ts')};
      const out = AtomicOutput.open(process.argv[2]);
      fs.writeFileSync(out.tempPath, 'partial');
      console.log('ready');
      setInterval(() => {}, 1000);
    `;
    const child = runScript(tmp, 'sigint', code, [path.join(d, 'film.mp4')]);
    await child.ready;
    expect(fs.readdirSync(d)).toHaveLength(1);
    child.proc.kill('SIGINT');
    const r = await child.exited;
    expect(r.signal).toBe('SIGINT');
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('removes the temp file when a CLI handler of its own exits on SIGTERM', async () => {
    const d = dir('sigterm');
    const code = `
      import fs from 'node:fs';
      import { AtomicOutput } from ${src('io/atomic.ts')};
      process.on('SIGTERM', () => { process.stderr.write('interrupted: no output written\\n'); process.exit(143); });
      const out = AtomicOutput.open(process.argv[2]);
      fs.writeFileSync(out.tempPath, 'partial');
      console.log('ready');
      setInterval(() => {}, 1000);
    `;
    const child = runScript(tmp, 'sigterm', code, [path.join(d, 'film.mp4')]);
    await child.ready;
    await waitFor(() => fs.readdirSync(d).length === 1);
    child.proc.kill('SIGTERM');
    const r = await child.exited;
    expect(r.code).toBe(143);
    expect(r.stderr).toContain('interrupted: no output written');
    expect(fs.readdirSync(d)).toEqual([]);
  });
});
