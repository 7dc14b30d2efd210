/**
 * The DiT's training objective over a dataset of multi-scene latent clips: seeded batches, the
 * flow-matching loss with the joint (mask 1) or, with probability `pConditional`, the segment-level
 * conditional (mask 2) objective. Prompts come either as fixed embeddings or as token ids run through
 * a text encoder that is trained jointly (its gradients flow from the DiT loss).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import type { Mask2DiTTransformer } from '../model/transformer.js';
import { drawFlow, flowMatchingLoss, type SigmaSampling } from './flowMatchingObjective.js';
import type { Objective } from './trainer.js';

/** Clips of S scenes: latents `[F, C, h, w]` each (scenes' frames concatenated) and their prompts. */
export interface LatentDataset {
  size: number;
  scenes: number;
  /** `[F, C, h, w]` */
  latentShape: [number, number, number, number];
  latents(i: number): Float32Array;
  /** Token ids `[S·T]` (with a text encoder) … */
  tokens?(i: number): Int32Array;
  /** … or prompt embeddings `[S·T, textDim]`. */
  embeddings?(i: number): Float32Array;
  /** `[F, h, w]`, 1 where a latent pixel covers the character (for `foregroundWeight`). */
  foreground?(i: number): Uint8Array;
}

/** Anything that maps token ids `[B, L]` to embeddings `[B, L, D]` with trainable variables. */
export interface TextConditioner {
  encode(ids: tf.Tensor): tf.Tensor;
}

export interface DitObjectiveOptions {
  batchSize: number;
  /** Probability of the segment-level conditional objective per batch. */
  pConditional: number;
  /** Probability of replacing a scene's prompt by the empty prompt (so classifier-free guidance works). */
  pDropText?: number;
  /** Token ids of the empty prompt, one scene's worth (needed with `pDropText`). */
  emptyTokens?: Int32Array;
  /** Loss weight of the character's latent pixels relative to the background's (default 1: plain mean). */
  foregroundWeight?: number;
  /**
   * Fade the character weight out with the noise level: `1 + (w − 1)·max(0, 1 − σ/σmax)` (full at σ = 0,
   * none from σmax up), where the input still shows where the character is. Default: constant.
   */
  foregroundSigmaMax?: number;
  /** What the model learns to predict (default the velocity). */
  prediction?: 'flow_prediction' | 'sample';
  /** How σ is drawn per clip (default uniform). */
  sigmaSampling?: SigmaSampling;
  /** Location m of logit-normal σ = sigmoid(m + N(0, 1)) (default 0; > 0 favours high σ). */
  sigmaLocation?: number;
  /** λ of the motion term (flowMatchingObjective's `temporalDifferenceError` on x̂₀; default 0: none). */
  temporalWeight?: number;
}

function checkDataset(model: Mask2DiTTransformer, data: LatentDataset, text: TextConditioner | undefined): void {
  if (data.size < 1) throw new Mask2DiTError('DATA', 'training data is empty');
  if (text !== undefined && data.tokens === undefined)
    throw new Mask2DiTError('DATA', 'a text encoder is being trained but the dataset has no token ids');
  if (text === undefined && data.embeddings === undefined)
    throw new Mask2DiTError('DATA', 'the dataset has neither prompt embeddings nor token ids');
  const [F, C] = data.latentShape;
  if (C !== model.config.in_channels)
    throw new Mask2DiTError(
      'DATA',
      `latents have ${C} channels, the transformer's in_channels is ${model.config.in_channels}`,
    );
  if (F % data.scenes !== 0)
    throw new Mask2DiTError('DATA', `${F} latent frames do not split into ${data.scenes} scenes`);
  if (data.tokens !== undefined && data.tokens(0).length !== data.scenes * model.config.max_text_seq_length) {
    throw new Mask2DiTError(
      'DATA',
      `token ids have ${data.tokens(0).length} per clip, expected ${data.scenes} scenes × max_text_seq_length ${model.config.max_text_seq_length}`,
    );
  }
}

const concat = (parts: (Float32Array | Int32Array)[]) => {
  const n = parts[0]!.length;
  const out = parts[0] instanceof Int32Array ? new Int32Array(n * parts.length) : new Float32Array(n * parts.length);
  parts.forEach((p, i) => out.set(p, i * n));
  return out;
};

/**
 * @param data one dataset, or several (e.g. one per scene count): each step draws one of them,
 *   then `batchSize` clips from it.
 */
