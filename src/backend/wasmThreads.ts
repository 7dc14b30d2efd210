/**
 * Multithreaded tfjs-wasm in Node.
 *
 * Stock tfjs-backend-wasm 4.22 reports `WASM_HAS_MULTITHREAD_SUPPORT = false` whenever it runs in
 * Node, so it loads the single-threaded SIMD build. Three things stop the threaded-SIMD build from
 * working when the flag is forced on (2 threads measured 1.6–1.9× on a 2-core machine):
 *  1. the Emscripten main script and the pthread worker script are handed around as `Blob` URLs,
 *     which Node's `worker_threads.Worker` and the worker's `importScripts` cannot open;
 *  2. the main script is `factory.toString()` of the Node bundle and refers to bundle-scoped names
 *     (`require$$0` = fs, `require$$1` = path, `require$$3` = perf_hooks, `require$$4` = os,
 *     `commonjsGlobal`);
 *  3. the pool is capped at `min(requested, logicalCores / 2)`, i.e. 1 on a 2-vCPU machine.
 * This module writes both scripts to disk (with a prelude that defines the missing names), makes
 * `URL.createObjectURL` return those paths, and reports 2×threads logical cores while the backend
 * initialises. It is tied to the text of the pinned 4.22.0 bundle and throws if the worker patch no
 * longer applies.
 *
 * The scripts go to one folder per user, `<tmpdir>/mask2dit-wasm-mt-<uid>` (see `scriptFolder`),
 * reused by every process and never removed: each script is named by a hash of its text, so processes
 * share identical files and never overwrite each other's, and the folder holds one copy per tfjs
 * version. (A folder per process, removed on 'exit', leaked one folder per run: under jest the module
 * sees jest's copy of `process`, whose 'exit' never fires, and a process killed by a signal skips it.)
 *
 * The start waits until all 8 pool workers have posted `loaded`; a worker that dies first leaves it
 * waiting forever (and keeps the process alive: workers are only unref'd once loaded). Each start is
 * therefore watched: the pool's workers are counted (created / online / loaded / exited / errored),
 * a death before `loaded` is reported at once, and a start given up on can terminate its workers.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import workerThreads from 'node:worker_threads';

const MAIN_SCRIPT_MARK = 'var WasmBackendModuleThreadedSimd';
const WORKER_IMPORT =
  /var objectUrl=URL\.createObjectURL\(e\.data\.urlOrBlob\);importScripts\(objectUrl\);URL\.revokeObjectURL\(objectUrl\)/;
const PRELUDE =
  "var require$$0=require('fs'),require$$1=require('path')," +
  "require$$3=require('perf_hooks'),require$$4=require('os'),commonjsGlobal=globalThis;\n";

let installed = false;
let scriptDir = '';

/** A leftover `*.tmp` of a `writeScript` interrupted this long ago is removed when the folder is next set up. */
const STALE_TMP_MS = 10 * 60_000;

/**
 * The folder for the shim's scripts: `<base>/mask2dit-wasm-mt-<uid>`, created (mode 0700) on first use
 * and reused by every later process of the same user. It is only used when it is a real directory owned
 * by this user and writable by nobody else (the workers execute what it holds); otherwise this process
 * gets a private `mkdtemp` folder, removed when it exits. Stale `*.tmp` files of interrupted writes are
 * swept.
 */
