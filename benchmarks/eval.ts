/**
 * The consistency evaluation of issue 8 (the paper's table on the synthetic world), as a script:
 *
 *   node --import tsx benchmarks/eval.ts [--model DIR] [--sets 100] [--steps 20] [--guidance 6]
 *        [--seed 0] [--modes joint,independent,autoregressive] [--backend wasm|cpu|webgpu] [--out eval.json]
 *
 * Prints the table and the claim line on stdout, a progress line per clip on stderr, then one JSON
 * line (settings, metrics and seconds per mode, no per-clip details); `--out` writes the full result
 * (per-clip details included). Same code as `mask2dit eval` (src/eval/evaluate.ts).
 */
import path from 'node:path';
import { selectBackend, shutdownBackends } from '../src/backend/index.js';
import { EVAL_MODES, evaluate, formatClaim, formatTable, type EvalMode } from '../src/eval/evaluate.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { DEFAULT_MODEL_DIR, loadModelFolder } from '../src/model/modelFolder.js';
import { arg, machine } from './lib.js';

const num = (name: string, fallback: number) => (arg(name) !== undefined ? Number(arg(name)) : fallback);

const backend = await selectBackend(arg('--backend'));
const dir = arg('--model') ?? DEFAULT_MODEL_DIR;
const model = await loadModelFolder(dir);
try {
  const modes = (arg('--modes')?.split(',') ?? [...EVAL_MODES]) as EvalMode[];
  const sets = num('--sets', 100);
  const t0 = performance.now();
  const result = await evaluate(model, {
    captionSets: sets,
    steps: num('--steps', 20),
    guidance: num('--guidance', 6),
    seed: num('--seed', 0),
    modes,
    onProgress: (p) => {
      if (p.mode === modes[modes.length - 1]) {
        const eta = ((performance.now() - t0) / 1000 / p.done) * (p.total - p.done);
        process.stderr.write(`clip ${p.clip + 1}/${sets} (seed ${p.worldSeed}) done, ETA ${eta.toFixed(0)} s\n`);
      }
    },
  });
  process.stdout.write(`\n${formatTable(result)}\n${formatClaim(result)}\n\n`);
  const out = arg('--out');
  if (out !== undefined)
    await writeFileAtomic(
      out,
      `${JSON.stringify({ model: path.resolve(dir), backend: backend.name, ...result }, null, 2)}\n`,
      { force: true },
    );
  const summary = Object.fromEntries(
    Object.entries(result.modes).map(([m, r]) => [
      m,
      { ...r.metrics, seconds: r.seconds, secondsPerClip: r.secondsPerClip },
    ]),
  );
  const { seeds: _, ...settings } = result.settings;
  process.stdout.write(
    JSON.stringify({
      bench: 'eval',
      model: path.resolve(dir),
      backend: backend.name,
      machine: machine(),
      settings,
      modes: summary,
      groundTruth: result.groundTruth?.metrics,
      claim: result.claim,
      seconds: result.seconds,
    }) + '\n',
  );
} finally {
  model.dispose();
  shutdownBackends();
}
