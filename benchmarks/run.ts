/**
 * The benchmark harness (`npm run bench`): one table and one JSON line per row; the suite lives in
 * src/bench/suite.ts (also behind `mask2dit bench`).
 *
 *   npm run bench -- [--backends wasm,cpu,webgpu] [--only matmul,attention,block,step,vae,demo] [--quick] [--reps 3]
 *                    [--reference [--python /usr/bin/python3] [--reference-device cpu|cuda]]
 *
 * `--reference` also times benchmarks/reference/pytorch_step.py (the `step small` row in PyTorch, block-wise
 * as the reference and with a naive dense mask) in the same run and prints the ratios.
 *
 * For webgpu on a GPU: MASK2DIT_WEBGPU_BACKEND=vulkan npm run bench -- --backends webgpu
 */
import { shutdownBackends } from '../src/backend/index.js';
import { COMPONENTS, formatReport, runBenchmarks, type Component } from '../src/bench/suite.js';
import { machine } from '../src/bench/measure.js';
import { referenceFromFlags } from '../src/bench/reference.js';
import { arg, flag } from './lib.js';

const list = (name: string): string[] | undefined =>
  arg(name)
    ?.split(',')
    .filter((s) => s !== '');
const only = list('--only');
const unknown = only?.filter((c) => !(COMPONENTS as readonly string[]).includes(c)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(`--only: unknown component(s) ${unknown.join(', ')}; expected ${COMPONENTS.join(', ')}\n`);
  process.exit(2);
}
process.stderr.write(`mask2dit benchmarks — ${machine()}\n`);
const rows = await runBenchmarks({
  backends: list('--backends') ?? ['wasm'],
  ...(only !== undefined ? { only: only as Component[] } : {}),
  quick: flag('--quick'),
  ...(arg('--reps') !== undefined ? { reps: Number(arg('--reps')) } : {}),
  ...referenceFromFlags({
    reference: flag('--reference'),
    python: arg('--python'),
    referenceDevice: arg('--reference-device'),
  }),
  onRow: (r) => process.stderr.write(`  ${r.component} ${r.backend}: ${r.msPerCall ?? r.skipped} ms — ${r.config}\n`),
});
process.stdout.write(formatReport(rows));
shutdownBackends();
process.exit(0);
