/**
 * `mask2dit bench [--backends wasm,cpu] [--only matmul,step] [--quick] [--reference [--python exe]]`: the benchmark suite
 * (src/bench/suite.ts): one row per component × config × backend, then the FLOP formulas and one
 * JSON line per row. `--json` prints the rows as one JSON array instead.
 */
import type { Command } from 'commander';
import { referenceFromFlags } from '../../bench/reference.js';
import { COMPONENTS, formatReport, runBenchmarks, type Component } from '../../bench/suite.js';
import { Mask2DiTError } from '../../errors.js';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME } from '../../model/modelFolder.js';

interface BenchFlags {
  backends?: string;
  only?: string;
  quick?: boolean;
  reps?: string;
  model?: string;
  json?: boolean;
  reference?: boolean;
  python?: string;
  referenceDevice?: string;
}

const list = (s: string | undefined) =>
  s === undefined
    ? undefined
    : s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');

async function runBench(flags: BenchFlags, cmd: Command): Promise<void> {
  const only = list(flags.only);
  const unknown = only?.filter((c) => !(COMPONENTS as readonly string[]).includes(c)) ?? [];
  if (unknown.length > 0)
    throw new Mask2DiTError(
      'OPTION',
      `--only: unknown component${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; expected some of ${COMPONENTS.join(', ')}`,
    );
  const reps = flags.reps === undefined ? undefined : Number(flags.reps);
  if (reps !== undefined && !(Number.isInteger(reps) && reps >= 1))
    throw new Mask2DiTError('OPTION', `--reps: expected an integer >= 1, got ${flags.reps}`);
  const global = cmd.optsWithGlobals<{ backend?: string }>();
  const backends = list(flags.backends) ?? (global.backend !== undefined ? [global.backend] : undefined);
  const rows = await runBenchmarks({
    ...(backends !== undefined ? { backends } : {}),
    ...(only !== undefined ? { only: only as Component[] } : {}),
    quick: flags.quick === true,
    ...(reps !== undefined ? { reps } : {}),
    weightsDir: flags.model ?? DEFAULT_MODEL_DIR,
    ...referenceFromFlags(flags),
    onRow: (r) =>
      process.stderr.write(
        `  ${r.component} ${r.backend}: ${r.msPerCall ?? '-'} ms/call ${r.skipped !== null ? `(${r.skipped})` : ''}\n`,
      ),
  });
  process.stdout.write(flags.json === true ? JSON.stringify(rows) + '\n' : formatReport(rows));
}

export function register(program: Command): void {
  program
    .command('bench')
    .description(
      `run the benchmarks (${COMPONENTS.join(', ')}) and print the table: ms/call, tokens/s, GFLOP/s, peak memory`,
    )
    .option('--backends <list>', 'comma-separated backends (default: --backend, else wasm)')
    .option('--only <list>', `comma-separated components: ${COMPONENTS.join(', ')}`)
    .option('--quick', 'smaller configs and fewer repetitions')
    .option('--reps <n>', 'timed repetitions per row')
    .option('--model <dir>', `the model of the step and demo rows (default: the shipped ${DEFAULT_MODEL_NAME})`)
    .option('--json', 'print the rows as one JSON array')
    .option(
      '--reference',
      'also time the step row in PyTorch (benchmarks/reference/pytorch_step.py) and print the ratios',
    )
    .option('--python <exe>', 'the Python with torch for --reference (default: MASK2DIT_PYTHON, else python3)')
    .option('--reference-device <device>', 'torch device for --reference: cpu (default) or cuda')
    .action(runBench);
}
