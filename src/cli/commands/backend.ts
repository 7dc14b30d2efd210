/**
 * `mask2dit backend [--backend NAME] [--threads N]`: initialise a backend and print what it runs
 * on, with a quick 512³ matMul as a smoke test. The way to check a GPU or thread setup.
 */
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../backend/index.js';

export function register(program: Command): void {
  program
    .command('backend')
    .description('initialise the selected backend (--backend, else MASK2DIT_BACKEND, else wasm) and print its device')
    .option('--json', 'print one JSON document on stdout')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<{ backend?: string; threads?: string }>();
      const threads = global.threads !== undefined ? Number(global.threads) : undefined;
      const info = await selectBackend(global.backend, threads !== undefined ? { threads } : {});
      const a = tf.ones([512, 512]);
      const t0 = performance.now();
      const c = tf.matMul(a, a);
      const v = (await c.data())[0];
      const ms = performance.now() - t0;
      tf.dispose([a, c]);
      const report = { ...info, matmul512Ms: Number(ms.toFixed(2)), matmulOk: v === 512 };
      if (opts.json === true) process.stdout.write(JSON.stringify(report) + '\n');
      else
        process.stdout.write(
          `backend ${info.name}: ${info.device}\nmatMul 512³ (first call, includes warm-up): ${ms.toFixed(1)} ms, ${report.matmulOk ? 'correct' : 'WRONG RESULT'}\n`,
        );
      if (!report.matmulOk) process.exitCode = 1;
    });
}
