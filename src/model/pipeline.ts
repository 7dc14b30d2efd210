/**
 * Pipeline 1 — a fixed number of scenes (official `MultiPromptCogVideoXFunPipeline`).
 *
 *   1. per-scene prompt embeddings → one text sequence `[B, S·T, D]`; with guidance (g > 1) the
 *      unconditional branch uses the negative embedding in every scene block
 *   2. initial latents `[1, S·f, C, h, w]` from the seeded generator (or given), f = (frames−1)/4 + 1
 *   3. RoPE tables for all S·f latent frames (time positions continuous across scenes)
 *   4. `denoise`: for each timestep, the transformer under the symmetric Mask²DiT mask, guidance, one
 *      sampler step; a progress callback per step; an AbortSignal cancels between steps
 *   5. each scene decoded separately by the VAE (`z / scaling_factor`), `(x/2 + 0.5).clamp(0, 1)`,
 *      frames concatenated → video `[1, 3, S·frames, H, W]`; or latents only
 *
 * The VAE is reached through `VideoDecoder` / `VideoEncoder` below, so anything with `decode` (and
 * `encode` for the extension pipeline) and `scalingFactor` fits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { COGVIDEOX_5B_SCHEDULER, type SchedulerConfig } from '../config/schedulerConfig.js';
import { Mask2DiTError, ShapeError } from '../errors.js';
import { createSampler, type SamplerOptions } from '../sampler/index.js';
import {
  combineBatchedGuidance,
  combineGuidance,
  guidanceScaleAt,
  usesGuidance,
  type DynamicCfg,
  type GuidanceSchedule,
} from '../sampler/guidance.js';
import { gaussianNoise, STREAM } from '../sampler/noise.js';
import type { NoiseSource, Sampler, SamplerName } from '../sampler/sampler.js';
import type { Probe } from '../layers/probe.js';
import { rangeLength, sceneFrameRange, type FrameRange } from '../scene/layout.js';
import type { Mask2DiTTransformer } from './transformer.js';

// ---- the VAE as the pipelines see it --------------------------------------------------------------

export interface VideoDecoder {
  /** Latents the transformer sees = VAE latents × scalingFactor. */
  readonly scalingFactor: number;
  /** Pixels per latent pixel (default 8 = 2^(len(block_out_channels) − 1)). */
  readonly spatialCompression?: number;
  /** Frames per latent frame (default 4): `frames = 4·(latentFrames − 1) + 1`. */
  readonly temporalCompression?: number;
  /**
   * VAE latents `[B, C, t, h, w]` → pixels `[B, 3, frames, H, W]` in about [−1, 1]. The pipelines pass
   * `{ tiling: 'auto' }`: tile the frame only when it does not fit the backend's memory (CogVideoXVAE).
   */
  decode(z: tf.Tensor, options?: { tiling?: 'auto' }): Promise<tf.Tensor> | tf.Tensor;
}

/** A diagonal Gaussian over latents; the pipeline samples `mean + std·ε` with its own noise. */
export interface LatentPosterior {
  mean: tf.Tensor;
  std: tf.Tensor;
  logvar?: tf.Tensor;
  dispose?(): void;
}

export interface VideoEncoder extends VideoDecoder {
  /** Pixels `[B, 3, frames, H, W]` in [−1, 1] → posterior over VAE latents `[B, C, t, h, w]`. */
  encode(x: tf.Tensor, options?: { tiling?: 'auto' }): Promise<LatentPosterior> | LatentPosterior;
}

// ---- options and results --------------------------------------------------------------------------

/** Bad pipeline input (counts, sizes, missing parts): `field` names the option. */
export class PipelineInputError extends Mask2DiTError {
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super('PIPELINE_INPUT', `${field}: ${detail}`);
  }
}

/** The run was cancelled through its AbortSignal. */
export class PipelineAbortedError extends Mask2DiTError {
  constructor(readonly step: number) {
    super('ABORTED', `pipeline cancelled before step ${step}`);
  }
}

export interface StepProgress {
  /** 0-based step index. */
  step: number;
  steps: number;
  /** Timestep value given to the model. */
  timestep: number;
  /** Guidance scale used at this step (1 without guidance). */
  guidanceScale: number;
  /** Latents after this step `[1, F, C, h, w]`; valid only during the callback (do not dispose). */
  latents: tf.Tensor;
}

/** Prompt embeddings: `[S, T, D]`, or one `[T, D]` / `[1, T, D]` tensor per scene. */
export type PromptEmbeddings = tf.Tensor | tf.Tensor[];

