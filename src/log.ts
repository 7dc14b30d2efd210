/**
 * The library's only printer: a levelled logger on stderr (stdout is reserved for `--json`
 * documents and benchmark JSON lines). Level from `MASK2DIT_LOG` (error|warn|info|debug), default warn.
 */
const LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LEVELS)[number];

function levelFromEnv(): LogLevel {
  const raw = process.env['MASK2DIT_LOG'];
  if (raw === undefined || raw === '') return 'warn';
  if ((LEVELS as readonly string[]).includes(raw)) return raw as LogLevel;
  process.stderr.write(`mask2dit: unknown MASK2DIT_LOG=${raw}; expected one of ${LEVELS.join(', ')}; using warn\n`);
  return 'warn';
}

let current: LogLevel = levelFromEnv();

export function setLogLevel(level: LogLevel): void {
  current = level;
}

export function getLogLevel(): LogLevel {
  return current;
}

function emit(level: LogLevel, msg: string): void {
  if (LEVELS.indexOf(level) <= LEVELS.indexOf(current)) process.stderr.write(`[mask2dit ${level}] ${msg}\n`);
}

export const log = {
  error: (msg: string) => emit('error', msg),
  warn: (msg: string) => emit('warn', msg),
  info: (msg: string) => emit('info', msg),
  debug: (msg: string) => emit('debug', msg),
};
