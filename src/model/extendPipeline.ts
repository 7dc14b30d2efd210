/**
 * Pipeline 2 — autoregressive scene extension (official `CondtionalMultiPromptCogVideoXFunPipeline`).
 *
 * The previous S−1 scenes are clean conditioning segments and the new scene S−1 is the target:
 *   1. conditioning latents: given, or each previous video encoded by the VAE and sampled
 *      (`mean + std·ε`), times `scaling_factor`
 *   2. reference quirk (`conditionNoise: 'reference'`, default): the conditioning latents get the
 *      sampler's t = 0 noise, `add_noise(z, ε, 0)` = √ᾱ₀·z + √(1−ᾱ₀)·ε with ᾱ₀ = 0.99915 (≈ 2.9 % noise),
 *      although the transformer is told their timestep is 0 (clean); `'none'` keeps them clean
 *   3. latents = [conditioning | new scene noise]; the transformer runs with `clipIdx = S−1` and
 *      conditioning timestep 0; after every sampler step the conditioning frames are restored to their
 *      values before the step, so only the new scene changes
 *   4. decode all scenes (reference) or only the new one
 *
 * Extending again: pass `result.cleanLatents` (conditioning as given, before the t = 0 noise, plus the
 * new scene) as `previous.latents` with one more prompt.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { rangeLength, sceneFrameRange } from '../scene/layout.js';
import { usesGuidance } from '../sampler/guidance.js';
import { gaussianNoise, STREAM } from '../sampler/noise.js';
import {
  buildContext,
  checkLatents,
  decodeScenes,
  denoise,
  PipelineBase,
  PipelineInputError,
  samplerNoise,
  sceneGeometry,
  vaeFactors,
  type PromptEmbeddings,
  type SamplingOptions,
} from './pipeline.js';

export type PreviousScenes =
  /** One video per previous scene, reference layout `[1, frames, 3, H, W]`, pixels in [−1, 1]. */
  | { videos: tf.Tensor[] }
  /** Clean latents of the previous scenes `[1, (S−1)·f, C, h, w]` (VAE latents × scaling_factor). */
  | { latents: tf.Tensor };

export interface ExtendOptions extends SamplingOptions {
  /** Prompt embeddings of ALL scenes, previous ones first and the new scene last (as the reference takes them). */
  prompts: PromptEmbeddings;
  negative?: PromptEmbeddings;
  previous: PreviousScenes;
  /** 'reference' (default): t = 0 noise on the conditioning latents; 'none': keep them clean. */
  conditionNoise?: 'reference' | 'none';
  /** Initial noise of the new scene `[1, f, C, h, w]` instead of the seeded draw. */
  latents?: tf.Tensor;
  /** Which scenes to decode: 'all' (reference) or 'new'. */
  decode?: 'all' | 'new';
}

export interface ExtendResult {
  /** The whole sequence as it left the loop `[1, S·f, C, h, w]` (conditioning frames as they entered it). */
  latents: tf.Tensor;
  /** The new scene's latents `[1, f, C, h, w]`. */
  sceneLatents: tf.Tensor;
  /** Clean latents of all S scenes (conditioning before the t = 0 noise), for the next extension. */
  cleanLatents: tf.Tensor;
  /** `[1, 3, S·frames or frames, H, W]` in [0, 1] (absent in latent mode). */
  video?: tf.Tensor;
  timesteps: number[];
}

export class Mask2DiTExtendPipeline extends PipelineBase {
  /** Clean conditioning latents `[1, (S−1)·f, C, h, w]` from the previous scenes, and the scene geometry. */
  private async conditioning(previous: PreviousScenes, scenesBefore: number, seed: number): Promise<tf.Tensor> {
    const C = this.transformer.config.in_channels;
    if ('latents' in previous) {
      const z = previous.latents;
      if (z.rank !== 5 || z.shape[0] !== 1 || z.shape[2] !== C || z.shape[1]! % scenesBefore !== 0) {
        throw new ShapeError(
          'previous.latents',
          `expected [1, ${scenesBefore}·f, ${C}, h, w] for ${scenesBefore} previous scenes, got [${z.shape}]`,
        );
      }
      return tf.clone(z);
    }
    const vae = this.vae;
    if (vae === undefined || !('encode' in vae))
      throw new PipelineInputError(
        'previous.videos',
        'encoding videos needs a VAE with encode(); pass previous.latents instead',
      );
    if (previous.videos.length !== scenesBefore)
      throw new PipelineInputError(
        'previous.videos',
        `got ${previous.videos.length} videos for ${scenesBefore} previous scenes (prompts − 1)`,
      );
    const parts: tf.Tensor[] = [];
    try {
      for (const [s, video] of previous.videos.entries()) {
        if (video.rank !== 5 || video.shape[0] !== 1 || video.shape[2] !== 3)
          throw new ShapeError(
            `previous.videos[${s}]`,
            `expected [1, frames, 3, H, W] (pixels in [−1, 1]), got [${video.shape}]`,
          );
        const x = tf.transpose(video, [0, 2, 1, 3, 4]); // [1, 3, frames, H, W]
        let post;
        try {
          post = await vae.encode(x, { tiling: 'auto' });
        } finally {
          x.dispose();
        }
        const eps = gaussianNoise(post.mean.shape, seed, STREAM.posterior + s);
        parts.push(
          tf.tidy(() =>
            tf.transpose(tf.mul(tf.add(post.mean, tf.mul(post.std, eps)), vae.scalingFactor), [0, 2, 1, 3, 4]),
          ),
        ); // [1, f, C, h, w]
        eps.dispose();
        if (post.dispose !== undefined) post.dispose();
        else tf.dispose([post.mean, post.std, ...(post.logvar !== undefined ? [post.logvar] : [])]);
      }
      return tf.concat(parts, 1);
    } finally {
      tf.dispose(parts);
    }
  }

