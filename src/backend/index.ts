/**
 * Backend selection: one function picks and initialises a tfjs backend by name.
 *
 * | name         | package                                   | notes                                          |
 * |--------------|-------------------------------------------|------------------------------------------------|
 * | `wasm`       | @tensorflow/tfjs-backend-wasm (dependency) | default; threaded SIMD build on all cores       |
 * | `cpu`        | @tensorflow/tfjs-backend-cpu (dependency)  | reference, 40–60× slower than wasm              |
 * | `webgpu`     | @tensorflow/tfjs-backend-webgpu + `webgpu` | Dawn in Node; needs a Vulkan (or GLES) driver   |
 * | `tensorflow` | @tensorflow/tfjs-node-gpu / tfjs-node      | only if the user installed it; not a dependency |
 *
 * The name comes from the caller (CLI `--backend`), else `MASK2DIT_BACKEND`, else `wasm`.
 * The wasm thread count comes from the caller, else `MASK2DIT_THREADS`, else all cores.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers' bundle registers every op's gradient (tfjs-core alone registers none; training needs them)
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { BackendError } from '../errors.js';
import { log } from '../log.js';
import { prepareWasmThreads } from './wasmThreads.js';
import { installWasmSlice } from './wasmSlice.js';
import { initWebGpu } from './webgpu.js';
import { initTensorflow } from './tensorflow.js';

// tfjs-wasm's Slice, SplitV and Unpack copy their whole input first: replace them (src/backend/wasmSlice.ts)
installWasmSlice();

export const BACKEND_NAMES = ['wasm', 'cpu', 'webgpu', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendOptions {
  /** wasm worker threads (default `MASK2DIT_THREADS`, else the number of logical cores). */
  threads?: number;
  /**
   * wasm: how long one try of the threaded start may take (its pthread pool of 8 workers must all
   * load; normally ~0.1 s) before it is given up on (default 20 s). Starts that never finished were
   * seen twice in CI, and a threaded start can also fail at once (a pool worker dies before loading).
   */
  initTimeoutMs?: number;
  /** wasm: tries of the threaded start before falling back to one thread (default 3). */
  initAttempts?: number;
}

export const WASM_INIT_TIMEOUT_MS = 20_000;
export const WASM_INIT_ATTEMPTS = 3;

/** What was selected, for logs and benchmark rows. */
export interface BackendInfo {
  name: BackendName;
  /** wasm: threads actually running; others: undefined. */
  threads?: number;
  /** Human description of the device (adapter name for webgpu). */
  device: string;
}

