/**
 * The CogVideoX video autoencoder (`AutoencoderKLCogVideoX`, Mask2DiT's copy in
 * videox_fun/models/cogvideox_vae.py): a causal 3-D encoder and decoder run frame batch by frame
 * batch, the causal convolutions' caches carried from each call to the next.
 *
 * Public tensors use the reference layout `[B, C, T, H, W]`; inside, activations are channels-last
 * `[B, T, H, W, C]` (what tfjs convolutions take). GroupNorm statistics are per call, so how the
 * frames are batched is part of the math (`FrameBatching`); the default reproduces the reference.
 * `decode` does not apply `scaling_factor`: divide latents by it first (the pipeline's job).
 */
import * as tf from '@tensorflow/tfjs-core';
import { readVaeConfig, type VaeConfig } from '../config/vaeConfig.js';
import { ShapeError } from '../errors.js';
import { DIFFUSERS_VERSION, writeDiffusersComponent } from '../io/diffusersComponent.js';
import { M2Layer } from '../layers/layer.js';
import { WeightSource } from '../layers/weightSource.js';
import { ConvParams, disposeConvCache, type ConvCache } from '../layers/vae/causalConv3d.js';
import { Decoder3D } from '../layers/vae/decoder.js';
import { Encoder3D } from '../layers/vae/encoder.js';
import type { TimeUpsampling } from '../layers/vae/upsample3d.js';
import type { Probe } from '../layers/probe.js';
import { loadPretrained, type PretrainedOptions } from './pretrained.js';
import { sliceAxis, splitAxis } from '../layers/axis.js';
import { checkVaeMemory, chooseVaeTiling, type VaeWorkSize } from './vaeMemory.js';
import {
  defaultVaeTiling,
  needsTiling,
  planTiles,
  resolveVaeTiling,
  runTiled,
  type TilePlan,
  type VaeTiling,
} from './vaeTiling.js';

/**
 * How latent frames are split into decoder calls:
 * - `'mask2dit'` (default, Mask2DiT's class): frame 0 alone, then pairs `[1,3), [3,5), …`; the first
 *   call upsamples space only, later calls double every frame in time.
 * - `'auto_split'` (`enable_auto_split_process()`, the loop of diffusers ≥ 0.31): pairs, the remainder
 *   joined to the first pair; an odd call keeps its first frame un-doubled.
 * - `'one_call'`: every latent frame in one call (memory grows with the frame count).
 */
export type FrameBatching = 'mask2dit' | 'auto_split' | 'one_call';

export const FRAME_BATCHINGS: readonly FrameBatching[] = ['mask2dit', 'auto_split', 'one_call'];

/** Latent frames per decoder call (`num_latent_frames_batch_size`) and video frames per encoder call. */
const LATENT_FRAMES_PER_CALL = 2;
const VIDEO_FRAMES_PER_CALL = 8;

/** The reference's `[start, end)` batches of `n` frames, `size` per batch, the remainder joined to the first. */
function batchesWithRemainderFirst(n: number, size: number): [number, number][] {
  const rest = n % size;
  const count = Math.max(Math.floor(n / size), 1);
  return Array.from({ length: count }, (_, i): [number, number] => [
    i === 0 ? 0 : size * i + rest,
    Math.min(size * (i + 1) + rest, n),
  ]);
}

/** The `[start, end)` latent frame range of each decoder call for `n` latent frames. */
export function decodeCallRanges(n: number, batching: FrameBatching = 'mask2dit'): [number, number][] {
  if (batching === 'one_call') return [[0, n]];
  if (batching === 'auto_split') return batchesWithRemainderFirst(n, LATENT_FRAMES_PER_CALL);
  const out: [number, number][] = [[0, 1]];
  for (let s = 1; s < n; s += LATENT_FRAMES_PER_CALL) out.push([s, Math.min(s + LATENT_FRAMES_PER_CALL, n)]);
  return out;
}

/** The `[start, end)` video frame range of each encoder call: 8 a call, the remainder joined to the first. */
export function encodeCallRanges(n: number): [number, number][] {
  return batchesWithRemainderFirst(n, VIDEO_FRAMES_PER_CALL);
}

