/**
 * The threaded wasm build starts a pool of 8 worker threads; once in CI that start never finished.
 * selectBackend then falls back to the single-threaded build after `initTimeoutMs` instead of
 * hanging. A 1 ms limit forces the fallback here (the pending threaded start is dropped by tfjs).
 */
import { afterAll, expect, it, jest } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';

afterAll(() => shutdownBackends());

it('falls back to one wasm thread when the threaded build does not start in time, and computes', async () => {
  const warn = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const info = await selectBackend('wasm', { threads: 2, initTimeoutMs: 1 });
    expect(info.threads).toBe(1);
    expect(tf.getBackend()).toBe('wasm');
    const messages = warn.mock.calls.map((c) => String(c[0])).join('');
    expect(messages).toMatch(/threaded build did not start within 0\.001 s; falling back to 1 thread/);
  } finally {
    warn.mockRestore();
  }
  const y = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]));
  expect(Array.from(await y.data())).toEqual([19, 22, 43, 50]);
  // after a while, the dropped threaded start has not replaced the running backend
  await new Promise((r) => setTimeout(r, 3000));
  expect(tf.backend()).toBe(tf.engine().registry['wasm']);
  expect(Array.from(await tf.matMul(y, tf.eye(2)).data())).toEqual([19, 22, 43, 50]);
});