export interface SamplingOptions {
  steps: number;
  /** Classifier-free guidance scale; guidance runs when > 1 (default 6, the reference default). */
  guidanceScale?: number;
  /** CogVideoX dynamic CFG (default 'off'; 'reference' reproduces the reference formula). */
  dynamicCfg?: DynamicCfg;
  /** Seed of all noise drawn by the run (default 0). */
  seed?: number;
  /** Sampler name (default 'ddim') or a ready sampler (its `setTimesteps` is called). */
  sampler?: SamplerName | Sampler;
  samplerOptions?: SamplerOptions;
  /** 'split' (default): unconditional and conditional branches as two batch-1 calls (half the
   * activation memory); 'batched': one batch-2 call as the reference does. Same numbers. */
  cfgBatch?: 'split' | 'batched';
  onStep?: (p: StepProgress) => void | Promise<void>;
  signal?: AbortSignal;
  /** 'video' (default, needs a VAE) or 'latent' (skip the VAE). */
  output?: 'video' | 'latent';
  /** Attention query chunk size passed to the transformer. */
  chunkSize?: number;
  /** Capture intermediates at one step (0-based): the probe is given to the conditional branch's forward. */
  capture?: StepCapture;
}

/** A probe for the transformer forward of one denoising step (the conditional branch under guidance). */
export interface StepCapture {
  step: number;
  probe: Probe;
}

export interface GenerateOptions extends SamplingOptions {
  /** One embedding block per scene, each `[max_text_seq_length, text_embed_dim]`. */
  prompts: PromptEmbeddings;
  /** Negative prompt embedding: one `[T, D]` block used for every scene, or one per scene. Needed with guidance. */
  negative?: PromptEmbeddings;
  /** Expected number of scenes (checked against the prompts). */
  scenes?: number;
  /** Frames per scene, of the form 4k + 1. */
  frames: number;
  height: number;
  width: number;
  /** Initial noise `[1, S·f, C, h, w]` instead of the seeded draw (e.g. to replay a reference run). */
  latents?: tf.Tensor;
}

export interface PipelineResult {
  /** Final latents `[1, S·f, C, h, w]`. */
  latents: tf.Tensor;
  /** Decoded video `[1, 3, S·frames, H, W]` in [0, 1] (absent in latent mode). */
  video?: tf.Tensor;
  timesteps: number[];
}

// ---- shared pieces --------------------------------------------------------------------------------

export interface PipelineComponents {
  transformer: Mask2DiTTransformer;
  vae?: VideoDecoder | VideoEncoder;
  /** Scheduler config for 'ddim'/'dpm' (default: CogVideoX-5B) or 'flow-euler'. */
  scheduler?: SchedulerConfig;
}

/** Latent geometry of one scene. */
export interface SceneGeometry {
  frames: number;
  height: number;
  width: number;
  /** latent frames, height, width */
  f: number;
  h: number;
  w: number;
}

export function vaeFactors(vae: VideoDecoder | undefined): { spatial: number; temporal: number } {
  return { spatial: vae?.spatialCompression ?? 8, temporal: vae?.temporalCompression ?? 4 };
}

/** Check frames / height / width against the VAE and patch factors. */
export function sceneGeometry(
  transformer: Mask2DiTTransformer,
  vae: VideoDecoder | undefined,
  frames: number,
  height: number,
  width: number,
): SceneGeometry {
  const { spatial, temporal } = vaeFactors(vae);
  const p = transformer.config.patch_size;
  if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % temporal !== 0) {
    throw new PipelineInputError(
      'frames',
      `frames per scene must have the form ${temporal}k + 1 (1, ${temporal + 1}, ${2 * temporal + 1}, …), got ${frames}`,
    );
  }
  const unit = spatial * p;
  for (const [name, v] of [
    ['height', height],
    ['width', width],
  ] as const) {
    if (!Number.isInteger(v) || v < unit || v % unit !== 0) {
      throw new PipelineInputError(
        name,
        `must be a positive multiple of ${unit} (VAE factor ${spatial} × patch size ${p}), got ${v}`,
      );
    }
  }
  return { frames, height, width, f: (frames - 1) / temporal + 1, h: height / spatial, w: width / spatial };
}

