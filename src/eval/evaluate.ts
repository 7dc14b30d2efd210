/**
 * The evaluation of issue 8: does Mask²DiT keep one character across scenes on the synthetic world?
 *
 * A fixed set of held-out caption sets (world seeds ≥ `HELD_OUT_FIRST_SEED`; training uses the seeds
 * below it) with exactly `scenes` scenes each is generated three ways, decoded, read back by the
 * oracle and scored (metrics.ts):
 *
 *   (a) joint           all scenes in one call under the dual (symmetric) mask — Mask2DiTPipeline
 *   (b) independent     one scene per call, each with its own caption only — Mask2DiTPipeline, S = 1
 *   (c) autoregressive  scene 1 alone, then scene 2 extended from it, then scene 3 — Mask2DiTExtendPipeline
 *
 * The three modes start every scene from the SAME initial noise: clip k uses generation seed
 * `seed + k`, and scene s's noise is the slice of the seeded draw (`STREAM.latents`) that the joint
 * run gives scene s (the draw is row-major over `[1, S·f, C, h, w]`, so scene s's block does not depend
 * on how many scenes follow it). Only the mode differs. In-step sampler noise (DPM) and the extension's
 * conditioning noise come from the same seed in every call.
 *
 * The ground-truth renders of the same caption sets go through the same metric code as a reference
 * row: the oracle's ceiling (≈ 1).
 */
import * as tf from '@tensorflow/tfjs-core';
import { HELD_OUT_FIRST_SEED, sampleCaptionSet, sampleClip, type WorldOptions } from '../data/world.js';
import type { FramesInput } from '../data/oracle.js';
import { Mask2DiTError } from '../errors.js';
import type { SchedulerConfig } from '../config/schedulerConfig.js';
import { Mask2DiTExtendPipeline } from '../model/extendPipeline.js';
import { decodeScenes, Mask2DiTPipeline, sceneGeometry, type SceneGeometry } from '../model/pipeline.js';
import type { Mask2DiTTransformer } from '../model/transformer.js';
import type { CogVideoXVAE } from '../model/vae.js';
import { sceneFrameRange } from '../scene/layout.js';
import { gaussianArray, STREAM } from '../sampler/noise.js';
import type { SamplerName } from '../sampler/sampler.js';
import type { T5Encoder } from '../text/textEncoder.js';
import { PromptEncoder, type PromptTokenizer } from '../text/promptEncoder.js';
import { scoreClip, summarize, type ClipScore, type Metrics } from './metrics.js';

export { HELD_OUT_FIRST_SEED };

export const EVAL_MODES = ['joint', 'independent', 'autoregressive'] as const;
export type EvalMode = (typeof EVAL_MODES)[number];

/** Row labels in the paper's style. */
export const MODE_LABELS: Record<EvalMode, string> = {
  joint: '(a) joint, dual mask',
  independent: '(b) independent scenes',
  autoregressive: '(c) autoregressive extension',
};

/** The parts of a loaded model folder the evaluation needs (`loadModelFolder(dir)` gives them). */
export interface EvalModel {
  transformer: Mask2DiTTransformer;
  vae: CogVideoXVAE;
  textEncoder?: T5Encoder | undefined;
  tokenizer?: PromptTokenizer | undefined;
  schedulerConfig: SchedulerConfig;
  samplerName: SamplerName;
}

export interface EvalProgress {
  /** (clip, mode) runs finished so far, of `total`. */
  done: number;
  total: number;
  /** 0-based index of the clip in the set, and its world seed. */
  clip: number;
  worldSeed: number;
  mode: EvalMode;
  /** Seconds this run took (generation + decode + oracle). */
  seconds: number;
  /** Metrics of this mode so far. */
  metrics: Metrics;
}

