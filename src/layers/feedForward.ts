/**
 * The block's MLP (diffusers `FeedForward` with `gelu-approximate`): `ff.net.0.proj` (D → inner),
 * GELU-tanh, `ff.net.2` (inner → D). Names: `net.0.proj.weight/bias`, `net.2.weight/bias`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Container, M2Layer } from './layer.js';
import { Linear } from './linear.js';
import { geluTanh } from './math.js';
import type { WeightSource } from './weightSource.js';

/** Default tokens per MLP pass (see `FeedForward.forward`). */
export const FF_CHUNK_ROWS = 2048;

export interface FeedForwardConfig {
  dim: number;
  /** Hidden width (diffusers default `4 * dim`). */
  innerDim: number;
  bias: boolean;
}

export class FeedForward extends M2Layer {
  static readonly className = 'M2FeedForward';
  readonly proj: Linear;
  readonly out: Linear;

  constructor(
    readonly config: FeedForwardConfig,
    ws: WeightSource,
  ) {
    super(ws.prefix || 'ff');
    const net = this.child('net', new Container(ws.full('net')));
    const gelu = net.add('0', new Container(ws.pp('net').full('0')));
    this.proj = gelu.add(
      'proj',
      new Linear(
        { inFeatures: config.dim, outFeatures: config.innerDim, bias: config.bias },
        ws.pp('net').pp(0).pp('proj'),
      ),
    );
    this.out = net.add(
      '2',
      new Linear({ inFeatures: config.innerDim, outFeatures: config.dim, bias: config.bias }, ws.pp('net').pp(2)),
    );
  }

  /**
   * @param x `[B, L, D]` → `[B, L, D]`
   * @param chunkRows tokens per MLP pass: the GELU keeps about seven `[rows, inner]` temporaries alive
   *   inside its tidy, so long sequences run in row chunks (same result, bounded peak memory).
   */
  forward(x: tf.Tensor, chunkRows = FF_CHUNK_ROWS): tf.Tensor {
    const D = this.config.dim;
    const n = x.size / D;
    const mlp = (rows: tf.Tensor) => this.out.forward(geluTanh(this.proj.forward(rows)));
    if (n <= chunkRows) return tf.tidy(() => mlp(x));
    return tf.tidy(() => {
      const flat = tf.reshape(x, [n, D]); // [B·L, D]
      const parts: tf.Tensor[] = [];
      for (let s = 0; s < n; s += chunkRows)
        parts.push(tf.tidy(() => mlp(tf.slice(flat, [s, 0], [Math.min(chunkRows, n - s), D])))); // [rows, D]
      return tf.reshape(tf.concat(parts, 0), x.shape); // [B, L, D]
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward(Array.isArray(inputs) ? inputs[0]! : inputs);
  }
}
tf.serialization.registerClass(FeedForward, 'Mask2DiT');
