/**
 * How much of a scene survives the VAE (issue 18's "the VAE must keep the shape"): held-out world clips
 * (seeds ≥ 1,000,000, the training world's size) encoded (posterior mean) and decoded, each scene read
 * back by the oracle and compared with what was rendered. Prints, per attribute, how many scenes the
 * oracle reads right after the round trip, and the oracle on the rendered frames as the ceiling.
 *
 *   node --import tsx scripts/vae-check.ts --vae RUN_DIR|PIPELINE_DIR [--clips 20] [--json]
 *
 * RUN_DIR: a training run (its `vae/` stage checkpoint, EMA weights); PIPELINE_DIR: a pipeline or VAE
 * folder (e.g. weights/mask2dit-world).
 */
import fs from 'node:fs';
import path from 'node:path';
import { selectBackend, shutdownBackends } from '../src/backend/index.js';
import { compareScene, readScene } from '../src/data/oracle.js';
import { HELD_OUT_FIRST_SEED, sampleClip } from '../src/data/world.js';
import { roundTripScene } from '../src/eval/evaluate.js';
import { CogVideoXVAE } from '../src/model/vae.js';
import { TRAIN_WORLD, emaVae } from '../src/train/stages.js';
import { arg, flag } from '../benchmarks/lib.js';

type Attribute = 'background' | 'colour' | 'shape' | 'motion';
const ATTRIBUTES: Attribute[] = ['background', 'colour', 'shape', 'motion'];

async function loadVae(dir: string): Promise<{ vae: CogVideoXVAE; what: string }> {
  if (fs.existsSync(path.join(dir, 'vae', 'checkpoint.safetensors'))) {
    const { vae, step } = await emaVae(dir);
    return { vae, what: `${dir} (EMA, step ${step})` };
  }
  return { vae: await CogVideoXVAE.fromPretrained(dir), what: dir };
}

async function main(): Promise<void> {
  const dir = arg('--vae');
  if (dir === undefined) throw new Error('usage: scripts/vae-check.ts --vae RUN_DIR|PIPELINE_DIR [--clips 20]');
  const clips = Number(arg('--clips') ?? '20');
  await selectBackend(arg('--backend') ?? 'wasm');
  const { vae, what } = await loadVae(dir);
  const right = { truth: zero(), roundTrip: zero() };
  let scenes = 0;
  const t0 = performance.now();
  try {
    for (let k = 0; k < clips; k++) {
      const clip = sampleClip(HELD_OUT_FIRST_SEED + k, TRAIN_WORLD);
      const { framesPerScene: T, height: H, width: W } = clip;
      for (const s of clip.scenes) {
        const expected = { ...s.attributes, character: { colour: clip.character.colour, shape: clip.character.shape } };
        const score = (data: Float32Array, into: Record<Attribute, number>) => {
          const c = compareScene(readScene({ data, T, H, W }), expected);
          for (const a of ATTRIBUTES) if (c[a] === true) into[a]++;
        };
        score(s.frames, right.truth);
        score(roundTripScene(vae, s.frames, T, H, W), right.roundTrip);
        scenes++;
      }
    }
  } finally {
    vae.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  const line = (name: string, r: Record<Attribute, number>) =>
    `| ${name} | ${ATTRIBUTES.map((a) => `${r[a]}/${scenes}`).join(' | ')} |`;
  process.stdout.write(
    [
      `VAE ${what}: ${clips} held-out clips, ${scenes} scenes, ${seconds.toFixed(0)} s`,
      `| frames | ${ATTRIBUTES.join(' | ')} |`,
      '|---|---|---|---|---|',
      line('rendered (oracle ceiling)', right.truth),
      line('through the VAE', right.roundTrip),
      '',
    ].join('\n'),
  );
  if (flag('--json')) process.stdout.write(JSON.stringify({ vae: what, clips, scenes, seconds, ...right }) + '\n');
}

function zero(): Record<Attribute, number> {
  return { background: 0, colour: 0, shape: 0, motion: 0 };
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => shutdownBackends());
