/**
 * Latent datasets for DiT training, precomputed once with a trained VAE: world clips grouped by
 * scene count, each clip's scenes encoded separately (posterior mean × scaling_factor) and
 * concatenated along frames, with the scenes' caption token ids. Stored as one safetensors file:
 * `latents.S<k>` `[N, F, C, h, w]` and `tokens.S<k>` `[N, k·L]` (I32) per scene count k.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { sampleClip, type WorldOptions } from '../data/world.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { CogVideoXVAE } from '../model/vae.js';
import type { WordTokenizer } from '../text/tokenizer.js';
import type { LatentDataset } from './ditObjective.js';

export interface LatentGroup {
  scenes: number;
  latentShape: [number, number, number, number];
  latents: Float32Array;
  tokens: Int32Array;
  count: number;
}

/** Encode the clips of seeds `[firstSeed, firstSeed + clips)`; `onClip` reports progress. */
export function encodeWorldClips(vae: CogVideoXVAE, tokenizer: WordTokenizer, opts: { clips: number; firstSeed: number; world: WorldOptions; onClip?: (i: number) => void }): LatentGroup[] {
  const groups = new Map<number, { latents: Float32Array[]; tokens: Int32Array[]; shape?: [number, number, number, number] }>();
  for (let i = 0; i < opts.clips; i++) {
    const clip = sampleClip(opts.firstSeed + i, opts.world);
    const S = clip.scenes.length;
    const [T, H, W] = [clip.framesPerScene, clip.height, clip.width];
    const x = tf.tensor(Float32Array.from(clip.scenes.flatMap((s) => Array.from(s.frames))), [S, 3, T, H, W], 'float32'); // scenes as a batch
    const z = tf.tidy(() => {
      const post = vae.encode(x);
      const m = tf.mul(post.mean, vae.scalingFactor); // [S, C, f, h, w]
      post.dispose();
      return tf.transpose(m, [0, 2, 1, 3, 4]); // [S, f, C, h, w]
    });
    const [, f, C, h, w] = z.shape as number[];
    const g = groups.get(S) ?? { latents: [], tokens: [] };
    g.shape = [S * f!, C!, h!, w!];
    g.latents.push(z.dataSync() as Float32Array);
    g.tokens.push(tokenizer.encodeBatch(clip.scenes.map((s) => s.caption)));
    groups.set(S, g);
    tf.dispose([x, z]);
    opts.onClip?.(i);
  }
  const cat = <A extends Float32Array | Int32Array>(parts: A[], make: (n: number) => A): A => {
    const out = make(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) (out.set(p, at), (at += p.length));
    return out;
  };
  return [...groups].sort(([a], [b]) => a - b).map(([S, g]) => ({ scenes: S, latentShape: g.shape!, latents: cat(g.latents, (n) => new Float32Array(n)), tokens: cat(g.tokens, (n) => new Int32Array(n)), count: g.latents.length }));
}

export async function saveLatentGroups(file: string, groups: LatentGroup[], metadata: Record<string, string>): Promise<void> {
  const t: Record<string, TensorToWrite> = {};
  for (const g of groups) {
    t[`latents.S${g.scenes}`] = { dtype: 'F32', shape: [g.count, ...g.latentShape], data: g.latents };
    t[`tokens.S${g.scenes}`] = { dtype: 'I32', shape: [g.count, g.tokens.length / g.count], data: g.tokens };
  }
  await writeSafetensors(file, t, { format: 'mask2dit-latents', ...metadata });
}

export async function loadLatentGroups(file: string): Promise<{ groups: LatentGroup[]; metadata: Record<string, string> }> {
  const src = await openSafetensors(file);
  try {
    if (src.metadata['format'] !== 'mask2dit-latents') throw new Mask2DiTError('DATA', `${file}: not a latent dataset (__metadata__.format = ${src.metadata['format'] ?? 'absent'}, expected mask2dit-latents)`);
    const groups: LatentGroup[] = [];
    for (const name of src.names().filter((n) => n.startsWith('latents.S'))) {
      const S = Number(name.slice(9));
      const tokName = `tokens.S${S}`;
      if (!src.has(tokName)) throw new Mask2DiTError('DATA', `${file}: ${name} has no ${tokName}`);
      const shape = src.info(name).shape;
      if (shape.length !== 5 || src.info(tokName).shape[0] !== shape[0]) throw new Mask2DiTError('DATA', `${file}: ${name} [${shape}] and ${tokName} [${src.info(tokName).shape}] do not match`);
      groups.push({ scenes: S, latentShape: shape.slice(1) as [number, number, number, number], count: shape[0]!, latents: (await src.read(name)) as Float32Array, tokens: (await src.read(tokName)) as Int32Array });
    }
    if (groups.length === 0) throw new Mask2DiTError('DATA', `${file}: no latents.S<k> tensors`);
    return { groups, metadata: src.metadata };
  } finally {
    await src.close();
  }
}

/** A group as the DiT objective's dataset. */
export function asDataset(g: LatentGroup): LatentDataset {
  const per = g.latents.length / g.count;
  const tok = g.tokens.length / g.count;
  return {
    size: g.count,
    scenes: g.scenes,
    latentShape: g.latentShape,
    latents: (i) => g.latents.subarray(i * per, (i + 1) * per),
    tokens: (i) => g.tokens.subarray(i * tok, (i + 1) * tok),
  };
}