/** Normalise embeddings to one `[T, D]` tensor per scene (new tensors; caller disposes) and check sizes. */
export function sceneBlocks(transformer: Mask2DiTTransformer, emb: PromptEmbeddings, field: string): tf.Tensor[] {
  const { max_text_seq_length: T, text_embed_dim: D } = transformer.config;
  const list = Array.isArray(emb) ? emb : emb.rank === 3 ? tf.unstack(emb, 0) : [emb];
  const unstacked = Array.isArray(emb) || emb.rank !== 3 ? [] : list;
  const out: tf.Tensor[] = [];
  try {
    list.forEach((e, s) => {
      const shape = e.rank === 3 && e.shape[0] === 1 ? e.shape.slice(1) : e.shape;
      if (shape[shape.length - 1] !== D)
        throw new ShapeError(
          `${field}[${s}]`,
          `embedding width ${shape[shape.length - 1]} does not match the transformer's text_embed_dim ${D} (shape [${e.shape}])`,
        );
      if (shape.length !== 2 || shape[0] !== T)
        throw new ShapeError(
          `${field}[${s}]`,
          `expected [${T}, ${D}] (max_text_seq_length × text_embed_dim), got [${e.shape}]`,
        );
      out.push(tf.reshape(e, [T, D]));
    });
    return out;
  } catch (e) {
    tf.dispose(out);
    throw e;
  } finally {
    tf.dispose(unstacked);
  }
}

/**
 * The transformer's text input: `[1, S·T, D]` (conditional) and, with guidance, the unconditional
 * `[1, S·T, D]` with the negative block(s) in every scene. Checks the prompt count.
 */
export function buildContext(
  transformer: Mask2DiTTransformer,
  prompts: PromptEmbeddings,
  negative: PromptEmbeddings | undefined,
  scenes: number | undefined,
  guidance: boolean,
): { cond: tf.Tensor; uncond?: tf.Tensor; scenes: number } {
  const blocks = sceneBlocks(transformer, prompts, 'prompts');
  const S = blocks.length;
  const fail = (e: Error) => {
    tf.dispose(blocks);
    throw e;
  };
  if (S === 0) fail(new PipelineInputError('prompts', 'at least one scene prompt embedding is needed'));
  if (scenes !== undefined && scenes !== S)
    fail(
      new PipelineInputError('prompts', `got ${S} prompt embeddings for ${scenes} scenes; give exactly one per scene`),
    );
  if (!transformer.config.multiScene && S !== 1)
    fail(
      new PipelineInputError(
        'prompts',
        `the transformer (${transformer.config._class_name}) takes one scene, got ${S} prompts`,
      ),
    );
  if (guidance && negative === undefined)
    fail(
      new PipelineInputError(
        'negative',
        'guidance scale > 1 needs negative prompt embeddings (e.g. the text encoder output of the empty prompt)',
      ),
    );
  let negBlocks: tf.Tensor[] = [];
  try {
    if (guidance) {
      negBlocks = sceneBlocks(transformer, negative!, 'negative');
      if (negBlocks.length !== 1 && negBlocks.length !== S)
        throw new PipelineInputError(
          'negative',
          `expected one negative embedding or one per scene (${S}), got ${negBlocks.length}`,
        );
    }
    return tf.tidy(() => {
      const cond = tf.expandDims(tf.concat(blocks, 0), 0); // [1, S·T, D]
      if (!guidance) return { cond, scenes: S };
      const neg = negBlocks.length === 1 ? Array<tf.Tensor>(S).fill(negBlocks[0]!) : negBlocks;
      return { cond, uncond: tf.expandDims(tf.concat(neg, 0), 0), scenes: S };
    });
  } finally {
    tf.dispose(negBlocks);
    tf.dispose(blocks);
  }
}

export function resolveSampler(components: PipelineComponents, opts: SamplingOptions): Sampler {
  const s = opts.sampler ?? 'ddim';
  const sampler =
    typeof s === 'string'
      ? createSampler(
          s,
          s === 'flow-euler' ? components.scheduler : (components.scheduler ?? COGVIDEOX_5B_SCHEDULER),
          opts.samplerOptions,
        )
      : s;
  if (!Number.isInteger(opts.steps) || opts.steps < 1)
    throw new PipelineInputError('steps', `must be a positive integer, got ${opts.steps}`);
  sampler.setTimesteps(opts.steps);
  return sampler;
}

export function checkSeed(seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER)
    throw new PipelineInputError('seed', `must be an integer in [0, 2^53), got ${seed}`);
  return seed;
}

/** DPM's in-step noise from the run's seed. */
export function samplerNoise(seed: number): NoiseSource {
  return (shape, step, draw) => gaussianNoise(shape, seed, STREAM.sampler + 2 * step + draw);
}

export function checkLatents(name: string, x: tf.Tensor, expected: number[]): void {
  if (x.shape.join() !== expected.join()) throw new ShapeError(name, `expected [${expected}], got [${x.shape}]`);
}