export interface EvaluateOptions {
  /** Number of caption sets (default 100). */
  captionSets?: number;
  /** First world seed searched (default `HELD_OUT_FIRST_SEED`; smaller values are refused). */
  firstSeed?: number;
  /** Scenes per caption set (default 3): the first `captionSets` seeds whose caption set has this many. */
  scenes?: number;
  /** World options (default: the training world, 9 frames of 64×64, 2–4 scenes per clip). */
  world?: WorldOptions;
  /** Denoising steps (default 20). */
  steps?: number;
  /** Classifier-free guidance scale, > 1 to use it (default 6). */
  guidance?: number;
  /** Generation seed of clip 0; clip k uses `seed + k` (default 0). */
  seed?: number;
  /** Sampler (default: the model's). */
  sampler?: SamplerName;
  /** Negative prompt under guidance (default '', the prompt training drops captions to). */
  negativePrompt?: string;
  /** Modes to run (default all three). */
  modes?: readonly EvalMode[];
  /** Also score the ground-truth renders (default true). */
  groundTruth?: boolean;
  /** Also score the ground-truth renders after a VAE round trip, encode (posterior mean) → decode: the ceiling the decoder allows (default true). */
  vaeRoundTrip?: boolean;
  onProgress?: (p: EvalProgress) => void;
  signal?: AbortSignal;
}

export interface ModeResult {
  mode: EvalMode;
  metrics: Metrics;
  /** Wall time of the mode over all clips (generation, decode, oracle), and per clip. */
  seconds: number;
  secondsPerClip: number;
  clips: (ClipScore & { generationSeed: number; seconds: number })[];
}

export interface ClaimCheck {
  /** "(a) and (c) beat (b) on visual consistency without losing semantic consistency". */
  claim: string;
  /** Absolute semantic drop (shares) still counted as "not losing". */
  semanticTolerance: number;
  visual: { jointMinusIndependent: number; autoregressiveMinusIndependent: number };
  semantic: { jointMinusIndependent: number; autoregressiveMinusIndependent: number };
  holds: boolean;
  /** The same comparison with visual consistency on colour alone (diagnostic; `holds` ignores it). */
  visualColour: { jointMinusIndependent: number; autoregressiveMinusIndependent: number; holds: boolean };
}

export interface EvalResult {
  settings: {
    captionSets: number;
    firstSeed: number;
    scenes: number;
    seeds: number[];
    world: Required<Pick<WorldOptions, 'framesPerScene' | 'width' | 'height'>>;
    steps: number;
    guidance: number;
    seed: number;
    sampler: SamplerName;
    negativePrompt: string;
    modes: EvalMode[];
  };
  modes: Partial<Record<EvalMode, ModeResult>>;
  /** The ground-truth renders through the same metrics (the oracle's ceiling). */
  groundTruth?: { metrics: Metrics; misses: number[] };
  /** The ground truth through the VAE (encode → decode), scored the same way. */
  vaeRoundTrip?: { metrics: Metrics; misses: number[]; seconds: number };
  /** Present when all three modes ran. */
  claim?: ClaimCheck;
  seconds: number;
}

// ---- caption sets -----------------------------------------------------------------------------------

/** The first `n` world seeds from `firstSeed` on whose caption set has exactly `scenes` scenes. */
export function selectCaptionSets(
  n: number,
  firstSeed: number,
  scenes: number,
  world: WorldOptions = {},
): ReturnType<typeof sampleCaptionSet>[] {
  const min = world.minScenes ?? 2;
  const max = world.maxScenes ?? 4;
  if (scenes < min || scenes > max)
    throw new Mask2DiTError('EVAL', `scenes ${scenes}: the world makes clips of ${min}–${max} scenes`);
  const sets: ReturnType<typeof sampleCaptionSet>[] = [];
  for (let seed = firstSeed; sets.length < n; seed++) {
    const set = sampleCaptionSet(seed, world);
    if (set.scenes.length === scenes) sets.push(set);
  }
  return sets;
}

// ---- noise and frames ---------------------------------------------------------------------------------

/**
 * Scene s's initial noise `[1, f, C, h, w]`: elements [s·n, (s+1)·n) of the seeded `STREAM.latents`
 * draw, n = f·C·h·w — exactly the block the joint pipeline's `gaussianNoise([1, S·f, C, h, w])` gives it.
 */
