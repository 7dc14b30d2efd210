/**
 * The outputs of one command as a set: each is reserved before any work starts (an existing file
 * without `--force` fails at once, not after minutes of denoising), written to a temp file next to
 * it, and all are moved into place together at the end. An error or Ctrl-C before then deletes every
 * temp file, so a failed or interrupted run leaves nothing behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { AtomicOutput, existingParent, OutputExistsError, OutputPathError, registerCleanup } from '../io/atomic.js';

/** `out/film.mp4` → `out/film` (the base of the sibling outputs). */
export function outputBase(file: string): string {
  const ext = path.extname(file);
  return ext === '' ? file : file.slice(0, -ext.length);
}

/** The contact sheet next to a film: `film.mp4` → `film.sheet.png`. */
export const sheetPathFor = (film: string) => `${outputBase(film)}.sheet.png`;
/** The latents file next to a film: `film.mp4` → `film.latents.safetensors`. */
export const latentsPathFor = (film: string) => `${outputBase(film)}.latents.safetensors`;

function exists(p: string): boolean {
  return fs.existsSync(p);
}

/** A folder written as a whole (e.g. `--frames DIR`): built under a temp name, renamed into place. */
class StagedDir {
  readonly tempPath: string;
  private readonly unregister: () => void;
  constructor(
    readonly path: string,
    private readonly force: boolean,
  ) {
    this.tempPath = path.replace(/[/\\]*$/, '') + `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    this.unregister = registerCleanup(() => fs.rmSync(this.tempPath, { recursive: true, force: true }));
  }
  commit(): void {
    if (exists(this.path)) {
      if (!this.force) throw new OutputExistsError(this.path);
      fs.rmSync(this.path, { recursive: true, force: true });
    }
    fs.renameSync(this.tempPath, this.path);
    this.unregister();
  }
  abort(): void {
    fs.rmSync(this.tempPath, { recursive: true, force: true });
    this.unregister();
  }
}

export class OutputSet {
  private readonly files = new Map<string, AtomicOutput>();
  private readonly dirs = new Map<string, StagedDir>();
  /** Parent folders this set created (outermost first), removed again if the run fails. */
  private readonly created: string[] = [];
  private readonly unregister: () => void;

  constructor(readonly force: boolean) {
    // writers that make their own temp file next to ours (`<temp>.tmp-…`) are covered too
    this.unregister = registerCleanup(() => {
      this.removeTemps();
      this.removeCreated();
    });
  }

  /** Create the missing parent folders of `target` (e.g. `out/` of `--out out/film.mp4`); a file in the way is an OutputPathError. */
  private ensureParent(target: string): void {
    existingParent(target);
    const missing: string[] = [];
    for (let d = path.dirname(path.resolve(target)); !exists(d); d = path.dirname(d)) missing.unshift(d);
    if (missing.length === 0) return;
    fs.mkdirSync(missing[missing.length - 1]!, { recursive: true });
    this.created.push(...missing);
  }

  private removeCreated(): void {
    for (const d of [...this.created].reverse()) {
      try {
        fs.rmdirSync(d); // only if empty
      } catch {
        /* not empty or gone */
      }
    }
  }

  /** Reserve a file output now (refuses an existing file unless force); returns the temp path to write. */
  file(target: string): string {
    if (exists(target) && fs.statSync(target).isDirectory())
      throw new OutputPathError(target, 'is a folder, not a file');
    this.ensureParent(target);
    const out = AtomicOutput.open(target, { force: this.force });
    this.files.set(target, out);
    return out.tempPath;
  }

  /** Reserve a folder output (refuses an existing non-empty folder unless force); returns the temp folder (created). */
  dir(target: string): string {
    if (exists(target) && !fs.statSync(target).isDirectory())
      throw new OutputPathError(target, 'is a file, not a folder');
    if (!this.force && exists(target) && fs.readdirSync(target).length > 0) throw new OutputExistsError(target);
    this.ensureParent(target);
    const d = new StagedDir(target, this.force);
    fs.mkdirSync(d.tempPath);
    this.dirs.set(target, d);
    return d.tempPath;
  }

  /** Move every output into place. */
  async commit(): Promise<void> {
    for (const out of this.files.values()) await out.commit();
    for (const d of this.dirs.values()) d.commit();
    this.unregister();
  }

  /** Delete every temp file and folder (idempotent). */
  async abort(): Promise<void> {
    for (const out of this.files.values()) await out.abort();
    for (const d of this.dirs.values()) d.abort();
    this.removeTemps();
    this.removeCreated();
    this.unregister();
  }

  private removeTemps(): void {
    for (const out of this.files.values()) {
      const dir = path.dirname(out.tempPath);
      const base = path.basename(out.tempPath);
      let names: string[] = [];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names)
        if (n.startsWith(base) || n.startsWith(`.${base}`)) fs.rmSync(path.join(dir, n), { force: true });
    }
  }
}
