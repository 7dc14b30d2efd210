#!/usr/bin/env node
/**
 * The `mask2dit` command line. It parses, calls the library and prints; it computes nothing.
 * Exit codes: 0 ok, 2 bad input (a typed error: one line naming the file/field), 130 interrupted by
 * Ctrl-C (SIGINT) and 143 by SIGTERM (no partial output written), 1 anything else.
 */
import { Command, CommanderError } from 'commander';
import { Mask2DiTError } from '../errors.js';
import { shutdownBackends } from '../backend/index.js';
import { VERSION } from '../version.js';
import { register as registerBackend } from './commands/backend.js';
import { register as registerInspect } from './commands/inspect.js';
import { register as registerForward } from './commands/forward.js';
import { registerVaeForward } from './commands/forwardVae.js';
import { registerTextEncoderForward } from './commands/forwardTextEncoder.js';
import { register as registerGenerate } from './commands/generate.js';
import { register as registerExtend } from './commands/extend.js';
import { register as registerMask } from './commands/mask.js';
import { register as registerAttention } from './commands/attention.js';
import { register as registerBench } from './commands/bench.js';
import { InterruptedError } from './interrupt.js';
import { register as registerTrain } from './commands/train.js';
import { register as registerEval } from './commands/eval.js';
import { register as registerTokenize } from './commands/tokenize.js';

function buildProgram(): Command {
  const program = new Command();
  program
    .name('mask2dit')
    .description('Mask²DiT multi-scene video diffusion transformer on TensorFlow.js')
    .version(VERSION)
    .option('--backend <name>', 'tfjs backend: wasm (default), cpu, webgpu, tensorflow; or MASK2DIT_BACKEND')
    .option('--threads <n>', 'wasm threads (default: all cores; or MASK2DIT_THREADS)')
    .option('--verbose', 'print stack traces of errors')
    .exitOverride();
  registerGenerate(program);
  registerExtend(program);
  registerMask(program);
  registerAttention(program);
  registerInspect(program);
  registerBackend(program);
  const forward = registerForward(program);
  registerVaeForward(forward);
  registerTextEncoderForward(forward);
  registerBench(program);
  registerTrain(program);
  registerEval(program);
  registerTokenize(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander printed the message
    const verbose = program.opts<{ verbose?: boolean }>().verbose === true;
    if (e instanceof InterruptedError) {
      process.stderr.write(`mask2dit: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof Mask2DiTError) {
      process.stderr.write(`mask2dit: ${e.message}\n`);
      if (verbose && e.stack !== undefined) process.stderr.write(e.stack + '\n');
      return 2;
    }
    process.stderr.write(
      `mask2dit: ${verbose ? ((e as Error).stack ?? String(e)) : ((e as Error).message ?? String(e))}\n`,
    );
    return 1;
  }
}

const code = await main(process.argv);
shutdownBackends(); // wasm worker threads would keep the process alive
process.exitCode = code;