/** Output frames of decoding `n` latent frames: `4·(n−1)+1` with the default batching. */
export function decodedFrameCount(n: number, batching: FrameBatching, temporalCompressLevel: number): number {
  const up = (t: number, mode: TimeUpsampling) => {
    for (let l = 0; l < temporalCompressLevel; l++)
      t = mode === 'none' || (mode === 'auto' && t === 1) ? t : mode === 'auto' && t % 2 === 1 ? 2 * t - 1 : 2 * t;
    return t;
  };
  return decodeCallRanges(n, batching).reduce((sum, [s, e], i) => sum + up(e - s, timeModeOf(batching, i)), 0);
}

function timeModeOf(batching: FrameBatching, call: number): TimeUpsampling {
  return batching === 'mask2dit' ? (call === 0 ? 'none' : 'double') : 'auto';
}

/**
 * Spatial tiling for one call (diffusers' `enable_tiling`, see vaeTiling.ts): tiling parameters
 * (missing ones from `enableTiling`'s, else diffusers' defaults), `true` = the VAE's own
 * (`enableTiling`'s, else the defaults), `false` or `null` = untiled. Unset: the VAE's state
 * (`enableTiling`/`disableTiling`; untiled unless enabled). `'auto'`: untiled when the call fits the
 * backend's memory budget, else diffusers' tiling, else smaller tiles that fit (`chooseVaeTiling`, shrink);
 * what the pipelines use. As in the reference, an input that fits one tile is not tiled.
 */
export type TilingOption = Partial<VaeTiling> | boolean | null | 'auto';

export interface DecodeOptions {
  /**
   * Frame batching of every decode (each tile's, when tiled). diffusers 0.30.3, tiled or not, is
   * `'auto_split'`; the default `'mask2dit'` is Mask2DiT's class.
   */
  batching?: FrameBatching;
  /** Captures decoder intermediates; call k > 0 of a module gets `.call{k}` appended (Probe rule). */
  probe?: Probe;
  /** Spatial tiling of the latent (see TilingOption). */
  tiling?: TilingOption;
  /**
   * Refuse (MemoryBudgetError, before running) a decode whose estimated peak does not fit the
   * backend's budget (vaeMemory.ts; default true).
   */
  checkMemory?: boolean;
}

export interface EncodeOptions {
  /** Captures encoder intermediates (Probe rule, as DecodeOptions). */
  probe?: Probe;
  /** Spatial tiling of the pixels (see TilingOption); each tile is encoded 8 frames a call. */
  tiling?: TilingOption;
  /** As DecodeOptions.checkMemory. */
  checkMemory?: boolean;
}

/** The diagonal Gaussian posterior `q(z | x)`; layout `[B, latent_channels, F, h, w]`. The caller disposes it. */
export interface LatentDistribution {
  /** Raw encoder output `[B, 2·Cz, F, h, w]`: mean, then log-variance (not clamped). */
  moments: tf.Tensor;
  mean: tf.Tensor;
  /** Clamped to [-30, 20]. */
  logvar: tf.Tensor;
  /** `exp(logvar / 2)` */
  std: tf.Tensor;
  /** `mean + std·ε`; ε from `noise` if given, else a normal draw seeded by `seed` (default 0). Caller owns the result. */
  sample(options?: { seed?: number; noise?: tf.Tensor }): tf.Tensor;
  /** `mean` itself (a new handle the caller owns). */
  mode(): tf.Tensor;
  dispose(): void;
}

function posterior(moments: tf.Tensor): LatentDistribution {
  const [mean, rawLogvar] = splitAxis(moments, 2, 1) as [tf.Tensor, tf.Tensor];
  const logvar = tf.clipByValue(rawLogvar, -30, 20);
  rawLogvar.dispose();
  const std = tf.tidy(() => tf.exp(tf.mul(logvar, 0.5)));
  return {
    moments,
    mean,
    logvar,
    std,
    sample: ({ seed = 0, noise } = {}) =>
      tf.tidy(() => {
        if (noise !== undefined && (noise.rank !== mean.rank || !noise.shape.every((d, i) => d === mean.shape[i])))
          throw new ShapeError('noise', `expected [${mean.shape}], got [${noise.shape}]`);
        const eps = noise ?? tf.randomNormal(mean.shape, 0, 1, 'float32', seed);
        return tf.add(mean, tf.mul(std, eps));
      }),
    mode: () => tf.clone(mean),
    dispose: () => tf.dispose([moments, mean, logvar, std]),
  };
}

