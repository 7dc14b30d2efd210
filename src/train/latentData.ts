/**
 * Latent datasets for DiT training, precomputed once with a trained VAE: world clips grouped by
 * scene count, each clip's scenes encoded separately (posterior mean × scaling_factor) and
 * concatenated along frames, with the scenes' caption token ids and where the character is on the
 * latent grid. Stored as one safetensors file, per scene count k: `latents.S<k>` `[N, F, C, h, w]`,
 * `tokens.S<k>` `[N, k·L]` (I32) and `foreground.S<k>` `[N, F, h, w]` (U8, 1 where the latent pixel
 * covers a character pixel; absent in files written before it existed).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';
import { sampleClip, type Clip, type WorldOptions } from '../data/world.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { CogVideoXVAE } from '../model/vae.js';
import type { WordTokenizer } from '../text/tokenizer.js';
import type { LatentDataset } from './ditObjective.js';
import { foregroundWeights } from './vaeObjective.js';

export interface LatentGroup {
  scenes: number;
  latentShape: [number, number, number, number];
  latents: Float32Array;
  tokens: Int32Array;
  /** `[N, F, h, w]`, 1 where a latent pixel covers the character. */
  foreground?: Uint8Array;
  count: number;
}

/**
 * Where the character is on the latent grid: scene frames `[3, T, H, W]` → `[f, h, w]`, 1 where any
 * pixel the latent pixel stands for is a character pixel (max-pool of the pixel mask). Latent frame 0
 * stands for pixel frame 0 and frame k ≥ 1 for pixel frames (k−1)·r+1 … k·r (the causal VAE's
 * grouping, r = (T − 1)/(f − 1)); space is pooled in (H/h)×(W/w) blocks.
 */
export function latentForeground(
  frames: Float32Array,
  T: number,
  H: number,
  W: number,
  f: number,
  h: number,
  w: number,
): Uint8Array {
  if ((f > 1 && (T - 1) % (f - 1) !== 0) || (f === 1 && T !== 1) || H % h !== 0 || W % w !== 0) {
    throw new Mask2DiTError('DATA', `pixel frames ${T}×${H}×${W} do not pool onto latent frames ${f}×${h}×${w}`);
  }
  const pixel = foregroundWeights(frames, 1, T, H, W, 2); // [T, H, W]: 2 on the character, else 1
  const r = f > 1 ? (T - 1) / (f - 1) : 1;
  const [sy, sx] = [H / h, W / w];
  const out = new Uint8Array(f * h * w);
  for (let t = 0; t < T; t++) {
    const k = t === 0 ? 0 : Math.ceil(t / r);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (pixel[(t * H + y) * W + x]! > 1) out[(k * h + Math.floor(y / sy)) * w + Math.floor(x / sx)] = 1;
      }
    }
  }
  return out;
}

