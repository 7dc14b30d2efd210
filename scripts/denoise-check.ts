/**
 * Where does generation go wrong? The DiT as a denoiser on held-out caption sets (seeds ≥ 1,000,000):
 * the ground-truth scenes are encoded, noised to σ with x_σ = (1 − σ)·x₀ + σ·ε and given to the
 * transformer with their captions under the dual mask, all scenes jointly.
 *
 *  - one step:     x̂₀ of a single forward at σ (conditional, no guidance), decoded and read by the oracle
 *  - sampled from: the Euler sampler run from σ down to 0 on the same noisy input (x̂₀-space guidance,
 *                  the model's own stochastic/deterministic step); σ = 1 is plain generation from noise
 *
 * A row says how many scenes the oracle reads right (background, character colour, motion). One-step
 * rows that stay right up to high σ while "sampled from" rows fail say the model can denoise but not
 * lay out a sample: the fix is at high σ, not capacity in general.
 *
 *   node --import tsx scripts/denoise-check.ts [--model DIR] [--sets 8] [--sigmas 0.3,0.5,0.7,0.9,1]
 *        [--from 0.8,0.9,1] [--steps 20] [--guidance 6] [--eta η] [--swap-motion] [--json]
 *
 * --swap-motion: also the one-step rows with each caption's motion replaced by another one (same
 * character and background): a model that uses the motion words draws the captioned motion, one that
 * ignores them copies the input's (the extra column).
 *
 * --eta: re-noise each step with √(1 − η²)·ε̂ + η·ε_fresh (ε̂ the noise implied by x and x̂₀); default the
 * model's scheduler: 1 with stochastic_sampling, else 0. --eta-above s: only on steps from σ > s (below: η = 0),
 * as EDM's S_tmin.
 */
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../src/backend/index.js';
import { compareScene, readScene } from '../src/data/oracle.js';
import { captionFor } from '../src/data/captions.js';
import { motionsFor, type Motion, type Shape } from '../src/data/vocabulary.js';
import { sampleClip } from '../src/data/world.js';
import { HELD_OUT_FIRST_SEED, selectCaptionSets, videoToScenes } from '../src/eval/evaluate.js';
import { loadModelFolder, type LoadedModel } from '../src/model/modelFolder.js';
import { decodeScenes } from '../src/model/pipeline.js';
import type { FlowMatchSchedulerConfig } from '../src/config/schedulerConfig.js';
import { flowX0 } from '../src/sampler/flowMatchEuler.js';
import { gaussianArray } from '../src/sampler/noise.js';
import { PromptEncoder } from '../src/text/promptEncoder.js';
import { clipLatents } from '../src/train/latentData.js';
import { arg, flag } from '../benchmarks/lib.js';

type Attribute = 'background' | 'colour' | 'motion';
const ATTRIBUTES: Attribute[] = ['background', 'colour', 'motion'];
/** Scenes read right per attribute; `inputMotion`: with another motion captioned, scenes that kept the input's. */
type Tally = Record<Attribute, number> & { inputMotion?: number };

/** Scenes of each caption set (the eval's). */
const SCENES = 3;
const list = (v: string) =>
  v
    .split(',')
    .filter((x) => x.trim() !== '')
    .map(Number);

/** A motion other than `m` for a character of `shape`, the `k`-th after it (k ≥ 0; cycles past `m`). */
function otherMotion(shape: Shape, m: Motion, k: number): Motion {
  const ms = motionsFor(shape);
  return ms[(ms.indexOf(m) + 1 + (k % (ms.length - 1))) % ms.length]!;
}

/** The model's flow-matching scheduler config (this check is written for flow models: x_σ = (1 − σ)x₀ + σε). */
function flowConfig(m: LoadedModel): FlowMatchSchedulerConfig {
  const c = m.schedulerConfig;
  if (c._class_name !== 'FlowMatchEulerDiscreteScheduler')
    throw new Error(`${m.dir}: scheduler ${c._class_name}; this check needs a flow-matching model`);
  return c;
}

