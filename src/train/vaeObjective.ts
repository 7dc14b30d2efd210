/**
 * The VAE's training objective on scenes of the synthetic world:
 *
 *   loss = Σ w·|x̂ − x| / Σ w + λ_edge · Σ_d Σ w_d·|∂_d x̂ − ∂_d x| / Σ w_d + λ_KL · mean KL(q(z|x) ‖ N(0, I)),
 *   x̂ = decode(μ + σ·ε)
 *
 * with pixel weight w = 1 on the background and w = `foregroundWeight` on the character (pixels whose
 * colour differs from the scene's background, read at the corner, which the world keeps clear). The
 * character covers under a tenth of a frame; a plain L1 (weight 1) learns the background long before
 * the character's colour and shape, which are what the oracle reads.
 *
 * The edge term (`edgeWeight` λ_edge, 0 by default) compares horizontal and vertical pixel differences
 * ∂_d (d = x, y), weighted by the larger w of the two pixels, so the character's outline counts: an L1
 * alone lets a small decoder answer an 18-px triangle with a soft blob of the right colour (the oracle
 * then reads its shape at chance), which the edge term penalises along the whole outline.
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
  /** Weight λ_edge of the pixel-difference (edge) term; 0 or undefined: none. */
  edgeWeight?: number;
}

/** Differences of a `[B, C, T, H, W]` tensor along H and along W: `[B, C, T, H−1, W]`, `[B, C, T, H, W−1]`. */
function differences(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const [B, C, T, H, W] = x.shape as [number, number, number, number, number];
  const dy = tf.sub(
    tf.slice(x, [0, 0, 0, 1, 0], [B, C, T, H - 1, W]),
    tf.slice(x, [0, 0, 0, 0, 0], [B, C, T, H - 1, W]),
  );
  const dx = tf.sub(
    tf.slice(x, [0, 0, 0, 0, 1], [B, C, T, H, W - 1]),
    tf.slice(x, [0, 0, 0, 0, 0], [B, C, T, H, W - 1]),
  );
  return [dy, dx];
}

/** Weights of the differences: the larger pixel weight of each neighbouring pair, `[B, 1, T, H−1, W]` and `[B, 1, T, H, W−1]`. */
function differenceWeights(w: tf.Tensor): [tf.Tensor, tf.Tensor] {
  const [B, , T, H, W] = w.shape as [number, number, number, number, number];
  return [
    tf.maximum(tf.slice(w, [0, 0, 0, 1, 0], [B, 1, T, H - 1, W]), tf.slice(w, [0, 0, 0, 0, 0], [B, 1, T, H - 1, W])),
    tf.maximum(tf.slice(w, [0, 0, 0, 0, 1], [B, 1, T, H, W - 1]), tf.slice(w, [0, 0, 0, 0, 0], [B, 1, T, H, W - 1])),
  ];
}

/** Σ w·|a − b| / (C·Σ w) over `[B, C, …]` tensors and `[B, 1, …]` weights (w undefined: the plain mean). */
function weightedL1(a: tf.Tensor, b: tf.Tensor, w: tf.Tensor | undefined): tf.Scalar {
  const err = tf.abs(tf.sub(a, b));
  if (w === undefined) return tf.mean(err);
  return tf.div(tf.sum(tf.mul(err, w)), tf.mul(tf.sum(w), a.shape[1]!));
}

/**
 * The edge term Σ_d Σ w_d·|∂_d x̂ − ∂_d x| / (C·Σ w_d), d = y, x, of a reconstruction `[B, C, T, H, W]`
 * (w `[B, 1, T, H, W]`, undefined: all 1).
 */
export function edgeLoss(xHat: tf.Tensor, x: tf.Tensor, w: tf.Tensor | undefined): tf.Scalar {
  return tf.tidy(() => {
    const [hy, hx] = differences(xHat);
    const [ty, tx] = differences(x);
    const [wy, wx] = w === undefined ? [undefined, undefined] : differenceWeights(w);
    return tf.add(weightedL1(hy, ty, wy), weightedL1(hx, tx, wx));
  });
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
          const xHat = vae.decode(z); // [B, 3, T, H, W]
          const edge = opts.edgeWeight ?? 0;
          const l1 = weightedL1(xHat, x, w);
          const recon = edge > 0 ? tf.add(l1, tf.mul(edgeLoss(xHat, x, w), edge)) : l1;
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
