/**
 * Ctrl-C for long commands: the first SIGINT/SIGTERM aborts the run's AbortSignal (the pipeline stops
 * between steps, ffmpeg is killed, staged outputs are deleted) and the command ends with
 * `InterruptedError` → "interrupted; no partial output written", exit 130. A second Ctrl-C exits at once
 * (temp files are still removed by the cleanup hooks of src/io/atomic.ts).
 */
import { Mask2DiTError } from '../errors.js';

export const INTERRUPTED_EXIT_CODE = 130;

export class InterruptedError extends Mask2DiTError {
  constructor(message = 'interrupted; no partial output written') {
    super('INTERRUPTED', message);
  }
}

/** Runs `run` with a signal that SIGINT/SIGTERM abort; an error after an abort becomes InterruptedError. */
export async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) {
      process.stderr.write(`mask2dit: ${new InterruptedError().message}\n`);
      process.exit(INTERRUPTED_EXIT_CODE); // 'exit' runs the temp-file cleanups
    }
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await run(controller.signal);
    if (controller.signal.aborted) throw new InterruptedError();
    return result;
  } catch (e) {
    if (controller.signal.aborted) throw new InterruptedError();
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
