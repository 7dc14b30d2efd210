/**
 * The threaded wasm build starts a pool of 8 worker threads and waits until all of them have loaded;
 * twice in CI that start never finished. Each try is watched: a pool worker that dies before loading
 * ends the try at once, a try past `initTimeoutMs` is given up (its workers terminated), the next try
 * starts a fresh pool, and after `initAttempts` tries selectBackend falls back to one thread.
 * The failures are made here by replacing `worker_threads.Worker` underneath the shim's watch.
 */
import { afterEach, expect, it, jest } from '@jest/globals';
import workerThreads from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../../src/errors.js';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';

afterEach(() => shutdownBackends());

/** Run `fn` with stderr captured; returns its result and what was written. */
async function withStderr<T>(fn: () => Promise<T>): Promise<{ result: T; stderr: string }> {
  const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const result = await fn();
    return { result, stderr: write.mock.calls.map((c) => String(c[0])).join('') };
  } finally {
    write.mockRestore();
  }
}

/**
 * Make the first pool (the first 8 workers created) fail: `die` terminates its first worker at once,
 * `stall` drops the `load` message to all 8 so none ever loads. Returns the first pool's workers and
 * whether each has exited, and a function that puts the real Worker back.
 */
function sabotageFirstPool(how: 'die' | 'stall'): { exited: boolean[]; restore: () => void } {
  const Real = workerThreads.Worker;
  const exited: boolean[] = [];
  let created = 0;
  class Sabotaged extends Real {
    constructor(...args: ConstructorParameters<typeof Real>) {
      super(...args);
      const n = created++;
      if (n >= 8) return;
      exited[n] = false;
      this.on('exit', () => (exited[n] = true));
      if (how === 'die' && n === 0) void this.terminate();
      if (how === 'stall') {
        const post = this.postMessage.bind(this);
        this.postMessage = (value: unknown, transfer?: readonly workerThreads.Transferable[]) => {
          if ((value as { cmd?: unknown } | null)?.cmd !== 'load') post(value, transfer);
        };
      }
    }
  }
  workerThreads.Worker = Sabotaged;
  return { exited, restore: () => (workerThreads.Worker = Real) };
}

async function expectComputes(): Promise<void> {
  const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])));
  expect(Array.from(await y.data())).toEqual([19, 22, 43, 50]);
  y.dispose();
}

it('a pool worker that dies before loading ends the try at once; the next try runs 2 threads', async () => {
  const sabotage = sabotageFirstPool('die');
  const t0 = Date.now();
  try {
    const { result: info, stderr } = await withStderr(() => selectBackend('wasm', { threads: 2 }));
    expect(info.threads).toBe(2);
    expect(stderr).toMatch(
      /threaded start 1\/3 pthread worker 1 exited \(code \d+\) before it loaded; its pool: 8 workers: /,
    );
    expect(stderr).not.toMatch(/threaded start 2\/3|falling back/);
  } finally {
    sabotage.restore();
  }
  expect(Date.now() - t0).toBeLessThan(15_000); // not the 20 s timeout
  expect(tf.getBackend()).toBe('wasm');
  await expectComputes();
});

it('a try whose pool never loads is given up after initTimeoutMs and its workers are terminated', async () => {
  const sabotage = sabotageFirstPool('stall');
  try {
    const { result: info, stderr } = await withStderr(() => selectBackend('wasm', { threads: 2, initTimeoutMs: 3000 }));
    expect(info.threads).toBe(2);
    expect(stderr).toMatch(
      /threaded start 1\/3 did not start within 3 s; its pool: 8 workers: \d online, 0 loaded, 0 exited/,
    );
  } finally {
    sabotage.restore();
  }
  await new Promise((r) => setTimeout(r, 500));
  expect(sabotage.exited).toEqual(new Array(8).fill(true)); // unloaded workers would keep Node alive
  await expectComputes();
});

it('falls back to one wasm thread after initAttempts tries, and the dropped starts never replace it', async () => {
  const { result: info, stderr } = await withStderr(() =>
    selectBackend('wasm', { threads: 2, initTimeoutMs: 1, initAttempts: 2 }),
  );
  expect(info.threads).toBe(1);
  expect(tf.getBackend()).toBe('wasm');
  expect(stderr).toMatch(/threaded start 1\/2 did not start within 0\.001 s/);
  expect(stderr).toMatch(/threaded start 2\/2 did not start within 0\.001 s/);
  expect(stderr).toMatch(/the threaded build did not start in 2 tries; falling back to 1 thread/);
  await expectComputes();
  // after a while, the dropped threaded starts have not replaced the running backend
  await new Promise((r) => setTimeout(r, 3000));
  expect(tf.backend()).toBe(tf.engine().registry['wasm']);
  await expectComputes();
});

it('refuses a bad initTimeoutMs / initAttempts by name', async () => {
  await expect(selectBackend('wasm', { threads: 2, initAttempts: 0 })).rejects.toThrow(BackendError);
  await expect(selectBackend('wasm', { threads: 2, initTimeoutMs: 1.5 })).rejects.toThrow(
    /initTimeoutMs must be a positive integer, got 1.5/,
  );
});