const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export interface DenoiseArgs {
  transformer: Mask2DiTTransformer;
  sampler: Sampler;
  /** Initial latents `[1, F, C, h, w]`; consumed (disposed) by the loop. */
  latents: tf.Tensor;
  context: { cond: tf.Tensor; uncond?: tf.Tensor };
  guidance: GuidanceSchedule;
  rope?: { cos: tf.Tensor; sin: tf.Tensor };
  /** Scene extension: target scene, conditioning timestep, and the target's latent frames (every other frame is restored after each step). */
  target?: { clipIdx: number; timestepCond: number; frames: FrameRange };
  noise: NoiseSource;
  cfgBatch: 'split' | 'batched';
  onStep?: (p: StepProgress) => void | Promise<void>;
  signal?: AbortSignal;
  chunkSize?: number;
  capture?: StepCapture;
}

/** The model prediction at one step, guided when there is an unconditional context. */
function predict(a: DenoiseArgs, x: tf.Tensor, t: number, g: number, probe: Probe | undefined): tf.Tensor {
  const probed = probe !== undefined ? { probe } : {};
  const common = {
    ...(a.rope !== undefined ? { rope: a.rope } : {}),
    ...(a.target !== undefined ? { clipIdx: a.target.clipIdx, timestepCond: a.target.timestepCond } : {}),
    ...(a.chunkSize !== undefined ? { chunkSize: a.chunkSize } : {}),
  };
  const { cond, uncond } = a.context;
  if (uncond === undefined)
    return a.transformer.forward({ hiddenStates: x, encoderHiddenStates: cond, timestep: [t], ...common, ...probed });
  if (a.cfgBatch === 'batched') {
    return tf.tidy(() => {
      const out = a.transformer.forward({
        hiddenStates: tf.concat([x, x], 0),
        encoderHiddenStates: tf.concat([uncond, cond], 0),
        timestep: [t, t],
        ...common,
        ...probed,
      }); // captures: row 1 is the conditional branch
      return combineBatchedGuidance(out, g); // rows: [uncond, cond]
    });
  }
  return tf.tidy(() => {
    const u = a.transformer.forward({ hiddenStates: x, encoderHiddenStates: uncond, timestep: [t], ...common });
    const c = a.transformer.forward({
      hiddenStates: x,
      encoderHiddenStates: cond,
      timestep: [t],
      ...common,
      ...probed,
    });
    return combineGuidance(u, c, g);
  });
}

/** The sampling loop shared by both pipelines; returns the final latents. */
export async function denoise(a: DenoiseArgs): Promise<tf.Tensor> {
  const { sampler } = a;
  const steps = sampler.timesteps.length;
  let latents = a.latents;
  try {
    for (let i = 0; i < steps; i++) {
      if (a.signal?.aborted === true) throw new PipelineAbortedError(i);
      const t = sampler.timesteps[i]!;
      const g = usesGuidance(a.guidance) ? guidanceScaleAt(a.guidance, t) : 1;
      const input = sampler.scaleModelInput(latents, i);
      let v: tf.Tensor;
      try {
        v = predict(a, input, t, g, a.capture?.step === i ? a.capture.probe : undefined);
      } finally {
        input.dispose();
      }
      const out = sampler.step(v, i, latents, { noise: a.noise });
      v.dispose();
      out.predOriginalSample.dispose();
      let next = out.prevSample;
      const F = latents.shape[1]!;
      if (a.target !== undefined && (a.target.frames.start > 0 || a.target.frames.end < F)) {
        // the conditioning frames keep their values from before the step (reference behaviour)
        const { start, end } = a.target.frames;
        const prev = latents;
        next = tf.tidy(() =>
          tf.concat(
            [
              ...(start > 0 ? [tf.slice(prev, [0, 0], [-1, start])] : []),
              tf.slice(out.prevSample, [0, start], [-1, end - start]),
              ...(end < F ? [tf.slice(prev, [0, end], [-1, -1])] : []),
            ],
            1,
          ),
        );
        out.prevSample.dispose();
      }
      latents.dispose();
      latents = next;
      if (a.onStep !== undefined) await a.onStep({ step: i, steps, timestep: t, guidanceScale: g, latents });
      await nextTick(); // let an abort (or other work) run between steps
    }
    return latents;
  } catch (e) {
    latents.dispose();
    throw e;
  } finally {
    sampler.reset();
  }
}