/** `[B, C, T, H, W]` ↔ `[B, T, H, W, C]` */
const toChannelsLast = (x: tf.Tensor) => tf.transpose(x, [0, 2, 3, 4, 1]);
const toChannelsFirst = (x: tf.Tensor) => tf.transpose(x, [0, 4, 1, 2, 3]);

/** Frames `[start, end)` of `[B, C, T, H, W]`, channels-last: `[B, end-start, H, W, C]`. */
function framesChannelsLast(x: tf.Tensor, [start, end]: [number, number]): tf.Tensor {
  return tf.tidy(() => toChannelsLast(sliceAxis(x, 2, start, end - start)));
}

export class CogVideoXVAE extends M2Layer {
  static readonly className = 'M2CogVideoXVAE';
  readonly encoder: Encoder3D;
  readonly decoder: Decoder3D;
  /** Tiling used when a call does not say (`enableTiling`); null: untiled. */
  private tilingState: VaeTiling | null = null;

  constructor(
    readonly config: VaeConfig,
    ws: WeightSource,
  ) {
    super('vae');
    this.encoder = this.child('encoder', new Encoder3D(config, ws.pp('encoder')));
    this.decoder = this.child('decoder', new Decoder3D(config, ws.pp('decoder')));
  }

  /** Latents are `scaling_factor ·` the posterior sample in the diffusion model's space. */
  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  get shiftFactor(): number | null {
    return this.config.shift_factor;
  }

  /** Pixels per latent pixel along H and W: `2^(len(block_out_channels) − 1)`. */
  get spatialCompression(): number {
    return this.config.spatialCompression;
  }

  /** Frames per latent frame: `temporal_compression_ratio` (`frames = ratio·(F − 1) + 1`). */
  get temporalCompression(): number {
    return this.config.temporal_compression_ratio;
  }

  /** diffusers' defaults for this config: tiles of half `sample_height × sample_width`, overlap 1/6 × 1/5. */
  get defaultTiling(): VaeTiling {
    return defaultVaeTiling(this.config.sample_height, this.config.sample_width);
  }

  /** The tiling calls use unless they say otherwise; null when disabled. */
  get tiling(): VaeTiling | null {
    return this.tilingState === null ? null : { ...this.tilingState };
  }

  /**
   * diffusers' `enable_tiling(tile_sample_min_height, tile_sample_min_width, tile_overlap_factor_height,
   * tile_overlap_factor_width)`: later decode/encode calls tile inputs larger than one tile. Missing
   * arguments keep their previous value (initially the defaults). Returns the parameters in force.
   */
  enableTiling(params: Partial<VaeTiling> = {}): VaeTiling {
    this.tilingState = resolveVaeTiling(params, this.tilingState ?? this.defaultTiling);
    return { ...this.tilingState };
  }

  disableTiling(): void {
    this.tilingState = null;
  }

  /** `'auto'`: untiled if the call fits the memory budget, else this VAE's tiling (`enableTiling`'s or the default), else smaller tiles. */
  private autoTiling(size: VaeWorkSize): VaeTiling | false {
    return (
      chooseVaeTiling(this.config, size, {
        shrink: true,
        ...(this.tilingState !== null ? { tiling: this.tilingState } : {}),
      }) ?? false
    );
  }

  /** The tiling a call uses, or null. */
  private tilingFor(option: TilingOption | undefined): VaeTiling | null {
    if (option === 'auto') throw new ShapeError('tiling', "'auto' is resolved by decode and encode, not by tilePlan");
    if (option === undefined) return this.tilingState;
    if (option === false || option === null) return null;
    const base = this.tilingState ?? this.defaultTiling;
    return option === true ? base : resolveVaeTiling(option, base);
  }

  /** The tile plan a decode of latent `[h, w]` (kind 'decode') or an encode of pixels `[H, W]` uses; null if untiled. */
  tilePlan(
    kind: 'decode' | 'encode',
    hw: [number, number],
    tiling: TilingOption | undefined = undefined,
  ): TilePlan | null {
    const t = this.tilingFor(tiling);
    return t === null || !needsTiling(kind, hw, t, this.spatialCompression)
      ? null
      : planTiles(kind, hw, t, this.spatialCompression);
  }