export function sceneNoise(seed: number, scene: number, shape: [number, number, number, number]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const start = scene * n;
  const lead = start % 2; // gaussianArray starts at even elements (two normals per Philox block)
  const values = gaussianArray(n + lead, seed, STREAM.latents, start - lead).subarray(lead);
  return tf.tensor(values, [1, ...shape], 'float32');
}

/** Decoded video `[1, 3, S·T, H, W]` in [0, 1] → per scene `[3, T, H, W]` in [-1, 1] for the oracle. */
export async function videoToScenes(video: tf.Tensor, scenes: number): Promise<FramesInput[]> {
  const [, C, F, H, W] = video.shape as [number, number, number, number, number];
  const T = F / scenes;
  const data = (await video.data()) as Float32Array;
  const plane = H * W;
  return Array.from({ length: scenes }, (_, s) => {
    const out = new Float32Array(C * T * plane);
    const { start } = sceneFrameRange(F, scenes, s);
    for (let c = 0; c < C; c++) {
      const from = (c * F + start) * plane; // [c, start .. start + T, :, :]
      for (let i = 0; i < T * plane; i++) out[c * T * plane + i] = 2 * data[from + i]! - 1;
    }
    return { data: out, T, H, W };
  });
}

/** One scene `[3, T, H, W]` in [−1, 1] encoded (posterior mean) and decoded again, clipped to [−1, 1]. */
export function roundTripScene(
  vae: { encode(x: tf.Tensor): { mean: tf.Tensor }; decode(z: tf.Tensor): tf.Tensor },
  frames: Float32Array,
  T: number,
  H: number,
  W: number,
): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor(frames, [1, 3, T, H, W]); // [1, 3, T, H, W]
    const post = vae.encode(x);
    return tf.clipByValue(vae.decode(post.mean), -1, 1).dataSync() as Float32Array;
  });
}

// ---- the three modes ---------------------------------------------------------------------------------

interface RunContext {
  model: EvalModel;
  joint: Mask2DiTPipeline;
  extender: Mask2DiTExtendPipeline;
  geo: SceneGeometry;
  steps: number;
  guidance: number;
  sampler: SamplerName;
  /** `[1, L, D]`, present under guidance. */
  negative?: tf.Tensor;
  signal?: AbortSignal;
}

/** Sampling options common to every pipeline call of a clip. */
function common(ctx: RunContext, seed: number) {
  return {
    steps: ctx.steps,
    guidanceScale: ctx.guidance,
    seed,
    sampler: ctx.sampler,
    output: 'latent' as const,
    ...(ctx.negative !== undefined ? { negative: ctx.negative } : {}),
    ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
  };
}

/** Clean latents `[1, S·f, C, h, w]` of one clip in `mode`; `prompts` is `[S, L, D]`, `noise[s]` `[1, f, C, h, w]`. */
async function generateClip(
  ctx: RunContext,
  mode: EvalMode,
  prompts: tf.Tensor,
  noise: tf.Tensor[],
  seed: number,
): Promise<tf.Tensor> {
  const S = noise.length;
  const { frames, height, width } = ctx.geo;
  const size = { frames, height, width };
  if (mode === 'joint') {
    const latents = tf.concat(noise, 1); // [1, S·f, C, h, w]
    try {
      return (await ctx.joint.generate({ ...common(ctx, seed), ...size, prompts, scenes: S, latents })).latents;
    } finally {
      latents.dispose();
    }
  }
  const blocks = tf.unstack(prompts, 0); // S × [L, D]
  try {
    if (mode === 'independent') {
      const parts: tf.Tensor[] = [];
      try {
        for (let s = 0; s < S; s++)
          parts.push(
            (
              await ctx.joint.generate({
                ...common(ctx, seed),
                ...size,
                prompts: [blocks[s]!],
                scenes: 1,
                latents: noise[s]!,
              })
            ).latents,
          );
        return tf.concat(parts, 1);
      } finally {
        tf.dispose(parts);
      }
    }
    let clean = (
      await ctx.joint.generate({ ...common(ctx, seed), ...size, prompts: [blocks[0]!], scenes: 1, latents: noise[0]! })
    ).latents;
    for (let s = 1; s < S; s++) {
      try {
        const r = await ctx.extender.extend({
          ...common(ctx, seed),
          prompts: blocks.slice(0, s + 1),
          previous: { latents: clean },
          latents: noise[s]!,
        });
        tf.dispose([r.latents, r.sceneLatents]);
        clean.dispose();
        clean = r.cleanLatents;
      } catch (e) {
        clean.dispose();
        throw e;
      }
    }
    return clean;
  } finally {
    tf.dispose(blocks);
  }
}

