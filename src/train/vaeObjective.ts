/**
 * The VAE's training objective on scenes of the synthetic world:
 *
 *   loss = Σ w·|x̂ − x| / Σ w + λ_KL · mean KL(q(z|x) ‖ N(0, I)),   x̂ = decode(μ + σ·ε)
 *
 * with pixel weight w = 1 on the background and w = `foregroundWeight` on the character (pixels whose
 * colour differs from the scene's background, read at the corner, which the world keeps clear). The
 * character covers under a tenth of a frame; a plain L1 (weight 1) learns the background long before
 * the character's colour and shape, which are what the oracle reads.
 *
 * with KL per latent element ½(μ² + σ² − 1 − log σ²), λ_KL = 1e-4 by default (small, as video VAEs
 * are trained: the latents stay close to the data, the KL only keeps their scale in check). Decoding
 * uses the default frame batching, so training sees the GroupNorm statistics inference uses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { sampleClip, type WorldOptions } from '../data/world.js';
import type { CogVideoXVAE } from '../model/vae.js';
import type { Objective } from './trainer.js';

export interface VaeObjectiveOptions {
  batchSize: number;
  klWeight: number;
  world: WorldOptions;
  /** Seeds of training clips are drawn from [0, clipSeeds) (held-out evaluation uses seeds above it). */
  clipSeeds: number;
  /** Loss weight of character pixels relative to background ones (1: plain L1). */
  foregroundWeight?: number;
}

/** Per-pixel loss weights `[B, 1, T, H, W]`: `fg` where any channel differs from the clip's corner colour by > 0.05, else 1. */
export function foregroundWeights(
  data: Float32Array,
  B: number,
  T: number,
  H: number,
  W: number,
  fg: number,
): Float32Array {
  const plane = T * H * W;
  const w = new Float32Array(B * plane).fill(1);
  for (let b = 0; b < B; b++) {
    const x = data.subarray(b * 3 * plane, (b + 1) * 3 * plane); // [3, T, H, W]
    const bg = [x[0]!, x[plane]!, x[2 * plane]!];
    for (let i = 0; i < plane; i++) {
      if (
        Math.abs(x[i]! - bg[0]!) > 0.05 ||
        Math.abs(x[plane + i]! - bg[1]!) > 0.05 ||
        Math.abs(x[2 * plane + i]! - bg[2]!) > 0.05
      )
        w[b * plane + i] = fg;
    }
  }
  return w;
}

/** One scene `[3, T, H, W]` of a world clip chosen by two uniforms. */
export function worldScene(u1: number, u2: number, opts: VaeObjectiveOptions): Float32Array {
  const clip = sampleClip(Math.floor(u1 * opts.clipSeeds), opts.world);
  return clip.scenes[Math.min(clip.scenes.length - 1, Math.floor(u2 * clip.scenes.length))]!.frames;
}

export function vaeObjective(vae: CogVideoXVAE, opts: VaeObjectiveOptions): Objective {
  return (_step, rng) => {
    const B = opts.batchSize;
    const u = rng.uniforms(2 * B);
    const scenes = Array.from({ length: B }, (_, i) => worldScene(u[2 * i]!, u[2 * i + 1]!, opts));
    const n = scenes[0]!.length;
    const data = new Float32Array(n * B);
    scenes.forEach((s, i) => data.set(s, i * n));
    const T = opts.world.framesPerScene ?? 9;
    const H = opts.world.height ?? 64;
    const W = opts.world.width ?? 64;
    const x = tf.tensor(data, [B, 3, T, H, W], 'float32'); // [B, C, T, H, W]
    const fg = opts.foregroundWeight ?? 1;
    const w = fg === 1 ? undefined : tf.tensor(foregroundWeights(data, B, T, H, W, fg), [B, 1, T, H, W], 'float32');
    let noise: tf.Tensor | undefined;
    return {
      loss: () =>
        tf.tidy(() => {
          const post = vae.encode(x);
          noise ??= tf.keep(tf.tensor(rng.gaussians(post.mean.size), post.mean.shape, 'float32'));
          const z = tf.add(post.mean, tf.mul(post.std, noise)); // [B, Cz, F, h, w]
          const err = tf.abs(tf.sub(vae.decode(z), x)); // [B, 3, T, H, W]
          const recon = w === undefined ? tf.mean(err) : tf.div(tf.sum(tf.mul(err, w)), tf.mul(tf.sum(w), 3));
          const kl = tf.mul(
            0.5,
            tf.mean(tf.sub(tf.add(tf.square(post.mean), tf.exp(post.logvar)), tf.add(1, post.logvar))),
          );
          return tf.add(recon, tf.mul(kl, opts.klWeight)) as tf.Scalar;
        }),
      dispose: () => tf.dispose([x, ...(w !== undefined ? [w] : []), ...(noise !== undefined ? [noise] : [])]),
    };
  };
}
