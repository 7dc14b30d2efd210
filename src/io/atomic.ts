/**
 * Atomic outputs: write to a temporary file next to the target, then rename it into place, so a
 * reader never sees a partial file and an interrupted run leaves nothing behind.
 *
 *   - The temp file lives in the target's directory (`.<name>.tmp-<pid>-<random>`), so the final
 *     rename never crosses a file system.
 *   - An existing target is refused unless `force` (`OutputExistsError`, code 'EXISTS'); without
 *     `force` the final step is `link` + `unlink`, which cannot replace a file that appeared meanwhile.
 *   - Live temp files (and any cleanup hooks such as "kill the ffmpeg child") are removed
 *     synchronously on SIGINT / SIGTERM and on `process.exit`. When no other handler listens for the
 *     signal, the signal is re-raised after cleanup so the process still dies the default way
 *     (exit 130 for Ctrl-C); a CLI that installs its own handler keeps control and can say so.
 */
import fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Mask2DiTError } from '../errors.js';

/** The output exists and `force` was not given. */
export class OutputExistsError extends Mask2DiTError {
  constructor(readonly file: string) {
    super('EXISTS', `${file}: already exists (use --force to overwrite)`);
  }
}

/** An output path that cannot be written: a file stands where a folder is needed, or the other way round. */
export class OutputPathError extends Mask2DiTError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super('OUTPUT_PATH', `${file}: ${detail}`);
  }
}

/**
 * The nearest existing folder above `file` (its parent, or further up when folders are missing);
 * throws OutputPathError when that is a file (`somefile/film.mp4`: "somefile is not a directory").
 */
export function existingParent(file: string): string {
  let d = dirname(file);
  while (!fs.existsSync(d) && dirname(d) !== d) d = dirname(d);
  if (fs.existsSync(d) && !fs.statSync(d).isDirectory())
    throw new OutputPathError(file, `cannot write it: ${d} is not a directory`);
  return d;
}

export interface AtomicOptions {
  /** Replace an existing output (default false: refuse with OutputExistsError). */
  force?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Interrupt cleanup registry
// ---------------------------------------------------------------------------------------------

const cleanups = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let installed = false;

/** Runs the cleanups newest first (a child process registered after its output file is killed before the file is removed). */
function runCleanups(): void {
  for (const fn of [...cleanups].reverse()) {
    try {
      fn();
    } catch {
      /* best effort: we are going down */
    }
  }
  cleanups.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  runCleanups();
  // If nobody else handles the signal, restore the default behaviour and re-raise it.
  if (process.listenerCount(signal) === 1) {
    uninstall();
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', runCleanups);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  for (const s of SIGNALS) process.off(s, onSignal);
  process.off('exit', runCleanups);
}

/**
 * Runs `fn` (synchronously) if the process is interrupted (SIGINT/SIGTERM) or exits before the
 * returned `unregister` is called. Use it for resources an interrupt must release: temp files,
 * child processes.
 */
export function registerCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  install();
  return () => {
    cleanups.delete(fn);
    if (cleanups.size === 0) uninstall();
  };
}

/** Number of pending cleanups (for tests: 0 once every output is committed or aborted). */
export function pendingCleanups(): number {
  return cleanups.size;
}

// ---------------------------------------------------------------------------------------------
// AtomicOutput
// ---------------------------------------------------------------------------------------------

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

function ioError(file: string, what: string, e: unknown): Mask2DiTError {
  if (e instanceof Mask2DiTError) return e;
  const detail = e instanceof Error ? e.message : String(e);
  return new Mask2DiTError('IO', `${file}: ${what}: ${detail}`);
}

/**
 * One output file being written: write to `tempPath` (yourself, or hand it to a child process),
 * then `commit()` to move it into place, or `abort()` to delete it. Until either happens, an
 * interrupt removes the temp file.
 */
export class AtomicOutput {
  readonly tempPath: string;
  private done = false;
  private readonly unregister: () => void;

  private constructor(
    readonly path: string,
    readonly force: boolean,
  ) {
    this.tempPath = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    this.unregister = registerCleanup(() => fs.rmSync(this.tempPath, { force: true }));
  }

  /**
   * Reserves a temp name for `file`. Throws OutputExistsError if `file` exists and not `force`,
   * OutputPathError if a file stands in its path, and an 'IO' error if its directory does not exist.
   */
  static open(file: string, opts: AtomicOptions = {}): AtomicOutput {
    const force = opts.force ?? false;
    if (!force && exists(file)) throw new OutputExistsError(file);
    const dir = dirname(file);
    if (existingParent(file) !== dir) throw new Mask2DiTError('IO', `${file}: directory ${dir} does not exist`);
    return new AtomicOutput(file, force);
  }

  /** Moves the finished temp file into place (fsynced first). Throws OutputExistsError if, without `force`, the target appeared meanwhile. */
  async commit(): Promise<void> {
    if (this.done) throw new Mask2DiTError('IO', `${this.path}: output already committed or aborted`);
    try {
      await syncFile(this.tempPath);
      if (this.force) await fs.promises.rename(this.tempPath, this.path);
      else await linkNoReplace(this.tempPath, this.path);
    } catch (e) {
      await this.abort();
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new OutputExistsError(this.path);
      throw ioError(this.path, 'committing', e);
    }
    this.done = true;
    this.unregister();
  }

  /** Deletes the temp file (idempotent; never throws). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await fs.promises.rm(this.tempPath, { force: true }).catch(() => undefined);
    this.unregister();
  }
}

async function syncFile(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** `rename` that refuses to replace: hard-link then unlink; falls back to exists-check + rename where links are unsupported. */
async function linkNoReplace(from: string, to: string): Promise<void> {
  try {
    await fs.promises.link(from, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    if (exists(to)) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
    await fs.promises.rename(from, to);
    return;
  }
  await fs.promises.rm(from, { force: true });
}

/**
 * Runs `write(tempPath)` and commits its result to `file`; on any error (or a rejected promise) the
 * temp file is removed and the error rethrown.
 */
export async function withAtomicOutput<T>(
  file: string,
  opts: AtomicOptions,
  write: (tempPath: string) => Promise<T>,
): Promise<T> {
  const out = AtomicOutput.open(file, opts);
  try {
    const result = await write(out.tempPath);
    await out.commit();
    return result;
  } catch (e) {
    await out.abort();
    throw e;
  }
}

/** Writes `data` to `file` atomically (temp + fsync + rename); refuses an existing `file` unless `force`. */
export async function writeFileAtomic(
  file: string,
  data: Uint8Array | string,
  opts: AtomicOptions = {},
): Promise<void> {
  await withAtomicOutput(file, opts, async (tmp) => {
    try {
      await fs.promises.writeFile(tmp, data, { flag: 'wx' });
    } catch (e) {
      throw ioError(file, 'writing', e);
    }
  });
}

/**
 * Put a folder built under the temporary name `tmp` in place of `target`: a plain rename, or (when
 * `target` exists) target → `tmp.old`, tmp → target, then the old one removed — `target` is always
 * either the old folder or the complete new one.
 */
export function replaceFolder(tmp: string, target: string): void {
  if (!fs.existsSync(target)) {
    fs.renameSync(tmp, target);
    return;
  }
  const old = `${tmp}.old`;
  fs.renameSync(target, old);
  fs.renameSync(tmp, target);
  fs.rmSync(old, { recursive: true, force: true });
}
