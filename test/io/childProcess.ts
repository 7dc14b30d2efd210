/**
 * Runs a small TypeScript script in a child node process (via tsx) so tests can interrupt it with
 * a real signal. The script prints `ready` on stdout when it wants to be interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Absolute import specifier of a source module, for child scripts. */
export const src = (rel: string) => JSON.stringify(path.join(REPO, 'src', rel));

export interface Child {
  proc: ChildProcess;
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** Writes `code` to `dir/name.mts` and runs it with `args`. */
export function runScript(dir: string, name: string, code: string, args: string[]): Child {
  const file = path.join(dir, `${name}.mts`);
  fs.writeFileSync(file, code);
  const proc = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    proc.once('exit', () => reject(new Error(`child exited before ready: ${stderr}`)));
  });
  ready.catch(() => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { proc, ready, exited };
}

/** Child processes of `pid` whose command line contains `name` (Linux /proc; empty elsewhere). */
export function childPids(pid: number, name = ''): number[] {
  if (!fs.existsSync('/proc')) return [];
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(name)) out.push(Number(d));
    } catch {
      /* process went away */
    }
  }
  return out;
}

/** Whether `pid` is a running process (a zombie awaiting its reaper counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return !fs.existsSync('/proc');
  }
}

/** Polls `cond` every 20 ms until true or `ms` pass. */
export async function waitFor(cond: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