/** x̂₀ from one forward at σ: the model's output, or x − σ·v for a velocity model. `text`: `[1, S·L, D]`. */
function predictX0(m: LoadedModel, x: tf.Tensor, sigma: number, text: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const out = m.transformer.forward({ hiddenStates: x, encoderHiddenStates: text, timestep: [1000 * sigma] });
    return flowX0(out, x, sigma, flowConfig(m).prediction_type);
  });
}

/** The flow Euler sampler from `x` at `from` to 0 in `steps` steps, guidance on x̂₀ (affine in v, so the same). */
function sampleFrom(
  m: LoadedModel,
  x: tf.Tensor,
  from: number,
  steps: number,
  guidance: number,
  cond: tf.Tensor,
  uncond: tf.Tensor,
  seed: number,
  etaOverride: number | undefined,
  etaAbove: number,
): tf.Tensor {
  // η: the share of fresh noise in each re-noising (0: the implied noise, the ODE; 1: all fresh)
  const eta = etaOverride ?? (flowConfig(m).stochastic_sampling === true ? 1 : 0);
  let cur = tf.clone(x);
  for (let i = 0; i < steps; i++) {
    const [s, next] = [from * (1 - i / steps), from * (1 - (i + 1) / steps)];
    const step = tf.tidy(() => {
      const c = predictX0(m, cur, s, cond);
      let x0 = c;
      if (guidance > 1) {
        const u = predictX0(m, cur, s, uncond);
        x0 = tf.add(u, tf.mul(tf.sub(c, u), guidance)); // u + g·(c − u)
      }
      if (next === 0) return x0;
      const implied = tf.div(tf.sub(cur, tf.mul(x0, 1 - s)), s); // ε̂ = (x − (1 − σ)x̂₀)/σ
      const e = s > etaAbove ? eta : 0;
      if (e === 0) return tf.add(tf.mul(x0, 1 - next), tf.mul(implied, next)); // x̂₀ + (σ_next/σ)(x − x̂₀)
      const fresh = tf.tensor(gaussianArray(cur.size, seed, 7, i * cur.size), cur.shape);
      const eps = tf.add(tf.mul(implied, Math.sqrt(1 - e * e)), tf.mul(fresh, e));
      return tf.add(tf.mul(x0, 1 - next), tf.mul(eps, next));
    });
    cur.dispose();
    cur = step;
  }
  return cur;
}