// ---- the claim --------------------------------------------------------------------------------------

export const CLAIM = '(a) and (c) beat (b) on visual consistency without losing semantic consistency';

/** The paper's claim on these numbers: visual (a) > (b) and (c) > (b); semantic (a), (c) ≥ (b) − tolerance. */
export function checkClaim(
  modes: Partial<Record<EvalMode, { metrics: Metrics }>>,
  semanticTolerance = 0.02,
): ClaimCheck | undefined {
  const [a, b, c] = [modes.joint?.metrics, modes.independent?.metrics, modes.autoregressive?.metrics];
  if (a === undefined || b === undefined || c === undefined) return undefined;
  const visual = { jointMinusIndependent: a.visual - b.visual, autoregressiveMinusIndependent: c.visual - b.visual };
  const semantic = {
    jointMinusIndependent: a.semantic - b.semantic,
    autoregressiveMinusIndependent: c.semantic - b.semantic,
  };
  const eps = 1e-12;
  const semanticKept =
    semantic.jointMinusIndependent >= -semanticTolerance - eps &&
    semantic.autoregressiveMinusIndependent >= -semanticTolerance - eps;
  const beaten = (d: { jointMinusIndependent: number; autoregressiveMinusIndependent: number }) =>
    d.jointMinusIndependent > eps && d.autoregressiveMinusIndependent > eps && semanticKept;
  const holds = beaten(visual);
  const colour = {
    jointMinusIndependent: a.visualColour - b.visualColour,
    autoregressiveMinusIndependent: c.visualColour - b.visualColour,
  };
  const visualColour = { ...colour, holds: beaten(colour) };
  return { claim: CLAIM, semanticTolerance, visual, semantic, holds, visualColour };
}

// ---- the evaluation -----------------------------------------------------------------------------------

function positiveInt(v: number, field: string, min = 1): number {
  if (!Number.isInteger(v) || v < min)
    throw new Mask2DiTError('OPTION', `${field}: expected an integer ≥ ${min}, got ${v}`);
  return v;
}

/**
 * Generate every caption set in every mode, read the decoded frames with the oracle and score them.
 * Tensors are all released before it returns (also on error or abort).
 */
