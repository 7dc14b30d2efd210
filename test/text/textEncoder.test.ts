/**
 * The T5-style text encoder: parameter names and shapes (Hugging Face T5EncoderModel), output shape,
 * the padding mask, no tensor leaks, gradients for every parameter (and against finite differences),
 * save / fromPretrained, config validation, encodePrompts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends, type BackendName } from '../../src/backend/index.js';
import { ConfigError } from '../../src/errors.js';
import { parseTextEncoderConfig, type TextEncoderConfig } from '../../src/config/textEncoderConfig.js';
import { WeightLoadError } from '../../src/layers/weightSource.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import {
  T5Encoder,
  bucketTable,
  encodePrompts,
  relativePositionBucket,
  t5ParameterShapes,
} from '../../src/text/textEncoder.js';
import { WordTokenizer } from '../../src/text/tokenizer.js';

const tok = WordTokenizer.forWorld(16);
const tiny = (over: Partial<TextEncoderConfig> = {}): TextEncoderConfig =>
  parseTextEncoderConfig({
    vocab_size: tok.vocabSize,
    d_model: 32,
    d_kv: 8,
    num_heads: 4,
    num_layers: 2,
    d_ff: 48,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 16,
    ...over,
  }).config;
const CAPTIONS = [
  'a red triangle slides left on a blue background',
  'it bounces on a green background',
  'it grows on a white background',
];
let tmp: string;

beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-t5-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackends();
});

describe('relative position buckets (bidirectional, as transformers T5Attention._relative_position_bucket)', () => {
  test('T5 defaults: 32 buckets, max distance 128', () => {
    const b = (r: number) => relativePositionBucket(r, 32, 128);
    expect([0, 1, 7, 8, 12, 16, 32, 64, 127, 128, 1000].map(b)).toEqual(
      [16, 17, 23, 24, 25, 26, 28, 30, 31, 31, 31].map((v, i) => (i === 0 ? 0 : v)),
    );
    expect([-1, -7, -8, -16, -1000].map(b)).toEqual([1, 7, 8, 10, 15]);
  });
  test('the table is Toeplitz and in range', () => {
    const L = 20;
    const t = bucketTable(L, 8, 16);
    for (let q = 1; q < L; q++) for (let k = 1; k < L; k++) expect(t[q * L + k]).toBe(t[(q - 1) * L + k - 1]);
    expect(Math.max(...t)).toBeLessThan(8);
    expect(Math.min(...t)).toBe(0);
  });
});

describe('T5Encoder', () => {
  test('parameter names and shapes are those of transformers T5EncoderModel', () => {
    for (const ff of ['relu', 'gated-gelu'] as const) {
      const c = tiny({ feed_forward_proj: ff });
      const model = T5Encoder.init(c, 1);
      const names = new Map([...model.namedWeights()].map(([n, v]) => [n, v.shape]));
      expect(names).toEqual(t5ParameterShapes(c));
      model.dispose();
    }
    const names = [...t5ParameterShapes(tiny({ feed_forward_proj: 'gated-gelu' })).keys()];
    expect(names).toContain('shared.weight');
    expect(names).toContain('encoder.block.0.layer.0.SelfAttention.q.weight');
    expect(names).toContain('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
    expect(names).not.toContain('encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight');
    expect(names).toContain('encoder.block.1.layer.1.DenseReluDense.wi_1.weight');
    expect(names).toContain('encoder.block.0.layer.0.layer_norm.weight');
    expect(names).toContain('encoder.final_layer_norm.weight');
  });

  test('output [B, L, d_model], finite; no tensor leak across calls', () => {
    const model = T5Encoder.init(tiny(), 2);
    const ids = tok.encodeBatch(CAPTIONS);
    const warm = model.encodeIds(ids, 3);
    expect(warm.shape).toEqual([3, 16, 32]);
    expect((warm.dataSync() as Float32Array).every(Number.isFinite)).toBe(true);
    warm.dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) model.encodeIds(ids, 3).dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  test('padded positions are masked: changing the ids under a zero mask leaves real positions unchanged', () => {
    const model = T5Encoder.init(tiny({ feed_forward_proj: 'gated-gelu' }), 3);
    const a = tok.encode(CAPTIONS[1]!);
    const b = a.slice();
    b.fill(tok.vocab.indexOf('red'), 8); // overwrite padding with words
    const mask = tf.tensor2d(WordTokenizer.mask(a), [1, 16], 'int32');
    const [ta, tb] = [tf.tensor2d(a, [1, 16], 'int32'), tf.tensor2d(b, [1, 16], 'int32')];
    const ya = model.forward({ ids: ta, attentionMask: 'padding' }); // keys with ids = pad masked
    const yb = model.forward({ ids: tb, attentionMask: mask });
    const real = 7; // "it bounces on a green background </s>"
    const sa = tf.slice(ya, [0, 0, 0], [1, real, -1]);
    const sb = tf.slice(yb, [0, 0, 0], [1, real, -1]);
    expect(tf.max(tf.abs(tf.sub(sa, sb))).dataSync()[0]).toBeLessThan(1e-5);
    const yc = model.forward({ ids: tb }); // without the mask, the extra words are attended to
    expect(tf.max(tf.abs(tf.sub(sa, tf.slice(yc, [0, 0, 0], [1, real, -1])))).dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([mask, ta, tb, ya, yb, sa, sb, yc]);
    model.dispose();
  });

  test('bad inputs are ShapeErrors', () => {
    const model = T5Encoder.init(tiny(), 4);
    const f = tf.zeros([2, 16]);
    expect(() => model.forward({ ids: f })).toThrow(/int32/);
    const i = tf.zeros([2, 16], 'int32');
    const m = tf.ones([2, 15], 'int32');
    expect(() => model.forward({ ids: i, attentionMask: m })).toThrow(/attention_mask/);
    tf.dispose([f, i, m]);
    model.dispose();
  });
});

describe('gradients', () => {
  const backends: BackendName[] = ['cpu', 'wasm'];
  test.each(backends)('every parameter gets a non-zero gradient (%s)', async (backend) => {
    await selectBackend(backend);
    try {
      for (const ff of ['relu', 'gated-gelu'] as const) {
        const model = T5Encoder.init(tiny({ feed_forward_proj: ff }), 5);
        model.trainable = true;
        const ids = tf.tensor2d(tok.encodeBatch(CAPTIONS), [3, 16], 'int32');
        const target = tf.randomNormal([3, 16, 32], 0, 1, 'float32', 9);
        const vars = [...model.namedWeights()].map(([n, v]) => [n, v.read() as tf.Variable] as const);
        const before = tf.memory().numTensors;
        const { value, grads } = tf.variableGrads(
          () => tf.mean(tf.square(tf.sub(model.forward({ ids }), target))) as tf.Scalar,
          vars.map(([, v]) => v),
        );
        for (const [name, v] of vars) {
          const g = grads[v.name];
          expect(g).toBeDefined();
          expect(g!.shape).toEqual(v.shape);
          const norm = tf.tidy(() => tf.max(tf.abs(g!)).dataSync()[0]!);
          if (!(norm > 0 && Number.isFinite(norm))) throw new Error(`${backend} ${ff}: gradient of ${name} is ${norm}`);
        }
        tf.dispose([value, ...Object.values(grads)]);
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([ids, target]);
        model.dispose();
      }
    } finally {
      await selectBackend('cpu');
    }
  });

  test('gradients match central finite differences (cpu)', () => {
    const model = T5Encoder.init(tiny({ feed_forward_proj: 'gated-gelu' }), 6);
    model.trainable = true;
    const ids = tf.tensor2d(tok.encodeBatch(CAPTIONS.slice(0, 2)), [2, 16], 'int32');
    const r = tf.randomNormal([2, 16, 32], 0, 1, 'float32', 10);
    const loss = () => tf.sum(tf.mul(model.forward({ ids }), r)) as tf.Scalar;
    const probes: [string, number][] = [
      ['shared.weight', tok.vocab.indexOf('red') * 32 + 3],
      ['encoder.block.0.layer.0.SelfAttention.q.weight', 17],
      ['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 5],
      ['encoder.block.1.layer.0.SelfAttention.o.weight', 40],
      ['encoder.block.1.layer.1.DenseReluDense.wi_0.weight', 100],
      ['encoder.block.0.layer.1.layer_norm.weight', 7],
      ['encoder.final_layer_norm.weight', 2],
    ];
    for (const [name, index] of probes) {
      const v = model.weightByName(name)!;
      const { grads } = tf.variableGrads(loss, [v]);
      const analytic = grads[v.name]!.dataSync()[index]!;
      tf.dispose(Object.values(grads));
      const base = v.dataSync().slice();
      const at = (delta: number) => {
        const w = base.slice();
        w[index] = w[index]! + delta;
        v.assign(tf.tensor(w, v.shape));
        return tf.tidy(() => loss().dataSync()[0]!);
      };
      const eps = 1e-2;
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      v.assign(tf.tensor(base, v.shape));
      if (Math.abs(analytic - numeric) > 2e-2 + 2e-2 * Math.abs(numeric))
        throw new Error(`${name}[${index}]: analytic ${analytic}, numeric ${numeric}`);
    }
    tf.dispose([ids, r]);
    model.dispose();
  });
});

describe('loading and saving', () => {
  test('save → fromPretrained gives the same outputs; a tied encoder.embed_tokens.weight is ignored', async () => {
    const model = T5Encoder.init(tiny({ feed_forward_proj: 'gated-gelu' }), 7);
    const dir = path.join(tmp, 'text_encoder');
    await model.save(dir);
    const back = await T5Encoder.fromPretrained(tmp); // pipeline folder holding text_encoder/
    const ids = tok.encodeBatch(CAPTIONS);
    const [a, b] = [model.encodeIds(ids, 3), back.encodeIds(ids, 3)];
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
    tf.dispose([a, b]);
    back.dispose();

    const tied: Record<string, TensorToWrite> = {};
    for (const [n, v] of model.namedWeights())
      tied[n] = { dtype: 'F32', shape: [...v.shape] as number[], data: v.read().dataSync() as Float32Array };
    tied['encoder.embed_tokens.weight'] = tied['shared.weight']!;
    await writeSafetensors(path.join(dir, 'model.safetensors'), tied);
    (await T5Encoder.fromPretrained(dir)).dispose();

    delete tied['encoder.final_layer_norm.weight'];
    tied['encoder.extra.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    await writeSafetensors(path.join(dir, 'model.safetensors'), tied);
    await expect(T5Encoder.fromPretrained(dir)).rejects.toThrow(WeightLoadError);
    await expect(T5Encoder.fromPretrained(dir)).rejects.toThrow(
      /missing 1: encoder.final_layer_norm.weight.*unexpected 1: encoder.extra.weight/,
    );
    model.dispose();
  });

  test('config validation names the field; real T5 bookkeeping keys are accepted', () => {
    expect(() => parseTextEncoderConfig({ d_model: -1 })).toThrow(ConfigError);
    expect(() => parseTextEncoderConfig({ d_model: -1 })).toThrow(/d_model/);
    expect(() => parseTextEncoderConfig({ feed_forward_proj: 'swiglu' })).toThrow(/feed_forward_proj/);
    expect(() => parseTextEncoderConfig({ relative_attention_num_buckets: 7 })).toThrow(
      /relative_attention_num_buckets/,
    );
    expect(() => parseTextEncoderConfig([])).toThrow(/JSON object/);
    const { config, unknownKeys } = parseTextEncoderConfig({
      architectures: ['T5EncoderModel'],
      is_encoder_decoder: true,
      num_decoder_layers: 24,
      d_model: 4096,
      feed_forward_proj: 'gated-gelu',
      d_ff: 10240,
      num_heads: 64,
      num_layers: 24,
    });
    expect(unknownKeys).toEqual([]);
    expect(config.d_kv).toBe(64);
    expect(config.vocab_size).toBe(32128);
  });
});

describe('encodePrompts', () => {
  test('[1, S·T, d_model]: one block per scene, each equal to encoding the caption alone', () => {
    const model = T5Encoder.init(tiny(), 8);
    const all = encodePrompts(tok, model, CAPTIONS);
    expect(all.shape).toEqual([1, 48, 32]);
    const second = model.encodeIds(tok.encode(CAPTIONS[1]!), 1, 'padding'); // the world model's convention
    const block = tf.slice(all, [0, 16, 0], [1, 16, -1]);
    expect(tf.max(tf.abs(tf.sub(block, second))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([all, second, block]);
    expect(() => encodePrompts(tok, model, [])).toThrow(/at least one/);
    model.dispose();
    const small = T5Encoder.init(tiny({ vocab_size: 10 }), 9);
    expect(() => encodePrompts(tok, small, CAPTIONS)).toThrow(/vocab_size/);
    small.dispose();
  });
});