  private checkInput(x: tf.Tensor, name: string, channels: number): void {
    if (x.rank !== 5 || x.shape[1] !== channels || x.shape[2] === 0)
      throw new ShapeError(name, `expected [B, ${channels}, T ≥ 1, H, W], got [${x.shape}]`);
  }

  /**
   * Decode call by call, yielding each call's frames `[B, out_channels, T_k, 8h, 8w]` as soon as they
   * are computed (the caller disposes each). Peak memory is one call's, whatever the frame count.
   * @param z `[B, latent_channels, F, h, w]` latents already divided by `scaling_factor` (not disposed)
   */
  *decodeChunks(z: tf.Tensor, options: DecodeOptions = {}): Generator<tf.Tensor, void, undefined> {
    this.checkInput(z, 'z', this.config.latent_channels);
    const [B, , F, h, w] = z.shape as [number, number, number, number, number];
    const batching = options.batching ?? 'mask2dit';
    const size = { kind: 'decode' as const, batch: B, frames: F, height: h, width: w, batching };
    if (options.tiling === 'auto') options = { ...options, tiling: this.autoTiling(size) };
    if (options.checkMemory ?? true) checkVaeMemory(this.config, size, { tiling: this.tilingFor(options.tiling) });
    const plan = this.tilePlan('decode', [h, w], options.tiling);
    if (plan !== null) {
      // every tile spans all frames: the tiled result comes as one chunk
      yield runTiled(z, plan, (tile) => this.decode(tile, { ...options, tiling: false, checkMemory: false }));
      return;
    }
    const cache: ConvCache = new Map();
    const probe = options.probe?.at(this.decoder.name);
    try {
      const ranges = decodeCallRanges(z.shape[2]!, batching);
      for (let i = 0; i < ranges.length; i++) {
        const zc = framesChannelsLast(z, ranges[i]!); // [B, t, h, w, Cz]
        const frames = this.decoder.forward(zc, timeModeOf(batching, i), cache, probe); // [B, T, H, W, C]
        zc.dispose();
        const out = tf.tidy(() => toChannelsFirst(frames)); // [B, C, T, H, W]
        frames.dispose();
        yield out;
      }
    } finally {
      disposeConvCache(cache);
    }
  }

  /**
   * Decode every latent frame: `[B, latent_channels, F, h, w]` → `[B, out_channels, 4(F−1)+1, 8h, 8w]`
   * (default batching). Tiled (`options.tiling`), each tile is decoded with its own caches.
   */
  decode(z: tf.Tensor, options: DecodeOptions = {}): tf.Tensor {
    const chunks = [...this.decodeChunks(z, options)];
    const out = chunks.length === 1 ? chunks[0]! : tf.concat(chunks, 2);
    if (chunks.length > 1) tf.dispose(chunks);
    return out;
  }

  /**
   * Raw encoder moments `[B, 2·latent_channels, F', H/8, W/8]` of a video `[B, in_channels, F, H, W]`
   * in [-1, 1]. Tiled (`options.tiling`), each tile is encoded with its own caches.
   */
  encodeMoments(x: tf.Tensor, options: EncodeOptions = {}): tf.Tensor {
    this.checkInput(x, 'x', this.config.in_channels);
    const [B, , F, H, W] = x.shape as [number, number, number, number, number];
    const size = { kind: 'encode' as const, batch: B, frames: F, height: H, width: W };
    if (options.tiling === 'auto') options = { ...options, tiling: this.autoTiling(size) };
    if (options.checkMemory ?? true) checkVaeMemory(this.config, size, { tiling: this.tilingFor(options.tiling) });
    const plan = this.tilePlan('encode', [H, W], options.tiling);
    if (plan !== null)
      return runTiled(x, plan, (tile) => this.encodeMoments(tile, { ...options, tiling: false, checkMemory: false }));
    const cache: ConvCache = new Map();
    const probe = options.probe?.at(this.encoder.name);
    const parts: tf.Tensor[] = [];
    try {
      for (const range of encodeCallRanges(x.shape[2]!)) {
        const xc = framesChannelsLast(x, range); // [B, t, H, W, C]
        parts.push(this.encoder.forward(xc, cache, probe)); // [B, t', h, w, 2Cz]
        xc.dispose();
      }
      return tf.tidy(() => toChannelsFirst(parts.length === 1 ? parts[0]! : tf.concat(parts, 1))); // [B, 2Cz, F', h, w]
    } finally {
      tf.dispose(parts);
      disposeConvCache(cache);
    }
  }

