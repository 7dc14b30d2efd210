/**
 * Ctrl-C for long commands: the first SIGINT/SIGTERM aborts the run's AbortSignal (the pipeline stops
 * between steps, ffmpeg is killed, staged outputs are deleted) and the command ends with
 * `InterruptedError` → "interrupted; no partial output written", exit 128 + the signal's number
 * (130 for Ctrl-C/SIGINT, 143 for SIGTERM, as a shell reports a process the signal killed). A second
 * signal exits at once (temp files are still removed by the cleanup hooks of src/io/atomic.ts).
 */
import os from 'node:os';
import { Mask2DiTError } from '../errors.js';

export type InterruptSignal = 'SIGINT' | 'SIGTERM';

/** 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM. */
export const interruptedExitCode = (signal: InterruptSignal): number => 128 + os.constants.signals[signal];

export class InterruptedError extends Mask2DiTError {
  constructor(
    readonly signal: InterruptSignal = 'SIGINT',
    message = 'interrupted; no partial output written',
  ) {
    super('INTERRUPTED', message);
  }

  get exitCode(): number {
    return interruptedExitCode(this.signal);
  }
}

/** Runs `run` with a signal that SIGINT/SIGTERM abort; an error after an abort becomes InterruptedError. */
export async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received: InterruptSignal = 'SIGINT';
  const onSignal = (sig: NodeJS.Signals) => {
    const s: InterruptSignal = sig === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    if (controller.signal.aborted) {
      process.stderr.write(`mask2dit: ${new InterruptedError(s).message}\n`);
      process.exit(interruptedExitCode(s)); // 'exit' runs the temp-file cleanups
    }
    received = s;
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await run(controller.signal);
    if (controller.signal.aborted) throw new InterruptedError(received);
    return result;
  } catch (e) {
    if (controller.signal.aborted) throw new InterruptedError(received);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Throws InterruptedError if `signal` was aborted (call between phases). */
export function checkInterrupted(signal: AbortSignal): void {
  if (signal.aborted) throw new InterruptedError();
}
