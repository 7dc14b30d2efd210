/**
 * CogVideoX's causal 3-D convolution (diffusers `CogVideoXCausalConv3d`, autoencoder_kl_cogvideox.py
 * L67 at 58eb52c; Mask2DiT videox_fun/models/cogvideox_vae.py): the time axis is padded on the past
 * side only — with the cache of the previous call, or with `kt - 1` copies of the first frame on the
 * first call — and space is zero-padded by `(k - 1) / 2`. The new cache is the last `kt - 1` frames of
 * the time-padded input.
 *
 * tfjs' conv3d is a naive loop on wasm (0.4 GFLOP/s), so the convolution is written
 * as one conv2d per time tap, summed (`conv3dByTimeTaps`): the same code on every backend.
 *
 * Layout: activations are channels-last `[B, T, H, W, C]`; the kernel is kept as tfjs' `[kt, kh, kw,
 * Cin, Cout]` (converted once at load from PyTorch's `[Cout, Cin, kt, kh, kw]`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { conv2d } from '../conv2d.js';
import * as tfl from '@tensorflow/tfjs-layers';
import { ShapeError } from '../../errors.js';
import { M2Layer } from '../layer.js';
import type { WeightSource } from '../weightSource.js';
import { concatAxis, sliceAxis } from '../axis.js';

/**
 * The causal convolutions' state across the calls of one decode or encode: for each conv (keyed by
 * its reference name, `decoder.mid_block.resnets.0.conv1`), the last `kt - 1` time-padded input
 * frames `[B, kt-1, H, W, Cin]`. A conv reads its entry and replaces it in place (the old tensor is
 * disposed); the caller owns the map and frees it with `disposeConvCache`.
 */
export type ConvCache = Map<string, tf.Tensor>;

export function disposeConvCache(cache: ConvCache): void {
  for (const t of cache.values()) t.dispose();
  cache.clear();
}

/** PyTorch `[Cout, Cin, kt, kh, kw]` → tfjs `[kt, kh, kw, Cin, Cout]`. */
export function torchConv3dToTf(w: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.transpose(w, [2, 3, 4, 1, 0]));
}

/** PyTorch `[Cout, Cin, kh, kw]` → tfjs `[kh, kw, Cin, Cout]`. */
export function torchConv2dToTf(w: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.transpose(w, [2, 3, 1, 0]));
}

/**
 * 3-D convolution, `valid` in time and zero-padded `same` in space (odd kh, kw), stride 1, written
 * as `kt` conv2d calls (one per time tap) summed. Intermediates are freed tap by tap.
 * @param x      `[B, Tp, H, W, Cin]` (already padded in time)
 * @param filter `[kt, kh, kw, Cin, Cout]`
 * @param bias   `[Cout]`
 * @returns `[B, Tp - kt + 1, H, W, Cout]`
 */
export function conv3dByTimeTaps(x: tf.Tensor, filter: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const [B, Tp, H, W, Cin] = x.shape as [number, number, number, number, number];
  const [kt, kh, kw, , Cout] = filter.shape as [number, number, number, number, number];
  if (kh % 2 === 0 || kw % 2 === 0)
    throw new ShapeError('conv3d filter', `spatial kernel must be odd for same padding, got ${kh}×${kw}`);
  const T = Tp - kt + 1;
  if (T < 1) throw new ShapeError('conv3d input', `needs at least ${kt} frames, got ${Tp}`);
  let acc: tf.Tensor | undefined;
  for (let d = 0; d < kt; d++) {
    const sum: tf.Tensor = tf.tidy(() => {
      const frames = tf.reshape(sliceAxis(x, 1, d, T), [B * T, H, W, Cin]); // [B·T, H, W, Cin]
      const tap = tf.reshape(tf.slice(filter, [d, 0, 0, 0, 0], [1, kh, kw, Cin, Cout]), [kh, kw, Cin, Cout]);
      const y = conv2d(frames as tf.Tensor4D, tap as tf.Tensor4D, 1, 'same'); // [B·T, H, W, Cout]
      return acc === undefined ? y : tf.add(acc, y);
    });
    acc?.dispose();
    acc = sum;
  }
  const out = tf.tidy(() => {
    const y = bias === undefined ? acc! : tf.add(acc!, bias);
    return tf.reshape(y, [B, T, H, W, Cout]); // [B, T, H, W, Cout]
  });
  acc!.dispose();
  return out;
}