export function ditObjective(
  model: Mask2DiTTransformer,
  data: LatentDataset | LatentDataset[],
  opts: DitObjectiveOptions,
  text?: TextConditioner,
): Objective {
  const sets = Array.isArray(data) ? data : [data];
  if (sets.length === 0) throw new Mask2DiTError('DATA', 'training data is empty');
  for (const d of sets) checkDataset(model, d, text);
  const fgWeight = opts.foregroundWeight ?? 1;
  if (!(fgWeight >= 1)) throw new Mask2DiTError('DATA', `foregroundWeight must be ≥ 1, got ${fgWeight}`);
  if (fgWeight !== 1 && sets.some((d) => d.foreground === undefined)) {
    throw new Mask2DiTError(
      'DATA',
      'a foreground weight was asked for but the latent dataset has no foreground masks (re-run `train prepare`)',
    );
  }
  const temporalWeight = opts.temporalWeight ?? 0;
  if (!(temporalWeight >= 0)) throw new Mask2DiTError('DATA', `temporalWeight must be ≥ 0, got ${temporalWeight}`);
  const sigmaMax = opts.foregroundSigmaMax;
  if (sigmaMax !== undefined && !(sigmaMax > 0))
    throw new Mask2DiTError('DATA', `foregroundSigmaMax must be > 0, got ${sigmaMax}`);
  const L = model.config.max_text_seq_length;
  if ((opts.pDropText ?? 0) > 0 && opts.emptyTokens?.length !== L)
    throw new Mask2DiTError('DATA', `pDropText needs emptyTokens of length max_text_seq_length ${L}`);
  return (_step, rng) => {
    const d = sets.length === 1 ? sets[0]! : sets[rng.int(0, sets.length)]!;
    const [F, C, h, w] = d.latentShape;
    const B = opts.batchSize;
    const idx = Array.from({ length: B }, () => rng.int(0, d.size));
    const latents = tf.tensor(concat(idx.map((i) => d.latents(i))), [B, F, C, h, w], 'float32');
    let ids: tf.Tensor | undefined;
    let embeds: tf.Tensor | undefined;
    if (text !== undefined) {
      const t = concat(idx.map((i) => d.tokens!(i))) as Int32Array; // [B·S·L]
      const drop = rng.uniforms(B * d.scenes);
      drop.forEach((u, k) => u < (opts.pDropText ?? 0) && t.set(opts.emptyTokens!, k * L));
      ids = tf.tensor(t, [B, d.scenes * L], 'int32');
    } else {
      const e = idx.map((i) => d.embeddings!(i));
      embeds = tf.tensor(concat(e), [B, d.scenes * L, e[0]!.length / (d.scenes * L)], 'float32');
    }
    const draw = drawFlow(rng, B, d.scenes, opts.pConditional, opts.sigmaSampling, opts.sigmaLocation ?? 0);
    const noise = tf.tensor(rng.gaussians(latents.size), latents.shape, 'float32');
    let weights: tf.Tensor | undefined;
    if (fgWeight !== 1) {
      const fg = concat(idx.map((i, b) => foregroundWeights(d.foreground!(i), fgWeight, draw.sigma[b]!, sigmaMax)));
      weights = tf.tensor(fg, [B, F, 1, h, w], 'float32'); // [B, F, 1, h, w]
    }
    return {
      loss: () =>
        tf.tidy(() =>
          flowMatchingLoss(
            model,
            {
              latents,
              text: embeds ?? text!.encode(ids!),
              scenes: d.scenes,
              prediction: opts.prediction ?? 'flow_prediction',
              temporalWeight,
              ...(weights !== undefined && { weights }),
            },
            draw,
            noise,
          ),
        ),
      info: {
        scenes: d.scenes,
        objective: draw.target === undefined ? 'joint' : `conditional:${draw.target}`,
        sigma: Number(draw.sigma[0]!.toFixed(4)),
      },
      dispose: () =>
        tf.dispose([
          latents,
          noise,
          ...(weights !== undefined ? [weights] : []),
          ...(ids !== undefined ? [ids] : []),
          ...(embeds !== undefined ? [embeds] : []),
        ]),
    };
  };
}

/**
 * Loss weights of one clip's latent pixels from its character mask (1 on the character): `1 + (w − 1)·m`,
 * or with `sigmaMax` `1 + (w − 1)·m·max(0, 1 − σ/σmax)`.
 */
export function foregroundWeights(mask: Uint8Array, w: number, sigma: number, sigmaMax?: number): Float32Array {
  const fade = sigmaMax === undefined ? 1 : Math.max(0, 1 - sigma / sigmaMax);
  return Float32Array.from(mask, (m) => 1 + (w - 1) * m * fade);
}

/** A T5-style encoder as the DiT's text conditioner: ids `[B, S·L]` → each scene encoded alone → `[B, S·L, D]`. */
export function perSceneText(
  encoder: { forward(inputs: { ids: tf.Tensor; attentionMask?: 'padding' }): tf.Tensor },
  sceneLength: number,
): TextConditioner {
  return {
    encode: (ids) =>
      tf.tidy(() => {
        const [B, SL] = ids.shape as [number, number];
        const h = encoder.forward({
          ids: tf.reshape(ids, [(B * SL) / sceneLength, sceneLength]),
          attentionMask: 'padding',
        }); // [B·S, L, D]
        return tf.reshape(h, [B, SL, h.shape[2]!]); // [B, S·L, D]
      }),
  };
}
