/**
 * The same small graph (matMul, softmax, conv3d, GELU-tanh) on every backend available in this run,
 * compared against the cpu reference; plus backend selection rules and their errors.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../../src/errors.js';
import { resolveBackendName, resolveThreads, selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { availableBackends } from '../helpers/backends.js';
import { expectClose } from '../helpers/close.js';

afterAll(() => shutdownBackends());

/** Deterministic inputs without any backend RNG: a fixed LCG. */
function lcg(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** GELU with the tanh approximation, written through sigmoid: 0.5x(1+tanh(a)) = x·σ(2a). */
function geluTanh(x: tf.Tensor): tf.Tensor {
  const a = tf.mul(tf.add(x, tf.mul(0.044715, tf.pow(x, 3))), 2 * Math.sqrt(2 / Math.PI));
  return tf.mul(x, tf.sigmoid(a));
}

/** The graph: returns each intermediate so a mismatch names the op. */
async function graph(): Promise<Record<string, Float32Array>> {
  const out = tf.tidy(() => {
    const x = tf.tensor2d(lcg(32 * 48, 1), [32, 48]);
    const w = tf.tensor2d(lcg(48 * 40, 2), [48, 40]);
    const mm = tf.matMul(x, w); // [32, 40]
    const sm = tf.softmax(mm); // rows sum to 1
    const vid = tf.tensor5d(lcg(1 * 5 * 6 * 6 * 3, 3), [1, 5, 6, 6, 3]); // NDHWC
    const k = tf.tensor5d(lcg(3 * 3 * 3 * 3 * 4, 4), [3, 3, 3, 3, 4]); // [D, H, W, in, out]
    const conv = tf.conv3d(vid, k, [1, 1, 1], 'same');
    const gelu = geluTanh(tf.mul(mm, 0.25));
    return { mm, sm, conv, gelu };
  });
  const result: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(out)) {
    result[k] = (await t.data()) as Float32Array;
    t.dispose();
  }
  return result;
}

describe('backends agree with cpu on a small graph', () => {
  it('matMul, softmax, conv3d, gelu on every available backend', async () => {
    await selectBackend('cpu');
    const ref = await graph();
    const names = await availableBackends();
    expect(names).toEqual(expect.arrayContaining(['cpu', 'wasm']));
    for (const name of names.filter((n) => n !== 'cpu')) {
      await selectBackend(name);
      expect(tf.getBackend()).toBe(name);
      const got = await graph();
      for (const op of Object.keys(ref)) expectClose(`${name}:${op}`, got[op]!, ref[op]!, 1e-4, 1e-4);
    }
  });

  it('GELU through sigmoid equals the tanh form', async () => {
    await selectBackend('cpu');
    const x = tf.linspace(-8, 8, 401);
    const viaSigmoid = geluTanh(x);
    const viaTanh = tf.tidy(() =>
      tf.mul(
        tf.mul(x, 0.5),
        tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(0.044715, tf.pow(x, 3))), Math.sqrt(2 / Math.PI)))),
      ),
    );
    expectClose('gelu', await viaSigmoid.data(), await viaTanh.data(), 1e-6, 1e-6);
    tf.dispose([x, viaSigmoid, viaTanh]);
  });
});

describe('backend selection', () => {
  it('wasm runs the threaded build with the requested thread count', async () => {
    shutdownBackends(); // the suite's single-threaded wasm (test/setup.ts) keeps its count otherwise
    const info = await selectBackend('wasm', { threads: 2 });
    expect(info.name).toBe('wasm');
    expect(info.threads).toBe(2);
    expect(tfwasm.getThreadsCount()).toBe(2);
  });

  it('resolves flag, then MASK2DIT_BACKEND, then wasm', () => {
    const saved = process.env['MASK2DIT_BACKEND'];
    try {
      delete process.env['MASK2DIT_BACKEND'];
      expect(resolveBackendName()).toBe('wasm');
      process.env['MASK2DIT_BACKEND'] = 'cpu';
      expect(resolveBackendName()).toBe('cpu');
      expect(resolveBackendName('WebGPU')).toBe('webgpu');
      process.env['MASK2DIT_BACKEND'] = 'tpu';
      expect(() => resolveBackendName()).toThrow(/MASK2DIT_BACKEND.*expected one of wasm, cpu, webgpu, tensorflow/);
      expect(() => resolveBackendName('gpu')).toThrow(BackendError);
    } finally {
      if (saved === undefined) delete process.env['MASK2DIT_BACKEND'];
      else process.env['MASK2DIT_BACKEND'] = saved;
    }
  });

  it('validates the thread count', () => {
    const saved = process.env['MASK2DIT_THREADS'];
    try {
      process.env['MASK2DIT_THREADS'] = '3';
      expect(resolveThreads()).toBe(3);
      expect(resolveThreads(1)).toBe(1);
      process.env['MASK2DIT_THREADS'] = 'two';
      expect(() => resolveThreads()).toThrow(/MASK2DIT_THREADS must be an integer/);
      expect(() => resolveThreads(0)).toThrow(BackendError);
    } finally {
      if (saved === undefined) delete process.env['MASK2DIT_THREADS'];
      else process.env['MASK2DIT_THREADS'] = saved;
    }
  });

  it('tensorflow without tfjs-node says what to install', async () => {
    await expect(selectBackend('tensorflow')).rejects.toThrow(/@tensorflow\/tfjs-node-gpu/);
    await expect(selectBackend('tensorflow')).rejects.toBeInstanceOf(BackendError);
  });
});
