/**
 * The DiT's training objective over a dataset of multi-scene latent clips: seeded batches, the
 * flow-matching loss with the joint (mask 1) or, with probability `pConditional`, the segment-level
 * conditional (mask 2) objective. Prompts come either as fixed embeddings or as token ids run through
 * a text encoder that is trained jointly (its gradients flow from the DiT loss).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import type { Mask2DiTTransformer } from '../model/transformer.js';
import { drawFlow, flowMatchingLoss } from './flowMatchingObjective.js';
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
}

/** Anything that maps token ids `[B, L]` to embeddings `[B, L, D]` with trainable variables. */
export interface TextConditioner {
  encode(ids: tf.Tensor): tf.Tensor;
}

export interface DitObjectiveOptions {
  batchSize: number;
  /** Probability of the segment-level conditional objective per batch. */
  pConditional: number;
}

export function ditObjective(model: Mask2DiTTransformer, data: LatentDataset, opts: DitObjectiveOptions, text?: TextConditioner): Objective {
  if (data.size < 1) throw new Mask2DiTError('DATA', 'training data is empty');
  if (text !== undefined && data.tokens === undefined) throw new Mask2DiTError('DATA', 'a text encoder is being trained but the dataset has no token ids');
  if (text === undefined && data.embeddings === undefined) throw new Mask2DiTError('DATA', 'the dataset has neither prompt embeddings nor token ids');
  const [F, C, h, w] = data.latentShape;
  if (C !== model.config.in_channels) throw new Mask2DiTError('DATA', `latents have ${C} channels, the transformer's in_channels is ${model.config.in_channels}`);
  if (F % data.scenes !== 0) throw new Mask2DiTError('DATA', `${F} latent frames do not split into ${data.scenes} scenes`);
  return (_step, rng) => {
    const B = opts.batchSize;
    const idx = Array.from({ length: B }, () => rng.int(0, data.size));
    const cat = (parts: (Float32Array | Int32Array)[]) => {
      const n = parts[0]!.length;
      const out = parts[0] instanceof Int32Array ? new Int32Array(n * parts.length) : new Float32Array(n * parts.length);
      parts.forEach((p, i) => out.set(p, i * n));
      return out;
    };
    const latents = tf.tensor(cat(idx.map((i) => data.latents(i))), [B, F, C, h, w], 'float32');
    let ids: tf.Tensor | undefined;
    let embeds: tf.Tensor | undefined;
    if (text !== undefined) {
      const t = idx.map((i) => data.tokens!(i));
      ids = tf.tensor(cat(t), [B, t[0]!.length], 'int32');
    } else {
      const e = idx.map((i) => data.embeddings!(i));
      const L = model.config.max_text_seq_length * data.scenes;
      embeds = tf.tensor(cat(e), [B, L, e[0]!.length / L], 'float32');
    }
    const draw = drawFlow(rng, B, data.scenes, opts.pConditional);
    const noise = tf.tensor(rng.gaussians(latents.size), latents.shape, 'float32');
    return {
      loss: () => tf.tidy(() => flowMatchingLoss(model, { latents, text: embeds ?? text!.encode(ids!), scenes: data.scenes }, draw, noise)),
      info: { objective: draw.target === undefined ? 'joint' : `conditional:${draw.target}`, sigma: Number(draw.sigma[0]!.toFixed(4)) },
      dispose: () => tf.dispose([latents, noise, ...(ids !== undefined ? [ids] : []), ...(embeds !== undefined ? [embeds] : [])]),
    };
  };
}
