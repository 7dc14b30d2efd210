/**
 * Multithreaded tfjs-wasm in Node.
 *
 * Stock tfjs-backend-wasm 4.22 reports `WASM_HAS_MULTITHREAD_SUPPORT = false` whenever it runs in
 * Node, so it loads the single-threaded SIMD build. Three things stop the threaded-SIMD build from
 * working when the flag is forced on (see BACKENDS.md §2):
 *  1. the Emscripten main script and the pthread worker script are handed around as `Blob` URLs,
 *     which Node's `worker_threads.Worker` and the worker's `importScripts` cannot open;
 *  2. the main script is `factory.toString()` of the Node bundle and refers to bundle-scoped names
 *     (`require$$0` = fs, `require$$1` = path, `require$$3` = perf_hooks, `require$$4` = os,
 *     `commonjsGlobal`);
 *  3. the pool is capped at `min(requested, logicalCores / 2)`, i.e. 1 on a 2-vCPU machine.
 * This module writes both scripts to a private temp dir (with a prelude that defines the missing
 * names), makes `URL.createObjectURL` return those paths, and reports 2×threads logical cores while
 * the backend initialises. It is tied to the text of the pinned 4.22.0 bundle and throws if the
 * worker patch no longer applies.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const MAIN_SCRIPT_MARK = 'var WasmBackendModuleThreadedSimd';
const WORKER_IMPORT = /var objectUrl=URL\.createObjectURL\(e\.data\.urlOrBlob\);importScripts\(objectUrl\);URL\.revokeObjectURL\(objectUrl\)/;
const PRELUDE =
  "var require$$0=require('fs'),require$$1=require('path')," +
  "require$$3=require('perf_hooks'),require$$4=require('os'),commonjsGlobal=globalThis;\n";

let installed = false;
let scriptDir = '';

/** Text of blobs created while the shim is installed (a WeakMap, so blobs are not kept alive). */
const blobText = new WeakMap<Blob, string>();

function installBlobHooks(): void {
  if (installed) return;
  installed = true;
  scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mask2dit-wasm-mt-'));
  process.once('exit', () => fs.rmSync(scriptDir, { recursive: true, force: true }));
  const mainScriptPath = path.join(scriptDir, 'wasm-main.js');
  const workerPath = path.join(scriptDir, 'wasm-worker.js');

  const OrigBlob = globalThis.Blob;
  class RecordingBlob extends OrigBlob {
    constructor(parts: ConstructorParameters<typeof Blob>[0] = [], options?: ConstructorParameters<typeof Blob>[1]) {
      super(parts, options);
      const text = parts.map((p) => (typeof p === 'string' ? p : '')).join('');
      blobText.set(this, text);
      if (text.startsWith(MAIN_SCRIPT_MARK)) fs.writeFileSync(mainScriptPath, PRELUDE + text);
    }
  }
  globalThis.Blob = RecordingBlob as typeof Blob;

  const origCreate = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj: Blob): string => {
    const text = obj instanceof OrigBlob ? blobText.get(obj) : undefined;
    if (text === undefined) return origCreate(obj);
    if (text.includes('ENVIRONMENT_IS_PTHREAD')) {
      // The pthread worker: make it load the main script from disk instead of a blob URL.
      const patched = text.replace(WORKER_IMPORT, `importScripts(${JSON.stringify(mainScriptPath)})`);
      if (patched === text) throw new Error('wasm threads shim: the worker patch did not apply (tfjs-backend-wasm version changed?)');
      fs.writeFileSync(workerPath, patched);
      return workerPath;
    }
    const p = path.join(scriptDir, `blob-${Math.random().toString(36).slice(2)}.js`);
    fs.writeFileSync(p, text);
    return p;
  };
}

/**
 * Prepare the threaded build: call before `tf.setBackend('wasm')`. Returns a function that undoes
 * the logical-core report; call it once the backend is ready.
 */
export function prepareWasmThreads(env: { set(flag: string, value: boolean): void }, threads: number): () => void {
  installBlobHooks();
  env.set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  const realCpus = os.cpus;
  os.cpus = () => {
    const c = realCpus.call(os);
    return Array.from({ length: 2 * threads }, (_, i) => c[i % c.length]!);
  };
  return () => {
    os.cpus = realCpus;
  };
}
