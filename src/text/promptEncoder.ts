/**
 * Prompt text → the transformer's `encoder_hidden_states`, exactly as the reference pipelines do it.
 *
 *   ids  = tokenizer(prompts, padding="max_length", max_length=L, truncation=True)     [N, L]
 *   embs = T5(ids)[0]              (no attention mask: padding takes part)              [N, L, D]
 *
 * - diffusers `CogVideoXPipeline.encode_prompt`: each prompt's row repeated `numVideosPerPrompt` times
 *   (prompt-major); `negativePrompt` undefined means `""` (ids `[</s>, <pad>, …]`), a string is repeated
 *   for every prompt.
 * - Mask²DiT (both pipelines): `prompts` is a flat list of `batchSize · S` strings, batch-major
 *   (`prompts[b·S + s]`), encoded as one batch and reshaped to `[batchSize, S·L, D]` — scene s owns tokens
 *   `[s·L, (s+1)·L)`; the negative string is encoded once per scene; with guidance the context is
 *   `cat([negative, positive])` along the batch → `[2·batchSize, S·L, D]`.
 *
 * The shipped world model (word tokenizer) was trained with padding masked out of T5's attention; its
 * tokenizer says so (`attentionMask: 'padding'`), real SentencePiece tokenizers use the reference's
 * unmasked call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';
import type { T5Encoder } from './textEncoder.js';

/** What prompt encoding needs of a tokenizer (the world's WordTokenizer and the SentencePiece T5Tokenizer). */
export interface PromptTokenizer {
  /** Ids per prompt (`max_sequence_length`): every row is padded or truncated to it. */
  readonly length: number;
  /** Ids the tokenizer can produce (must fit the encoder's embedding table). */
  readonly vocabSize: number;
  /** Prompts → `[N·length]` ids, row-major `[N, length]`. */
  encodeBatch(texts: readonly string[]): Int32Array;
  /** How the encoder treats padding for this tokenizer's model (default `'none'`, the reference call). */
  readonly attentionMask?: 'none' | 'padding';
}

/** Rows encoded per T5 call: bounds the encoder's `[rows, heads, L, L]` scores (T5-XXL at L 226: 13 MB a row). */
const ROWS_PER_CALL = 8;

export class PromptEncoder {
  constructor(
    readonly tokenizer: PromptTokenizer,
    readonly encoder: T5Encoder,
  ) {
    const c = encoder.config;
    if (tokenizer.vocabSize > c.vocab_size) {
      throw new ConfigError(
        'text_encoder/config.json',
        'vocab_size',
        `the tokenizer has ${tokenizer.vocabSize} ids, the encoder's embedding table only ${c.vocab_size} rows`,
      );
    }
  }

  /** `max_sequence_length` L. */
  get length(): number {
    return this.tokenizer.length;
  }

  /** Prompts → `[N, L, D]`, a few rows per encoder call. */
  encode(texts: readonly string[]): tf.Tensor {
    if (texts.length === 0) throw new ShapeError('prompts', 'expected at least one prompt');
    const L = this.length;
    const ids = this.tokenizer.encodeBatch(texts); // [N·L]
    const mask = this.tokenizer.attentionMask ?? 'none';
    const parts: tf.Tensor[] = [];
    try {
      for (let r = 0; r < texts.length; r += ROWS_PER_CALL) {
        const n = Math.min(ROWS_PER_CALL, texts.length - r);
        parts.push(this.encoder.encodeIds(ids.subarray(r * L, (r + n) * L), n, mask)); // [n, L, D]
      }
      return parts.length === 1 ? parts.pop()! : tf.concat(parts, 0); // [N, L, D]
    } finally {
      tf.dispose(parts);
    }
  }

  /**
   * diffusers `CogVideoXPipeline.encode_prompt`: `{ prompt, negative }` each `[N·n, L, D]` (n = numVideosPerPrompt);
   * `negative` only with guidance.
   */
  encodePrompt(
    prompts: string | readonly string[],
    options: { negativePrompt?: string | readonly string[]; numVideosPerPrompt?: number; guidance?: boolean } = {},
  ): { prompt: tf.Tensor; negative?: tf.Tensor } {
    const list = typeof prompts === 'string' ? [prompts] : [...prompts];
    const n = options.numVideosPerPrompt ?? 1;
    if (!Number.isInteger(n) || n < 1)
      throw new ShapeError('num_videos_per_prompt', `expected a positive integer, got ${n}`);
    const prompt = repeatRows(this.encode(list), n);
    if (!(options.guidance ?? true)) return { prompt };
    const neg = options.negativePrompt ?? '';
    const negList = typeof neg === 'string' ? Array<string>(list.length).fill(neg) : [...neg];
    if (negList.length !== list.length) {
      prompt.dispose();
      throw new ShapeError(
        'negative_prompt',
        `expected one negative prompt or ${list.length} (one per prompt), got ${negList.length}`,
      );
    }
    return { prompt, negative: repeatRows(this.encode(negList), n) };
  }

  /**
   * Mask²DiT's multi-scene context: `prompts` flat and batch-major (`batchSize · S` strings) →
   * `[2·batchSize, S·L, D]` (negative rows first) with guidance, `[batchSize, S·L, D]` without.
   */
  multiSceneContext(
    prompts: readonly string[],
    options: { batchSize?: number; negativePrompt?: string | readonly string[]; guidance?: boolean } = {},
  ): tf.Tensor {
    const B = options.batchSize ?? 1;
    if (!Number.isInteger(B) || B < 1 || prompts.length % B !== 0 || prompts.length === 0) {
      throw new ShapeError('prompt', `${prompts.length} prompts do not split into batch_size ${B} rows of scenes`);
    }
    const S = prompts.length / B;
    const toContext = (e: tf.Tensor) => tf.tidy(() => tf.reshape(e, [B, S * this.length, e.shape[2]!])); // [B, S·L, D]
    const positive = this.encode(prompts);
    const pos = toContext(positive);
    positive.dispose();
    if (!(options.guidance ?? true)) return pos;
    const neg = options.negativePrompt ?? '';
    const negList = typeof neg === 'string' ? Array<string>(prompts.length).fill(neg) : [...neg];
    if (negList.length !== prompts.length) {
      pos.dispose();
      throw new ShapeError(
        'negative_prompt',
        `expected one negative prompt or ${prompts.length} (one per prompt), got ${negList.length}`,
      );
    }
    const negative = this.encode(negList);
    const negCtx = toContext(negative);
    negative.dispose();
    const out = tf.concat([negCtx, pos], 0); // [2B, S·L, D]
    tf.dispose([negCtx, pos]);
    return out;
  }
}

/** Each row of `[N, L, D]` repeated n times consecutively → `[N·n, L, D]`; `x` is consumed. */
function repeatRows(x: tf.Tensor, n: number): tf.Tensor {
  if (n === 1) return x;
  const [N, L, D] = x.shape as [number, number, number];
  const out = tf.tidy(() => tf.reshape(tf.tile(tf.expandDims(x, 1), [1, n, 1, 1]), [N * n, L, D])); // [N, n, L, D] → [N·n, L, D]
  x.dispose();
  return out;
}
