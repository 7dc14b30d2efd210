/** Run the real `mask2dit` CLI (TypeScript sources through tsx) as a child process. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  signal: NodeJS.Signals | null;
}

const MAIN = path.resolve(process.cwd(), 'src/cli/main.ts');

/** Runs `mask2dit ...args`; a process that does not exit by itself within `timeoutMs` is killed (signal set). */
export function runCli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    env: { ...process.env, MASK2DIT_LOG: 'warn', ...options.env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, signal: r.signal };
}