/** Resolve the backend name: explicit argument, else `MASK2DIT_BACKEND`, else `wasm`. */
export function resolveBackendName(requested?: string): BackendName {
  const fromEnv = process.env['MASK2DIT_BACKEND'];
  const raw = requested ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'wasm');
  const name = raw.trim().toLowerCase();
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    const where = requested !== undefined ? '--backend' : 'MASK2DIT_BACKEND';
    throw new BackendError(raw, `unknown backend (from ${where}); expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  return name as BackendName;
}

/** Resolve the wasm thread count: explicit option, else `MASK2DIT_THREADS`, else all logical cores. */
export function resolveThreads(requested?: number): number {
  const fromEnv = process.env['MASK2DIT_THREADS'];
  if (requested === undefined && (fromEnv === undefined || fromEnv === '')) return Math.max(1, os.cpus().length);
  const value = requested ?? Number(fromEnv);
  if (!Number.isInteger(value) || value < 1 || value > 256) {
    const where = requested !== undefined ? 'threads option' : 'MASK2DIT_THREADS';
    throw new BackendError('wasm', `${where} must be an integer in 1..256, got ${String(requested ?? fromEnv)}`);
  }
  return value;
}

let wasmThreads: number | undefined;

/** `tf.setBackend(name)`, or why it was given up on: `after` ms passed, or `died` settled first. */
async function setBackendUnless(
  name: string,
  after: number,
  died: Promise<string>,
): Promise<boolean | { failed: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ failed: string }>((resolve) => {
    timer = setTimeout(() => resolve({ failed: `did not start within ${after / 1000} s` }), after);
  });
  try {
    return await Promise.race([tf.setBackend(name), timeout, died.then((reason) => ({ failed: reason }))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One try of the threaded build: true/false from tfjs, or why it was given up on (its pool's workers
 * are then terminated; calling setBackend again makes tfjs drop the pending start).
 */
async function tryThreadedWasm(threads: number, timeoutMs: number): Promise<boolean | { failed: string }> {
  const start = prepareWasmThreads(tf.env(), threads);
  let result: boolean | { failed: string };
  try {
    tfwasm.setThreadsCount(threads);
    result = await setBackendUnless('wasm', timeoutMs, start.pool.died);
  } finally {
    start.restore();
  }
  if (typeof result === 'boolean') return result;
  const failed = `${result.failed}; its pool: ${start.pool.describe()}`;
  start.pool.terminate();
  return { failed };
}

async function initWasm(threads: number, timeoutMs: number, attempts: number): Promise<number> {
  if (wasmThreads !== undefined && tf.engine().registry['wasm'] !== undefined) {
    if (threads !== wasmThreads)
      log.warn(`wasm already running with ${wasmThreads} threads; ignoring the request for ${threads}`);
    await tf.setBackend('wasm');
    return wasmThreads;
  }
  let result: boolean | { failed: string } = { failed: 'not tried' };
  if (threads > 1) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      result = await tryThreadedWasm(threads, timeoutMs);
      if (typeof result === 'boolean') break;
      log.warn(`wasm: threaded start ${attempt}/${attempts} ${result.failed}`);
    }
  }
  if (typeof result !== 'boolean') {
    // The single-threaded build has no worker pool to wait for.
    if (threads > 1) log.warn(`wasm: the threaded build did not start in ${attempts} tries; falling back to 1 thread`);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    tfwasm.setThreadsCount(1);
    result = await tf.setBackend('wasm');
  }
  if (!result) throw new BackendError('wasm', 'tfjs could not initialise the wasm backend (see the warnings above)');
  wasmThreads = tfwasm.getThreadsCount();
  if (wasmThreads !== threads) log.warn(`wasm: asked for ${threads} threads, running ${wasmThreads}`);
  return wasmThreads;
}

/**
 * Select and initialise a backend, making it tfjs' current backend.
 * @throws BackendError naming the backend and what is missing.
 */
export async function selectBackend(requested?: string, options: BackendOptions = {}): Promise<BackendInfo> {
  const name = resolveBackendName(requested);
  switch (name) {
    case 'wasm': {
      for (const [key, value] of [
        ['initTimeoutMs', options.initTimeoutMs],
        ['initAttempts', options.initAttempts],
      ] as const) {
        if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
          throw new BackendError('wasm', `${key} must be a positive integer, got ${String(value)}`);
        }
      }
      const threads = await initWasm(
        resolveThreads(options.threads),
        options.initTimeoutMs ?? WASM_INIT_TIMEOUT_MS,
        options.initAttempts ?? WASM_INIT_ATTEMPTS,
      );
      return {
        name,
        threads,
        device: `${os.cpus()[0]?.model ?? 'cpu'} (wasm SIMD, ${threads} thread${threads > 1 ? 's' : ''})`,
      };
    }
    case 'cpu': {
      // tfjs-cpu prints a banner suggesting tfjs-node on first use; our backend table says that already
      if (process.env['MASK2DIT_LOG'] !== 'debug') tf.env().set('PROD', true);
      await tf.setBackend('cpu');
      return { name, device: `${os.cpus()[0]?.model ?? 'cpu'} (tfjs cpu, 1 thread)` };
    }
    case 'webgpu':
      return { name, device: await initWebGpu() };
    case 'tensorflow':
      return { name, device: await initTensorflow() };
  }
}

/** Threads of the running wasm backend, or undefined when wasm has not been started. */
export function runningWasmThreads(): number | undefined {
  return tf.engine().registry['wasm'] !== undefined ? wasmThreads : undefined;
}

/**
 * Release every initialised backend (wasm worker threads included) so the process can exit by
 * itself. tfjs tensors made before are invalid afterwards; selectBackend works again.
 */
export function shutdownBackends(): void {
  tf.engine().reset();
  wasmThreads = undefined;
}
