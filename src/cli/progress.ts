/**
 * The CLI's progress printer (stderr): one line per phase (load, encode text, denoise, decode,
 * write) and, while denoising, a step line with the step time and the ETA, redrawn in place on a
 * TTY. Silent when stderr is not a TTY or with `--quiet`; `--progress` forces plain lines (one per
 * phase and per step) for logs and tests.
 */
export type ProgressMode = 'tty' | 'plain' | 'off';

export function progressMode(
  opts: { quiet?: boolean; progress?: boolean },
  stream: NodeJS.WriteStream = process.stderr,
): ProgressMode {
  if (opts.quiet === true) return 'off';
  if (stream.isTTY === true) return 'tty';
  return opts.progress === true ? 'plain' : 'off';
}

const secs = (ms: number) => (ms >= 100_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`);

export class Progress {
  private readonly t0 = performance.now();
  private open = false; // a TTY step line is on screen without its newline
  private stepStart = 0;
  private stepTotal = 0;

  constructor(
    readonly mode: ProgressMode,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  private write(line: string): void {
    if (this.mode === 'off') return;
    if (this.open) this.stream.write('\n');
    this.open = false;
    this.stream.write(line + '\n');
  }

  /** `[  1.2 s] denoise: 20 steps, flow-euler, guidance 6` */
  phase(name: string, detail = ''): void {
    this.write(`[${secs(performance.now() - this.t0).padStart(7)}] ${name}${detail === '' ? '' : `: ${detail}`}`);
  }

  /** Mark the start of the denoising loop (step timing begins here). */
  startSteps(): void {
    this.stepStart = performance.now();
    this.stepTotal = 0;
  }

  /** After step `i` (0-based) of `n`. */
  step(i: number, n: number): void {
    const now = performance.now();
    const ms = now - this.stepStart;
    this.stepStart = now;
    this.stepTotal += ms;
    const eta = (this.stepTotal / (i + 1)) * (n - i - 1);
    const line = `  step ${String(i + 1).padStart(String(n).length)}/${n}  ${ms.toFixed(0)} ms/step  ETA ${secs(eta)}`;
    if (this.mode === 'plain') this.write(line);
    else if (this.mode === 'tty') {
      this.stream.write(`\r${line}\x1b[K`);
      this.open = true;
      if (i + 1 === n) this.end();
    }
  }

  /** Finish an open step line. */
  end(): void {
    if (this.open) this.stream.write('\n');
    this.open = false;
  }
}