/** Encode the clips of seeds `[firstSeed, firstSeed + clips)`; `onClip` reports progress. */
export function encodeWorldClips(
  vae: CogVideoXVAE,
  tokenizer: WordTokenizer,
  opts: { clips: number; firstSeed: number; world: WorldOptions; onClip?: (i: number) => void },
): LatentGroup[] {
  const groups = new Map<
    number,
    {
      latents: Float32Array[];
      tokens: Int32Array[];
      foreground: Uint8Array[];
      shape?: [number, number, number, number];
    }
  >();
  for (let i = 0; i < opts.clips; i++) {
    const clip = sampleClip(opts.firstSeed + i, opts.world);
    const S = clip.scenes.length;
    const [T, H, W] = [clip.framesPerScene, clip.height, clip.width];
    const z = clipLatents(vae, clip); // [S, f, C, h, w]
    const [, f, C, h, w] = z.shape as number[];
    const g = groups.get(S) ?? { latents: [], tokens: [], foreground: [] };
    g.shape = [S * f!, C!, h!, w!];
    g.latents.push(z.dataSync() as Float32Array);
    for (const s of clip.scenes) g.foreground.push(latentForeground(s.frames, T, H, W, f!, h!, w!));
    g.tokens.push(tokenizer.encodeBatch(clip.scenes.map((s) => s.caption)));
    groups.set(S, g);
    z.dispose();
    opts.onClip?.(i);
  }
  const cat = <A extends Float32Array | Int32Array | Uint8Array>(parts: A[], make: (n: number) => A): A => {
    const out = make(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  return [...groups]
    .sort(([a], [b]) => a - b)
    .map(([S, g]) => ({
      scenes: S,
      latentShape: g.shape!,
      latents: cat(g.latents, (n) => new Float32Array(n)),
      tokens: cat(g.tokens, (n) => new Int32Array(n)),
      foreground: cat(g.foreground, (n) => new Uint8Array(n)),
      count: g.latents.length,
    }));
}

export async function saveLatentGroups(
  file: string,
  groups: LatentGroup[],
  metadata: Record<string, string>,
): Promise<void> {
  const t: Record<string, TensorToWrite> = {};
  for (const g of groups) {
    t[`latents.S${g.scenes}`] = { dtype: 'F32', shape: [g.count, ...g.latentShape], data: g.latents };
    t[`tokens.S${g.scenes}`] = { dtype: 'I32', shape: [g.count, g.tokens.length / g.count], data: g.tokens };
    if (g.foreground !== undefined)
      t[`foreground.S${g.scenes}`] = {
        dtype: 'U8',
        shape: [g.count, g.latentShape[0], g.latentShape[2], g.latentShape[3]],
        data: g.foreground,
      };
  }
  await writeSafetensors(file, t, { format: 'mask2dit-latents', ...metadata });
}

/** Refuse a safetensors file that `train prepare` did not write. */
function checkLatentsFormat(file: string, metadata: Record<string, string>): void {
  if (metadata['format'] !== 'mask2dit-latents')
    throw new Mask2DiTError(
      'DATA',
      `${file}: not a latent dataset (__metadata__.format = ${metadata['format'] ?? 'absent'}, expected mask2dit-latents)`,
    );
}

/** A latent dataset's `__metadata__` only (clips, vae_step, …): reads the header, not the tensors. */
export async function readLatentsMetadata(file: string): Promise<Record<string, string>> {
  const src = await openSafetensors(file);
  try {
    checkLatentsFormat(file, src.metadata);
    return src.metadata;
  } finally {
    await src.close();
  }
}

export async function loadLatentGroups(
  file: string,
): Promise<{ groups: LatentGroup[]; metadata: Record<string, string> }> {
  const src = await openSafetensors(file);
  try {
    checkLatentsFormat(file, src.metadata);
    const groups: LatentGroup[] = [];
    for (const name of src.names().filter((n) => n.startsWith('latents.S'))) {
      const S = Number(name.slice(9));
      const tokName = `tokens.S${S}`;
      if (!src.has(tokName)) throw new Mask2DiTError('DATA', `${file}: ${name} has no ${tokName}`);
      const shape = src.info(name).shape;
      if (shape.length !== 5 || src.info(tokName).shape[0] !== shape[0])
        throw new Mask2DiTError(
          'DATA',
          `${file}: ${name} [${shape}] and ${tokName} [${src.info(tokName).shape}] do not match`,
        );
      const group: LatentGroup = {
        scenes: S,
        latentShape: shape.slice(1) as [number, number, number, number],
        count: shape[0]!,
        latents: (await src.read(name)) as Float32Array,
        tokens: (await src.read(tokName)) as Int32Array,
      };
      const fgName = `foreground.S${S}`;
      if (src.has(fgName)) {
        const fg = src.info(fgName);
        const want = [shape[0]!, shape[1]!, shape[3]!, shape[4]!];
        if (fg.dtype !== 'U8' || fg.shape.join() !== want.join())
          throw new Mask2DiTError('DATA', `${file}: ${fgName} is ${fg.dtype} [${fg.shape}], expected U8 [${want}]`);
        group.foreground = (await src.read(fgName)) as Uint8Array;
      }
      groups.push(group);
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
    ...(g.foreground !== undefined && {
      foreground: (i: number) =>
        g.foreground!.subarray((i * per) / g.latentShape[1], ((i + 1) * per) / g.latentShape[1]),
    }),
  };
}

/** A clip's scenes encoded as a batch (posterior mean × scaling_factor): `[S, f, C, h, w]`. */
export function clipLatents(vae: CogVideoXVAE, clip: Clip): tf.Tensor {
  const [S, T, H, W] = [clip.scenes.length, clip.framesPerScene, clip.height, clip.width];
  return tf.tidy(() => {
    const x = tf.tensor(Float32Array.from(clip.scenes.flatMap((s) => Array.from(s.frames))), [S, 3, T, H, W]); // [S, 3, T, H, W]
    const post = vae.encode(x);
    return tf.transpose(tf.mul(post.mean, vae.scalingFactor), [0, 2, 1, 3, 4]); // [S, C, f, h, w] → [S, f, C, h, w]
  });
}