export async function evaluate(model: EvalModel, opts: EvaluateOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const n = positiveInt(opts.captionSets ?? 100, 'captionSets');
  const firstSeed = positiveInt(opts.firstSeed ?? HELD_OUT_FIRST_SEED, 'firstSeed', 0);
  if (firstSeed < HELD_OUT_FIRST_SEED)
    throw new Mask2DiTError(
      'OPTION',
      `firstSeed: ${firstSeed} is a training seed; held-out caption sets start at ${HELD_OUT_FIRST_SEED}`,
    );
  const S = positiveInt(opts.scenes ?? 3, 'scenes');
  const steps = positiveInt(opts.steps ?? 20, 'steps');
  const guidance = opts.guidance ?? 6;
  if (!Number.isFinite(guidance) || guidance < 0)
    throw new Mask2DiTError('OPTION', `guidance: expected a number ≥ 0, got ${guidance}`);
  const seed = positiveInt(opts.seed ?? 0, 'seed', 0);
  const modes = [...(opts.modes ?? EVAL_MODES)];
  if (modes.length === 0 || modes.some((m) => !(EVAL_MODES as readonly string[]).includes(m)))
    throw new Mask2DiTError(
      'OPTION',
      `modes: expected some of ${EVAL_MODES.join(', ')}, got ${modes.join(', ') || '(none)'}`,
    );
  const world = { ...opts.world };
  const { tokenizer, textEncoder } = model;
  if (tokenizer === undefined || textEncoder === undefined)
    throw new Mask2DiTError('EVAL', 'the evaluation encodes captions: the model needs a tokenizer and a text encoder');
  const sampler = opts.sampler ?? model.samplerName;
  const negativePrompt = opts.negativePrompt ?? '';

  const sets = selectCaptionSets(n, firstSeed, S, world);
  const clip0 = sampleClip(sets[0]!.seed, world); // geometry of the world (frames, size)
  const geo = sceneGeometry(model.transformer, model.vae, clip0.framesPerScene, clip0.height, clip0.width);
  const noiseShape: [number, number, number, number] = [geo.f, model.transformer.config.in_channels, geo.h, geo.w];
  const components = { transformer: model.transformer, vae: model.vae, scheduler: model.schedulerConfig };
  const ctx: RunContext = {
    model,
    joint: new Mask2DiTPipeline(components),
    extender: new Mask2DiTExtendPipeline(components),
    geo,
    steps,
    guidance,
    sampler,
    ...(guidance > 1 ? { negative: new PromptEncoder(tokenizer, textEncoder).encode([negativePrompt]) } : {}),
    ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
  };

  const results = new Map<EvalMode, ModeResult>(
    modes.map((m) => [m, { mode: m, metrics: summarize([]), seconds: 0, secondsPerClip: 0, clips: [] }]),
  );
  let done = 0;
  try {
    for (const [k, set] of sets.entries()) {
      const genSeed = seed + k;
      const prompts = tf.tidy(() => new PromptEncoder(tokenizer, textEncoder).encode(set.scenes.map((s) => s.caption))); // [S, L, D]
      const noise = Array.from({ length: S }, (_, s) => sceneNoise(genSeed, s, noiseShape));
      try {
        for (const mode of modes) {
          const t = performance.now();
          const latents = await generateClip(ctx, mode, prompts, noise, genSeed);
          let video: tf.Tensor;
          try {
            video = await decodeScenes(model.vae, latents, S); // [1, 3, S·T, H, W] in [0, 1]
          } finally {
            latents.dispose();
          }
          let frames: FramesInput[];
          try {
            frames = await videoToScenes(video, S);
          } finally {
            video.dispose();
          }
          const score = scoreClip(set, frames);
          const seconds = (performance.now() - t) / 1000;
          const r = results.get(mode)!;
          r.clips.push({ ...score, generationSeed: genSeed, seconds });
          r.seconds += seconds;
          r.metrics = summarize(r.clips);
          done++;
          opts.onProgress?.({
            done,
            total: sets.length * modes.length,
            clip: k,
            worldSeed: set.seed,
            mode,
            seconds,
            metrics: r.metrics,
          });
        }
      } finally {
        tf.dispose([prompts, ...noise]);
      }
    }
  } finally {
    ctx.negative?.dispose();
  }
  for (const r of results.values()) r.secondsPerClip = r.clips.length === 0 ? 0 : r.seconds / r.clips.length;
  const modeResults = Object.fromEntries(results) as Partial<Record<EvalMode, ModeResult>>;

  const missed = (scores: ClipScore[]) =>
    scores.filter((c) => !c.visual || c.scenes.some((s) => !s.semantic || !s.sequence)).map((c) => c.seed);
  const { framesPerScene: T, height: H, width: W } = clip0;
  // both reference rows score the rendered clips, each rendered once
  const wantTruth = opts.groundTruth ?? true;
  const wantRoundTrip = opts.vaeRoundTrip ?? true;
  const truthScores: ClipScore[] = [];
  const roundTripScores: ClipScore[] = [];
  let roundTripMs = 0;
  if (wantTruth || wantRoundTrip) {
    for (const set of sets) {
      if (opts.signal?.aborted === true)
        throw new Mask2DiTError('ABORTED', 'evaluation cancelled while scoring the ground truth');
      const scenes = sampleClip(set.seed, world).scenes;
      if (wantTruth)
        truthScores.push(
          scoreClip(
            set,
            scenes.map((s) => ({ data: s.frames, T, H, W })),
          ),
        );
      if (wantRoundTrip) {
        const t = performance.now();
        roundTripScores.push(
          scoreClip(
            set,
            scenes.map((s) => ({ data: roundTripScene(model.vae, s.frames, T, H, W), T, H, W })),
          ),
        );
        roundTripMs += performance.now() - t;
      }
    }
  }
  const groundTruth: EvalResult['groundTruth'] = wantTruth
    ? { metrics: summarize(truthScores), misses: missed(truthScores) }
    : undefined;
  const vaeRoundTrip: EvalResult['vaeRoundTrip'] = wantRoundTrip
    ? { metrics: summarize(roundTripScores), misses: missed(roundTripScores), seconds: roundTripMs / 1000 }
    : undefined;
  const claim = checkClaim(modeResults);
  return {
    settings: {
      captionSets: n,
      firstSeed,
      scenes: S,
      seeds: sets.map((s) => s.seed),
      world: { framesPerScene: clip0.framesPerScene, width: clip0.width, height: clip0.height },
      steps,
      guidance,
      seed,
      sampler,
      negativePrompt,
      modes,
    },
    modes: modeResults,
    ...(groundTruth !== undefined ? { groundTruth } : {}),
    ...(vaeRoundTrip !== undefined ? { vaeRoundTrip } : {}),
    ...(claim !== undefined ? { claim } : {}),
    seconds: (performance.now() - t0) / 1000,
  };
}