/** 1×1(×1) convolution as a 2-D matMul: `x` `[..., Cin]`, `w` `[1, …, 1, Cin, Cout]` → `[..., Cout]`. */
export function pointwise(x: tf.Tensor, w: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [Cin, Cout] = w.shape.slice(-2) as [number, number];
    let y = tf.matMul(tf.reshape(x, [-1, Cin]), tf.reshape(w, [Cin, Cout])); // [N, Cout]
    if (bias !== undefined) y = tf.add(y, bias);
    return tf.reshape(y, [...x.shape.slice(0, -1), Cout]);
  });
}

/** `kt - 1` copies of the first frame, then `x`: the first call's causal padding. */
function padWithFirstFrame(x: tf.Tensor, n: number): tf.Tensor {
  return tf.tidy(() => {
    const first = sliceAxis(x, 1, 0, 1); // [B, 1, H, W, C]
    return concatAxis([...Array<tf.Tensor>(n).fill(first), x], 1); // [B, n + T, H, W, C]
  });
}

export interface CausalConv3dConfig {
  inChannels: number;
  outChannels: number;
  /** Cubic kernel size (3 for the resnet convs, 1 for the spatial norm's conv_y/conv_b). */
  kernelSize: number;
}

/** `CogVideoXCausalConv3d`: parameters `conv.weight` `[Cout, Cin, k, k, k]` and `conv.bias` `[Cout]`. */
export class CausalConv3d extends M2Layer {
  static readonly className = 'M2CausalConv3d';
  /** `[k, k, k, Cin, Cout]` (tfjs layout; the checkpoint's is `[Cout, Cin, k, k, k]`). */
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  /** Cache key: the reference name of this conv. */
  readonly key: string;

  constructor(
    readonly config: CausalConv3dConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'causal_conv3d');
    this.key = ws.prefix;
    const { inChannels: i, outChannels: o, kernelSize: k } = config;
    const conv = this.child('conv', new ConvParams(ws.pp('conv'), [o, i, k, k, k]));
    this.weight = conv.weight;
    this.bias = conv.bias;
  }

  /**
   * @param x     `[B, T, H, W, Cin]`
   * @param cache carried state; without one the call is a first call and nothing is stored.
   * @returns `[B, T, H, W, Cout]`
   */
  forward(x: tf.Tensor, cache?: ConvCache): tf.Tensor {
    const k = this.config.kernelSize;
    if (x.rank !== 5 || x.shape[4] !== this.config.inChannels)
      throw new ShapeError(this.key, `expected [B, T, H, W, ${this.config.inChannels}], got [${x.shape}]`);
    if (k === 1) return pointwise(x, this.weight, this.bias);
    const prev = cache?.get(this.key);
    const padded = prev === undefined ? padWithFirstFrame(x, k - 1) : concatAxis([prev, x], 1); // [B, k-1+T, H, W, Cin]
    if (cache !== undefined) {
      cache.set(this.key, tf.keep(sliceAxis(padded, 1, padded.shape[1]! - (k - 1), k - 1))); // [B, k-1, H, W, Cin]
      prev?.dispose();
    }
    const out = conv3dByTimeTaps(padded, this.weight, this.bias);
    padded.dispose();
    return out;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override computeOutputShape(s: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(s[0]) ? s[0] : s) as tfl.Shape;
    return [...shape.slice(0, -1), this.config.outChannels];
  }
}
tf.serialization.registerClass(CausalConv3d, 'Mask2DiT');

/**
 * The `weight`/`bias` pair of a PyTorch Conv3d/Conv2d, stored in tfjs layout. Used as the inner `conv`
 * of CausalConv3d and, on its own, for the resnet's 1×1×1 `conv_shortcut`.
 */
export class ConvParams extends M2Layer {
  static readonly className = 'M2ConvParams';
  /** tfjs layout: `[kt, kh, kw, Cin, Cout]` (3-D) or `[kh, kw, Cin, Cout]` (2-D). */
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  /** @param torchShape the checkpoint's shape: `[Cout, Cin, kt, kh, kw]` or `[Cout, Cin, kh, kw]`. */
  constructor(ws: WeightSource, torchShape: number[]) {
    super(ws.prefix || 'conv');
    const w = ws.get('weight', torchShape);
    this.weight = this.param('weight', torchShape.length === 5 ? torchConv3dToTf(w) : torchConv2dToTf(w));
    w.dispose();
    this.bias = this.param('bias', ws.get('bias', [torchShape[0]!]));
  }

  /** 1×1×1 convolution (`conv_shortcut`): `[..., Cin]` → `[..., Cout]`. */
  forward(x: tf.Tensor): tf.Tensor {
    return pointwise(x, this.weight, this.bias);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), weightShape: this.weight.shape };
  }
}
tf.serialization.registerClass(ConvParams, 'Mask2DiT');