export function scriptFolder(base: string = os.tmpdir()): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const dir = path.join(base, `mask2dit-wasm-mt-${uid ?? os.userInfo().username}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = fs.lstatSync(dir);
  const safe =
    st.isDirectory() &&
    (uid === undefined || st.uid === uid) &&
    (process.platform === 'win32' || (st.mode & 0o022) === 0);
  if (!safe) {
    const own = fs.mkdtempSync(path.join(base, 'mask2dit-wasm-mt-'));
    process.once('exit', () => fs.rmSync(own, { recursive: true, force: true }));
    return own;
  }
  const now = Date.now();
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.tmp')) continue;
    const file = path.join(dir, name);
    try {
      if (now - fs.statSync(file).mtimeMs > STALE_TMP_MS) fs.rmSync(file, { force: true });
    } catch {
      // another process renamed or removed it meanwhile
    }
  }
  return dir;
}

/** `<dir>/<stem>-<hash of text>.js`: a script's path is fixed by its text. */
function scriptPath(dir: string, stem: string, text: string): string {
  return path.join(dir, `${stem}-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.js`);
}

/** Text of blobs created while the shim is installed (a WeakMap, so blobs are not kept alive). */
const blobText = new WeakMap<Blob, string>();
/** What each script file holds, so an unchanged script is not written again. */
const written = new Map<string, string>();

/**
 * Write a script that pool workers may be reading at this moment: whole or not at all (temp file +
 * rename), and not at all when unchanged (by this process, or found on disk with this text, as
 * another process left it). A plain rewrite truncates the file first, and a worker that read it then
 * ran an empty script and exited (code 0) before loading — the rare failed start of a pool.
 */
export function writeScript(file: string, text: string): void {
  if (written.get(file) === text) return;
  if (sameText(file, text)) {
    written.set(file, text);
    return;
  }
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
  written.set(file, text);
}

/** Whether `file` exists and holds exactly `text`. */
function sameText(file: string, text: string): boolean {
  try {
    const st = fs.statSync(file);
    return st.isFile() && st.size === Buffer.byteLength(text) && fs.readFileSync(file, 'utf8') === text;
  } catch {
    return false;
  }
}

function installBlobHooks(): void {
  if (installed) return;
  installed = true;
  scriptDir = scriptFolder();
  let mainScriptPath = '';

  const OrigBlob = globalThis.Blob;
  class RecordingBlob extends OrigBlob {
    constructor(parts: ConstructorParameters<typeof Blob>[0] = [], options?: ConstructorParameters<typeof Blob>[1]) {
      super(parts, options);
      const text = parts.map((p) => (typeof p === 'string' ? p : '')).join('');
      blobText.set(this, text);
      if (text.startsWith(MAIN_SCRIPT_MARK)) {
        mainScriptPath = scriptPath(scriptDir, 'wasm-main', PRELUDE + text);
        writeScript(mainScriptPath, PRELUDE + text);
      }
    }
  }
  globalThis.Blob = RecordingBlob as typeof Blob;

  const origCreate = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj: Blob): string => {
    const text = obj instanceof OrigBlob ? blobText.get(obj) : undefined;
    if (text === undefined) return origCreate(obj);
    if (text.includes('ENVIRONMENT_IS_PTHREAD')) {
      // The pthread worker: make it load the main script from disk instead of a blob URL.
      if (mainScriptPath === '')
        throw new Error(
          'wasm threads shim: the pthread worker was created before the main script (tfjs-backend-wasm version changed?)',
        );
      const patched = text.replace(WORKER_IMPORT, `importScripts(${JSON.stringify(mainScriptPath)})`);
      if (patched === text)
        throw new Error('wasm threads shim: the worker patch did not apply (tfjs-backend-wasm version changed?)');
      const workerPath = scriptPath(scriptDir, 'wasm-worker', patched);
      writeScript(workerPath, patched);
      return workerPath;
    }
    const p = scriptPath(scriptDir, 'blob', text);
    writeScript(p, text);
    return p;
  };
}

/** One threaded start's pthread pool, as seen from the main thread. */
export interface PoolWatch {
  /** Workers created, came online, posted `loaded`, exited, and failed with an error. */
  counts(): { created: number; online: number; loaded: number; exited: number; errored: number };
  /** Settles with a reason as soon as a worker exits or errors before it posted `loaded`. */
  readonly died: Promise<string>;
  /** One line for logs: `8 workers: 8 online, 7 loaded, 1 exited (code 1)`. */
  describe(): string;
  /** Terminate every worker of this start (for a start that is given up on). */
  terminate(): void;
}

interface WatchedWorker {
  worker: workerThreads.Worker;
  online: boolean;
  loaded: boolean;
  exitCode?: number;
  error?: string;
}

/** The watch that workers created right now are added to (only while a start is in progress). */
let activeWatch: ((w: workerThreads.Worker) => void) | undefined;

function watchPool(): { watch: PoolWatch; add: (w: workerThreads.Worker) => void } {
  const workers: WatchedWorker[] = [];
  let reportDeath: (reason: string) => void = () => {};
  const died = new Promise<string>((resolve) => {
    reportDeath = resolve;
  });
  const add = (worker: workerThreads.Worker): void => {
    const w: WatchedWorker = { worker, online: false, loaded: false };
    workers.push(w);
    const index = workers.length;
    worker.on('online', () => (w.online = true));
    worker.on('message', (data: unknown) => {
      if ((data as { cmd?: unknown } | null)?.cmd === 'loaded') w.loaded = true;
    });
    worker.on('error', (e: Error) => {
      w.error = e.message;
      if (!w.loaded) reportDeath(`pthread worker ${index} failed before it loaded: ${e.message}`);
    });
    worker.on('exit', (code: number) => {
      w.exitCode = code;
      if (!w.loaded) reportDeath(`pthread worker ${index} exited (code ${code}) before it loaded`);
    });
  };
  const counts = () => ({
    created: workers.length,
    online: workers.filter((w) => w.online).length,
    loaded: workers.filter((w) => w.loaded).length,
    exited: workers.filter((w) => w.exitCode !== undefined).length,
    errored: workers.filter((w) => w.error !== undefined).length,
  });
  const describe = (): string => {
    const c = counts();
    const codes = [...new Set(workers.flatMap((w) => (w.exitCode === undefined ? [] : [w.exitCode])))];
    const errors = [...new Set(workers.flatMap((w) => (w.error === undefined ? [] : [w.error])))];
    return (
      `${c.created} workers: ${c.online} online, ${c.loaded} loaded, ${c.exited} exited` +
      (codes.length > 0 ? ` (code ${codes.join(', ')})` : '') +
      (errors.length > 0 ? `, ${c.errored} errored (${errors.join('; ')})` : '')
    );
  };
  const terminate = (): void => {
    for (const w of workers) if (w.exitCode === undefined) void w.worker.terminate();
  };
  return { watch: { counts, died, describe, terminate }, add };
}

/**
 * The worker class the Emscripten main script picks up (`require('worker_threads').Worker`, read
 * when the factory runs): a subclass that hands each new worker to the active watch, if any.
 */
function installWorkerWatch(): () => void {
  const Base = workerThreads.Worker;
  class WatchedWorkerClass extends Base {
    constructor(...args: ConstructorParameters<typeof Base>) {
      super(...args);
      activeWatch?.(this);
    }
  }
  workerThreads.Worker = WatchedWorkerClass;
  return () => {
    workerThreads.Worker = Base;
  };
}

/** A threaded start in progress: see `prepareWasmThreads`. */
export interface ThreadedStart {
  /** The pool of this start. */
  pool: PoolWatch;
  /** Undo the logical-core report and the worker watch; call once the start settled or was dropped. */
  restore(): void;
}

/**
 * Prepare the threaded build: call before `tf.setBackend('wasm')`, and `restore()` once the
 * backend is ready or the start is given up on.
 */
export function prepareWasmThreads(env: { set(flag: string, value: boolean): void }, threads: number): ThreadedStart {
  installBlobHooks();
  env.set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  const realCpus = os.cpus;
  os.cpus = () => {
    const c = realCpus.call(os);
    return Array.from({ length: 2 * threads }, (_, i) => c[i % c.length]!);
  };
  const { watch, add } = watchPool();
  activeWatch = add;
  const uninstallWorkerWatch = installWorkerWatch();
  return {
    pool: watch,
    restore: () => {
      os.cpus = realCpus;
      uninstallWorkerWatch();
      if (activeWatch === add) activeWatch = undefined;
    },
  };
}
