/**
 * The threads shim writes the Emscripten scripts that pool workers load while other workers may be
 * reading them: whole (temp file + rename) and not again when unchanged. A plain rewrite truncated
 * the file first, and a worker reading it then ran an empty script and exited before loading — the rare
 * failed pool start of test/backend/wasmFallback.test.ts's stall case.
 */
import { expect, it } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeScript } from '../../src/backend/wasmThreads.js';

it('replaces a script whole, leaves no temp file, and does not touch an unchanged one', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-scripts-'));
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