async function main(): Promise<void> {
  const dir = arg('--model') ?? 'weights/mask2dit-world';
  const sets = Number(arg('--sets') ?? '8');
  const sigmas = list(arg('--sigmas') ?? '0.3,0.5,0.7,0.9,1');
  const froms = list(arg('--from') ?? '0.8,0.9,1');
  const steps = Number(arg('--steps') ?? '20');
  const guidance = Number(arg('--guidance') ?? '6');
  const eta = arg('--eta') === undefined ? undefined : Number(arg('--eta'));
  const etaAbove = Number(arg('--eta-above') ?? '0');
  const swap = flag('--swap-motion');
  await selectBackend(arg('--backend') ?? 'wasm');
  const m = await loadModelFolder(dir);
  const rows = new Map<string, Tally>();
  const tally = (row: string) => rows.get(row) ?? rows.set(row, { background: 0, colour: 0, motion: 0 }).get(row)!;
  const t0 = performance.now();
  let scenes = 0;
  const encoder = new PromptEncoder(m.tokenizer!, m.textEncoder!);
  const uncond = tf.tidy(() => {
    const e = encoder.encode(['']); // [1, L, D]
    return tf.tile(e, [1, SCENES, 1]); // [1, S·L, D]
  });
  try {
    for (const [k, set] of selectCaptionSets(sets, HELD_OUT_FIRST_SEED, SCENES, {}).entries()) {
      const clip = sampleClip(set.seed, {});
      const S = set.scenes.length;
      const embed = (captions: string[]) =>
        tf.tidy(() => {
          const e = encoder.encode(captions); // [S, L, D]
          return tf.reshape(e, [1, S * e.shape[1]!, e.shape[2]!]); // [1, S·L, D]
        });
      const cond = embed(set.scenes.map((s) => s.caption));
      const swapped = clip.scenes.map((s, i) => ({
        ...s.attributes,
        motion: otherMotion(clip.character.shape, s.attributes.motion, k + i),
      }));
      const condSwapped = swap ? embed(swapped.map((a, i) => captionFor(i, clip.character, a))) : undefined;
      const x0 = tf.tidy(() => {
        const z = clipLatents(m.vae, clip); // [S, f, C, h, w]
        return tf.reshape(z, [1, S * z.shape[1]!, ...z.shape.slice(2)]); // [1, S·f, C, h, w]
      });
      const noise = tf.tensor(gaussianArray(x0.size, 1000 + k, 3, 0), x0.shape);
      const noised = (s: number) => tf.tidy(() => tf.add(tf.mul(x0, 1 - s), tf.mul(noise, s)));
      const score = async (row: string, latents: tf.Tensor, captioned = clip.scenes.map((c) => c.attributes)) => {
        const video = await decodeScenes(m.vae, latents, S);
        latents.dispose();
        const frames = await videoToScenes(video, S);
        video.dispose();
        const t = tally(row);
        frames.forEach((f, i) => {
          const reading = readScene(f);
          const c = compareScene(reading, { ...captioned[i]!, character: clip.character });
          for (const a of ATTRIBUTES) if (c[a] === true) t[a]++;
          const input = clip.scenes[i]!.attributes.motion;
          if (captioned[i]!.motion !== input) t.inputMotion = (t.inputMotion ?? 0) + (reading.motion === input ? 1 : 0);
        });
      };
      for (const s of sigmas) {
        const x = noised(s);
        await score(`one step at σ ${s}`, predictX0(m, x, s, cond));
        if (condSwapped !== undefined)
          await score(`one step at σ ${s}, another motion captioned`, predictX0(m, x, s, condSwapped), swapped);
        x.dispose();
      }
      for (const s of froms) {
        const x = noised(s);
        const n = Math.max(1, Math.round(steps * s)); // the share of the schedule below σ
        await score(
          `sampled from σ ${s} (${n} step${n === 1 ? '' : 's'})`,
          sampleFrom(m, x, s, n, guidance, cond, uncond, k, eta, etaAbove),
        );
        x.dispose();
      }
      scenes += S;
      tf.dispose([cond, x0, noise, ...(condSwapped !== undefined ? [condSwapped] : [])]);
    }
  } finally {
    uncond.dispose();
    m.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  const lines = [
    `${dir}: ${sets} held-out caption sets, ${scenes} scenes, guidance ${guidance}, Euler with η ${eta ?? (flowConfig(m).stochastic_sampling === true ? 1 : 0)} ${etaAbove > 0 ? ` above σ ${etaAbove}` : ''} (0: deterministic, 1: the model's stochastic sampling), ${seconds.toFixed(0)} s`,
    `| input | ${ATTRIBUTES.join(' | ')} (as captioned) |${swap ? " the input's motion |" : ''}`,
    `|---|---|---|---|${swap ? '---|' : ''}`,
    ...[...rows].map(
      ([row, t]) =>
        `| ${row} | ${ATTRIBUTES.map((a) => `${t[a]}/${scenes}`).join(' | ')} |${swap ? ` ${t.inputMotion === undefined ? '—' : `${t.inputMotion}/${scenes}`} |` : ''}`,
    ),
    '',
  ];
  process.stdout.write(lines.join('\n'));
  if (flag('--json'))
    process.stdout.write(
      JSON.stringify({ model: dir, sets, scenes, guidance, seconds, rows: Object.fromEntries(rows) }) + '\n',
    );
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => shutdownBackends());