  /** Generate the last scene given the previous ones. Input tensors are not disposed. */
  async extend(opts: ExtendOptions): Promise<ExtendResult> {
    const { output, seed, sampler, guidance } = this.setUp(opts);
    const context = buildContext(this.transformer, opts.prompts, opts.negative, undefined, usesGuidance(guidance));
    const S = context.scenes;
    const owned: tf.Tensor[] = [context.cond, ...(context.uncond !== undefined ? [context.uncond] : [])];
    try {
      if (S < 2)
        throw new PipelineInputError(
          'prompts',
          `extension needs the prompts of the previous scenes and of the new one (≥ 2), got ${S}`,
        );
      const clean = await this.conditioning(opts.previous, S - 1, seed);
      owned.push(clean);
      // geometry from the conditioning latents: f latent frames per scene, h × w
      const [, Fc, C, h, w] = clean.shape as [number, number, number, number, number];
      const f = Fc / (S - 1);
      const { spatial, temporal } = vaeFactors(this.vae);
      const geo = sceneGeometry(this.transformer, this.vae, temporal * (f - 1) + 1, h * spatial, w * spatial);
      const noised =
        (opts.conditionNoise ?? 'reference') === 'reference'
          ? tf.tidy(() => {
              const eps = gaussianNoise(clean.shape, seed, STREAM.conditionNoise);
              return sampler.addNoise(clean, eps, [0]);
            })
          : tf.clone(clean);
      owned.push(noised);
      let fresh: tf.Tensor;
      if (opts.latents !== undefined) {
        checkLatents('latents', opts.latents, [1, geo.f, C, h, w]);
        fresh = tf.mul(opts.latents, sampler.initNoiseSigma);
      } else {
        const n = gaussianNoise([1, geo.f, C, h, w], seed, STREAM.latents);
        fresh = tf.mul(n, sampler.initNoiseSigma);
        n.dispose();
      }
      const latents = tf.concat([noised, fresh], 1); // [1, S·f, C, h, w]
      fresh.dispose();
      const rope = this.transformer.config.use_rotary_positional_embeddings
        ? this.transformer.ropeFor(S * geo.f, h, w)
        : undefined;
      const frames = sceneFrameRange(S * geo.f, S, S - 1); // the new scene's latent frames
      if (rope !== undefined) owned.push(rope.cos, rope.sin);
      const final = await denoise({
        transformer: this.transformer,
        sampler,
        latents,
        context,
        guidance,
        ...(rope !== undefined ? { rope } : {}),
        target: { clipIdx: S - 1, timestepCond: 0, frames },
        noise: samplerNoise(seed),
        cfgBatch: opts.cfgBatch ?? 'split',
        ...(opts.onStep !== undefined ? { onStep: opts.onStep } : {}),
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.capture !== undefined ? { capture: opts.capture } : {}),
      });
      const sceneLatents = tf.slice(final, [0, frames.start], [-1, rangeLength(frames)]);
      const cleanLatents = tf.concat([clean, sceneLatents], 1);
      const result: ExtendResult = { latents: final, sceneLatents, cleanLatents, timesteps: [...sampler.timesteps] };
      if (output === 'latent') return result;
      try {
        result.video =
          (opts.decode ?? 'all') === 'all'
            ? await decodeScenes(this.vae!, final, S)
            : await decodeScenes(this.vae!, sceneLatents, 1);
        return result;
      } catch (e) {
        tf.dispose([final, sceneLatents, cleanLatents]);
        throw e;
      }
    } finally {
      tf.dispose(owned);
    }
  }
}