/** Decode `[1, S·f, C, h, w]` scene by scene → `[1, 3, S·frames, H, W]` in [0, 1]. */
export async function decodeScenes(vae: VideoDecoder, latents: tf.Tensor, scenes: number): Promise<tf.Tensor> {
  const F = latents.shape[1]!;
  const parts: tf.Tensor[] = [];
  try {
    for (let s = 0; s < scenes; s++) {
      const r = sceneFrameRange(F, scenes, s);
      const z = tf.tidy(() =>
        tf.div(tf.transpose(tf.slice(latents, [0, r.start], [-1, rangeLength(r)]), [0, 2, 1, 3, 4]), vae.scalingFactor),
      ); // [1, C, f, h, w]
      let x: tf.Tensor;
      try {
        x = await vae.decode(z, { tiling: 'auto' });
      } finally {
        z.dispose();
      }
      parts.push(tf.tidy(() => tf.clipByValue(tf.add(tf.div(x, 2), 0.5), 0, 1)));
      x.dispose();
    }
    return tf.concat(parts, 2); // [1, 3, S·frames, H, W]
  } finally {
    tf.dispose(parts);
  }
}

// ---- Pipeline 1 -----------------------------------------------------------------------------------

/** What both pipelines hold: the transformer, an optional VAE and the scheduler config. */
export abstract class PipelineBase {
  readonly transformer: Mask2DiTTransformer;
  readonly vae: VideoDecoder | VideoEncoder | undefined;
  readonly scheduler: SchedulerConfig | undefined;

  constructor(components: PipelineComponents) {
    this.transformer = components.transformer;
    this.vae = components.vae;
    this.scheduler = components.scheduler;
  }

  /** What generate and extend set up alike: the output kind (video needs a VAE), the seed, the sampler and the guidance schedule. */
  protected setUp(opts: SamplingOptions): {
    output: 'video' | 'latent';
    seed: number;
    sampler: Sampler;
    guidance: GuidanceSchedule;
  } {
    const output = opts.output ?? 'video';
    if (output === 'video' && this.vae === undefined)
      throw new PipelineInputError('output', "'video' needs a VAE; pass one to the pipeline or use output 'latent'");
    const seed = checkSeed(opts.seed ?? 0);
    const sampler = resolveSampler(
      { transformer: this.transformer, ...(this.scheduler !== undefined ? { scheduler: this.scheduler } : {}) },
      opts,
    );
    const guidance: GuidanceSchedule = {
      scale: opts.guidanceScale ?? 6,
      dynamic: opts.dynamicCfg ?? 'off',
      steps: sampler.timesteps.length,
      numTrainTimesteps: sampler.numTrainTimesteps,
    };
    return { output, seed, sampler, guidance };
  }
}

export class Mask2DiTPipeline extends PipelineBase {
  /** Generate all scenes jointly. Input tensors are not disposed; the result's tensors belong to the caller. */
  async generate(opts: GenerateOptions): Promise<PipelineResult> {
    const { output, seed, sampler, guidance } = this.setUp(opts);
    const geo = sceneGeometry(this.transformer, this.vae, opts.frames, opts.height, opts.width);
    const context = buildContext(this.transformer, opts.prompts, opts.negative, opts.scenes, usesGuidance(guidance));
    const S = context.scenes;
    const C = this.transformer.config.in_channels;
    const shape = [1, S * geo.f, C, geo.h, geo.w];
    const owned: tf.Tensor[] = [context.cond, ...(context.uncond !== undefined ? [context.uncond] : [])];
    try {
      let latents: tf.Tensor;
      if (opts.latents !== undefined) {
        checkLatents('latents', opts.latents, shape);
        latents = tf.clone(opts.latents);
      } else {
        latents = gaussianNoise(shape, seed, STREAM.latents);
      }
      if (sampler.initNoiseSigma !== 1) {
        const unscaled = latents;
        latents = tf.mul(unscaled, sampler.initNoiseSigma);
        unscaled.dispose();
      }
      const rope = this.transformer.config.use_rotary_positional_embeddings
        ? this.transformer.ropeFor(S * geo.f, geo.h, geo.w)
        : undefined;
      if (rope !== undefined) owned.push(rope.cos, rope.sin);
      const final = await denoise({
        transformer: this.transformer,
        sampler,
        latents,
        context,
        guidance,
        ...(rope !== undefined ? { rope } : {}),
        noise: samplerNoise(seed),
        cfgBatch: opts.cfgBatch ?? 'split',
        ...(opts.onStep !== undefined ? { onStep: opts.onStep } : {}),
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.capture !== undefined ? { capture: opts.capture } : {}),
      });
      const timesteps = [...sampler.timesteps];
      if (output === 'latent') return { latents: final, timesteps };
      try {
        return { latents: final, video: await decodeScenes(this.vae!, final, S), timesteps };
      } catch (e) {
        final.dispose();
        throw e;
      }
    } finally {
      tf.dispose(owned);
    }
  }
}
