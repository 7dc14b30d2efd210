/**
 * `mask2dit eval [--model DIR] [--sets 100] [--out eval.json]`: the consistency evaluation of issue 8
 * on held-out caption sets of the synthetic world — (a) joint generation under the dual mask, (b) each
 * scene on its own, (c) autoregressive extension — scored by the oracle. Prints the paper-style table
 * and whether "(a) and (c) beat (b) on visual consistency without losing semantic consistency";
 * `--out` writes the full result (settings, metrics, per-clip readings) as JSON, atomically.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { Mask2DiTError } from '../../errors.js';
import {
  EVAL_MODES,
  evaluate,
  formatClaim,
  formatTable,
  HELD_OUT_FIRST_SEED,
  MODE_LABELS,
  type EvalMode,
} from '../../eval/evaluate.js';
import { AtomicOutput } from '../../io/atomic.js';
import { loadModelFolder } from '../../model/modelFolder.js';
import { isSamplerName, SAMPLER_NAMES } from '../../sampler/index.js';
import { backendFromFlags } from '../common.js';
import { checkModelDir, intFlag, modelDir } from '../film.js';
import { checkInterrupted, withInterrupt } from '../interrupt.js';
import { Progress, progressMode } from '../progress.js';

interface EvalFlags {
  model?: string;
  sets: string;
  firstSeed: string;
  steps: string;
  guidance: string;
  seed: string;
  sampler?: string;
  modes: string;
  out?: string;
  json?: boolean;
  force?: boolean;
  quiet?: boolean;
  progress?: boolean;
}

export function parseModes(list: string): EvalMode[] {
  const modes = list
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  const bad = modes.filter((m) => !(EVAL_MODES as readonly string[]).includes(m));
  if (modes.length === 0 || bad.length > 0)
    throw new Mask2DiTError(
      'OPTION',
      `--modes: expected a comma-separated list of ${EVAL_MODES.join(', ')}, got ${JSON.stringify(list)}`,
    );
  return [...new Set(modes)] as EvalMode[];
}

async function runEval(flags: EvalFlags, cmd: Command): Promise<void> {
  const sets = intFlag(flags.sets, 'sets', 1, 100_000)!;
  const firstSeed = intFlag(flags.firstSeed, 'first-seed', HELD_OUT_FIRST_SEED, Number.MAX_SAFE_INTEGER - 1_000_000)!;
  const steps = intFlag(flags.steps, 'steps', 1, 10_000)!;
  const guidance = Number(flags.guidance);
  if (flags.guidance.trim() === '' || !Number.isFinite(guidance) || guidance < 0)
    throw new Mask2DiTError('OPTION', `--guidance: expected a number >= 0, got ${JSON.stringify(flags.guidance)}`);
  const seed = intFlag(flags.seed, 'seed', 0, 2 ** 32 - 1)!;
  if (flags.sampler !== undefined && !isSamplerName(flags.sampler))
    throw new Mask2DiTError(
      'OPTION',
      `--sampler: unknown sampler ${JSON.stringify(flags.sampler)}, expected one of ${SAMPLER_NAMES.join(', ')}`,
    );
  const modes = parseModes(flags.modes);
  const dir = modelDir(flags);
  checkModelDir(dir);
  const progress = new Progress(progressMode(flags));
  const out = flags.out !== undefined ? AtomicOutput.open(flags.out, { force: flags.force === true }) : undefined; // an existing file fails now, not after the run
  try {
    const result = await withInterrupt(async (signal) => {
      const backend = await backendFromFlags(cmd);
      progress.phase('load', `${dir} on ${backend.name}`);
      const model = await loadModelFolder(dir);
      try {
        checkInterrupted(signal);
        progress.phase(
          'evaluate',
          `${sets} caption sets × ${modes.length} mode${modes.length > 1 ? 's' : ''}, ${steps} steps, guidance ${guidance}, seed ${seed}`,
        );
        const t0 = performance.now();
        return await evaluate(model, {
          captionSets: sets,
          firstSeed,
          steps,
          guidance,
          seed,
          modes,
          ...(flags.sampler !== undefined ? { sampler: flags.sampler as (typeof SAMPLER_NAMES)[number] } : {}),
          signal,
          onProgress: (p) => {
            const eta = ((performance.now() - t0) / p.done) * (p.total - p.done);
            const m = p.metrics;
            progress.phase(
              `clip ${p.clip + 1}/${sets}`,
              `seed ${p.worldSeed}, ${MODE_LABELS[p.mode]}: ${p.seconds.toFixed(1)} s; so far semantic ${m.semantic.toFixed(2)}, visual ${m.visual.toFixed(2)}, sequence ${m.sequence.toFixed(2)}; ETA ${(eta / 1000).toFixed(0)} s`,
            );
          },
        });
      } finally {
        model.dispose();
      }
    });
    const document = { model: path.resolve(dir), ...result };
    if (out !== undefined) {
      await writeFile(out.tempPath, `${JSON.stringify(document, null, 2)}\n`);
      await out.commit();
    }
    if (flags.json === true) process.stdout.write(JSON.stringify(document) + '\n');
    else if (flags.quiet !== true)
      process.stdout.write(
        `${formatTable(result)}\n${formatClaim(result)}\n${out !== undefined ? `wrote ${flags.out}\n` : ''}`,
      );
  } catch (e) {
    await out?.abort();
    throw e;
  }
}

export function register(program: Command): void {
  program
    .command('eval')
    .description(
      'consistency evaluation on held-out caption sets of the synthetic world: (a) joint generation (dual mask), (b) independent scenes, (c) autoregressive extension, scored by the oracle',
    )
    .option('--model <dir>', 'pipeline folder (default: the shipped model)')
    .option('--sets <n>', 'number of caption sets (3 scenes each)', '100')
    .option(
      '--first-seed <n>',
      `first world seed searched for caption sets (held out: ≥ ${HELD_OUT_FIRST_SEED})`,
      String(HELD_OUT_FIRST_SEED),
    )
    .option('--steps <n>', 'denoising steps', '20')
    .option('--guidance <g>', 'classifier-free guidance scale, 1 = none', '6')
    .option('--seed <s>', 'generation seed of the first clip (clip k uses seed + k)', '0')
    .option('--sampler <name>', `${SAMPLER_NAMES.join(' | ')} (default: the model's scheduler)`)
    .option('--modes <list>', 'modes to run, comma-separated', EVAL_MODES.join(','))
    .option('--out <file.json>', 'write the full result (settings, metrics, per-clip readings) as JSON')
    .option('--force', 'overwrite --out')
    .option('--json', 'print the full result as one JSON document on stdout instead of the table')
    .option('--quiet', 'no progress and no table')
    .option('--progress', 'print progress lines even when stderr is not a terminal')
    .action(runEval);
}