  /** The posterior of a video `[B, in_channels, F, H, W]`; multiply a sample by `scalingFactor` for the transformer. */
  encode(x: tf.Tensor, options: EncodeOptions = {}): LatentDistribution {
    return posterior(this.encodeMoments(x, options));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.decode(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  /** The reference `config.json` content of this VAE (derived values dropped). */
  configJson(): Record<string, unknown> {
    const { temporalCompressLevel: _l, spatialCompression: _s, ...json } = this.config;
    return json;
  }

  /**
   * Every parameter under its reference name, in the reference (PyTorch) layout: convolution kernels,
   * held here in tfjs layout, are transposed back (`[Cout, Cin, kt, kh, kw]` / `[Cout, Cin, kh, kw]`).
   * New tensors for the kernels, the variables' own tensors otherwise: dispose only what `converted` lists.
   */
  referenceTensors(): { tensors: [string, tf.Tensor][]; converted: tf.Tensor[] } {
    const tensors: [string, tf.Tensor][] = [];
    const converted: tf.Tensor[] = [];
    for (const [name, v] of this.namedWeights()) {
      const owner = name.endsWith('.weight') ? this.sublayer(name.slice(0, -'.weight'.length)) : undefined;
      if (owner instanceof ConvParams) {
        const t = tfConvToTorch(v.read());
        converted.push(t);
        tensors.push([name, t]);
      } else {
        tensors.push([name, v.read()]);
      }
    }
    return { tensors, converted };
  }

  /**
   * Write the reference layout: `dir/config.json` + `dir/diffusion_pytorch_model.safetensors` (F32,
   * reference names, PyTorch kernel layout). `fromPretrained(dir)` reads it back bit for bit.
   */
  async save(dir: string, options: { force?: boolean } = {}): Promise<void> {
    const { tensors, converted } = this.referenceTensors();
    try {
      await writeDiffusersComponent(dir, {
        config: { _diffusers_version: DIFFUSERS_VERSION, ...this.configJson() },
        tensors,
        force: options.force ?? false,
      });
    } finally {
      tf.dispose(converted);
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { latents_mean, latents_std, ...rest } = this.config;
    return {
      ...super.getConfig(),
      ...rest,
      latents_mean: latents_mean === null ? null : [...latents_mean],
      latents_std: latents_std === null ? null : [...latents_std],
    } as tf.serialization.ConfigDict;
  }

  /**
   * Load a diffusers VAE folder (`config.json` + safetensors, sharded or not, F32/BF16/F16), or a
   * pipeline folder holding `vae/`. `weights` overrides the checkpoint path; `prefix` (e.g. `vae.`)
   * selects and strips the names of a combined checkpoint. Errors name every missing, unexpected or
   * wrongly shaped tensor.
   */
  static async fromPretrained(dir: string, options: PretrainedOptions = {}): Promise<CogVideoXVAE> {
    return loadPretrained(
      dir,
      'vae',
      'a diffusers VAE',
      (f) => readVaeConfig(f).config,
      (c, ws) => new CogVideoXVAE(c, ws),
      options,
    );
  }
}
tf.serialization.registerClass(CogVideoXVAE, 'Mask2DiT');

/** tfjs kernel → PyTorch: `[kt, kh, kw, Cin, Cout]` → `[Cout, Cin, kt, kh, kw]`, `[kh, kw, Cin, Cout]` → `[Cout, Cin, kh, kw]`. */
export function tfConvToTorch(w: tf.Tensor): tf.Tensor {
  if (w.rank === 5) return tf.transpose(w, [4, 3, 0, 1, 2]);
  if (w.rank === 4) return tf.transpose(w, [3, 2, 0, 1]);
  throw new ShapeError('conv kernel', `expected rank 4 or 5, got [${w.shape}]`);
}