// ---- the table ----------------------------------------------------------------------------------------

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The paper-style table: one row per mode (plus the ground truth), shares as percentages. */
export function formatTable(result: EvalResult): string {
  const rows: string[][] = [];
  for (const mode of EVAL_MODES) {
    const r = result.modes[mode];
    if (r !== undefined)
      rows.push([
        MODE_LABELS[mode],
        pct(r.metrics.semantic),
        pct(r.metrics.visual),
        pct(r.metrics.sequence),
        pct(r.metrics.visualColour),
        r.seconds.toFixed(1),
        r.secondsPerClip.toFixed(2),
      ]);
  }
  if (result.vaeRoundTrip !== undefined) {
    const m = result.vaeRoundTrip.metrics;
    rows.push([
      'ground truth through the VAE',
      pct(m.semantic),
      pct(m.visual),
      pct(m.sequence),
      pct(m.visualColour),
      result.vaeRoundTrip.seconds.toFixed(1),
      (result.vaeRoundTrip.seconds / Math.max(1, m.clips)).toFixed(2),
    ]);
  }
  if (result.groundTruth !== undefined) {
    const m = result.groundTruth.metrics;
    rows.push([
      'ground truth (oracle ceiling)',
      pct(m.semantic),
      pct(m.visual),
      pct(m.sequence),
      pct(m.visualColour),
      '-',
      '-',
    ]);
  }
  const head = ['mode', 'semantic', 'visual', 'sequence', 'visual (colour only)', 'seconds', 's/clip'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const s = result.settings;
  return [
    `consistency on ${s.captionSets} held-out caption sets of ${s.scenes} scenes (world seeds ${s.seeds[0]}–${s.seeds[s.seeds.length - 1]}), ${s.steps} steps, ${s.sampler}, guidance ${s.guidance}, seed ${s.seed}`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}

/** One line: the claim, yes/no (or why it was not checked), with the differences behind it. */
export function formatClaim(result: EvalResult): string {
  const c = result.claim;
  if (c === undefined) return `${CLAIM}: not checked (needs all three modes)`;
  const d = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
  const v = c.visualColour;
  return [
    `${CLAIM}: ${c.holds ? 'yes' : 'no'} (visual a−b ${d(c.visual.jointMinusIndependent)}, c−b ${d(c.visual.autoregressiveMinusIndependent)} points; semantic a−b ${d(c.semantic.jointMinusIndependent)}, c−b ${d(c.semantic.autoregressiveMinusIndependent)} points, tolerance ${(100 * c.semanticTolerance).toFixed(0)})`,
    `the same on colour only (diagnostic): ${v.holds ? 'yes' : 'no'} (visual colour a−b ${d(v.jointMinusIndependent)}, c−b ${d(v.autoregressiveMinusIndependent)} points)`,
  ].join('\n');
}
