/**
 * The synthetic Mask²DiT folder: the tiny scale has the layout and keys of the real one, every config
 * passes the project's readers, the parameter lists are exactly what the model classes build (so
 * the full-size lists, computed the same way, cannot drift), the folder loads and runs; the full
 * scale's parameter counts and shard layout are derived from its configs (nothing is generated).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { readSchedulerConfig, COGVIDEOX_5B_SCHEDULER } from '../../src/config/schedulerConfig.js';
import {
  parseTextEncoderConfig,
  readTextEncoderConfig,
  type TextEncoderConfig,
} from '../../src/config/textEncoderConfig.js';
import {
  parseTransformerConfig,
  readTransformerConfig,
  type TransformerConfig,
} from '../../src/config/transformerConfig.js';
import { parseVaeConfig, readVaeConfig, type VaeConfig } from '../../src/config/vaeConfig.js';
import { OutputExistsError } from '../../src/io/atomic.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { planShards } from '../../src/io/safetensorsShards.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { loadModelFolder, readModelIndex } from '../../src/model/modelFolder.js';
import {
  DEFAULT_SPIECE,
  configText,
  parameterCount,
  pythonFloat,
  randomBf16Tensor,
  randomWeights,
  sentencePieceCount,
  syntheticShapes,
  syntheticSpec,
  transformerParameterShapes,
  vaeParameterShapes,
  writeSyntheticPipeline,
} from '../../src/model/syntheticPipeline.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { T5Encoder, t5ParameterShapes } from '../../src/text/textEncoder.js';

let tmp: string;
let dir: string;
beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-synthetic-'));
  dir = path.join(tmp, 'tiny');
  await writeSyntheticPipeline(dir, { scale: 'tiny', seed: 3 });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sorted = (m: Iterable<[string, readonly number[]]>) =>
  [...m].map(([n, s]): [string, number[]] => [n, [...s]]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
const tree = (d: string): string[] =>
  fs
    .readdirSync(d, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(d, path.join(e.parentPath, e.name)))
    .sort();

describe('tiny folder', () => {
  test('layout: the files of the real release, the transformer and text encoder in several shards', () => {
    expect(tree(dir)).toEqual([
      'README.md',
      'model_index.json',
      'scheduler/scheduler_config.json',
      'text_encoder/config.json',
      'text_encoder/model-00001-of-00003.safetensors',
      'text_encoder/model-00002-of-00003.safetensors',
      'text_encoder/model-00003-of-00003.safetensors',
      'text_encoder/model.safetensors.index.json',
      'tokenizer/added_tokens.json',
      'tokenizer/special_tokens_map.json',
      'tokenizer/spiece.model',
      'tokenizer/tokenizer_config.json',
      'transformer/config.json',
      'transformer/diffusion_pytorch_model-00001-of-00003.safetensors',
      'transformer/diffusion_pytorch_model-00002-of-00003.safetensors',
      'transformer/diffusion_pytorch_model-00003-of-00003.safetensors',
      'transformer/diffusion_pytorch_model.safetensors.index.json',
      'vae/config.json',
      'vae/diffusion_pytorch_model.safetensors',
    ]);
    expect(fs.readdirSync(tmp)).toEqual(['tiny']); // no temp sibling left
  });

  test('every config passes the project readers, with no unknown keys', () => {
    const t = readTransformerConfig(path.join(dir, 'transformer', 'config.json'));
    expect(t.unknownKeys).toEqual([]);
    expect(t.config).toMatchObject({
      _class_name: 'MultiPromptCogVideoXTransformer3DModel',
      attn_msk_version: 2,
      use_rotary_positional_embeddings: true,
      multiScene: true,
    });
    const v = readVaeConfig(path.join(dir, 'vae', 'config.json'));
    expect(v.unknownKeys).toEqual([]);
    expect(v.config.latent_channels).toBe(t.config.in_channels);
    const e = readTextEncoderConfig(path.join(dir, 'text_encoder', 'config.json'));
    expect(e.unknownKeys).toEqual([]);
    expect(e.config.d_model).toBe(t.config.text_embed_dim);
    expect(readSchedulerConfig(path.join(dir, 'scheduler', 'scheduler_config.json'))).toEqual(COGVIDEOX_5B_SCHEDULER);
    expect(readModelIndex(dir)).toMatchObject({
      _class_name: 'CogVideoXPipeline',
      tokenizer: ['transformers', 'T5Tokenizer'],
    });
    // the configs are those of the full scale with other numbers: same keys everywhere
    const full = syntheticSpec('full');
    for (const [file, key] of [
      ['transformer/config.json', 'transformer'],
      ['vae/config.json', 'vae'],
      ['text_encoder/config.json', 'textEncoder'],
      ['scheduler/scheduler_config.json', 'scheduler'],
      ['model_index.json', 'modelIndex'],
    ] as const) {
      expect(Object.keys(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as object)).toEqual(
        Object.keys(full[key]).sort(),
      );
    }
  });

  test('config text is what json.dumps(indent=2, sort_keys=True) writes: Python floats, sorted keys', () => {
    expect([1e-5, 1e-6, 0.7, 1, 0, 0.00085, 1.875, 1e20].map(pythonFloat)).toEqual([
      '1e-05',
      '1e-06',
      '0.7',
      '1.0',
      '0.0',
      '0.00085',
      '1.875',
      '1e+20',
    ]);
    expect(configText({ b: [1, 2], norm_eps: 1e-5, a: { dropout: 0, n: 3 } })).toBe(
      '{\n  "a": {\n    "dropout": 0.0,\n    "n": 3\n  },\n  "b": [\n    1,\n    2\n  ],\n  "norm_eps": 1e-05\n}\n',
    );
    const text = fs.readFileSync(path.join(dir, 'transformer', 'config.json'), 'utf8');
    expect(text).toContain('"norm_eps": 1e-05,');
    expect(text).toContain('"temporal_interpolation_scale": 1.0,');
  });

  test('tokenizer files: T5Tokenizer with 100 extra ids after the spiece pieces, within the encoder vocabulary', () => {
    const pieces = sentencePieceCount(fs.readFileSync(path.join(dir, 'tokenizer', 'spiece.model')));
    expect(pieces).toBe(2000);
    expect(fs.readFileSync(path.join(dir, 'tokenizer', 'spiece.model')).equals(fs.readFileSync(DEFAULT_SPIECE))).toBe(
      true,
    );
    const read = (f: string) =>
      JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer', f), 'utf8')) as Record<string, unknown>;
    const cfg = read('tokenizer_config.json');
    expect(cfg).toMatchObject({
      tokenizer_class: 'T5Tokenizer',
      legacy: true,
      extra_ids: 100,
      model_max_length: 32,
      eos_token: '</s>',
      pad_token: '<pad>',
      unk_token: '<unk>',
    });
    expect(cfg['additional_special_tokens']).toEqual(Array.from({ length: 100 }, (_, i) => `<extra_id_${i}>`));
    expect((cfg['added_tokens_decoder'] as Record<string, { content: string }>)['2099']!.content).toBe('<extra_id_0>');
    expect(read('added_tokens.json')).toMatchObject({ '<extra_id_0>': 2099, '<extra_id_99>': 2000 });
    expect(read('special_tokens_map.json')['eos_token']).toMatchObject({ content: '</s>' });
    expect(pieces + 100).toBeLessThanOrEqual(
      readTextEncoderConfig(path.join(dir, 'text_encoder', 'config.json')).config.vocab_size,
    );
  });

  test('existing folder refused without force; force replaces it', async () => {
    await expect(writeSyntheticPipeline(dir, { scale: 'tiny' })).rejects.toBeInstanceOf(OutputExistsError);
    const again = path.join(tmp, 'again');
    fs.mkdirSync(again);
    fs.writeFileSync(path.join(again, 'stale.txt'), 'x');
    await writeSyntheticPipeline(again, { scale: 'tiny', seed: 3, force: true });
    expect(fs.existsSync(path.join(again, 'stale.txt'))).toBe(false);
    // same seed, same bytes
    for (const f of tree(dir).filter((n) => n.endsWith('.safetensors')))
      expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(dir, f)))).toBe(true);
    fs.rmSync(again, { recursive: true });
    expect(fs.readdirSync(tmp)).toEqual(['tiny']);
  });
});

describe('parameter lists equal what the model classes build', () => {
  const tiny = syntheticSpec('tiny');
  const shapes = syntheticShapes(tiny);

  test('transformer (Mask2DiTTransformer)', () => {
    const model = new Mask2DiTTransformer(parseTransformerConfig(tiny.transformer).config, WeightSource.zeros());
    try {
      expect(sorted(shapes.transformer)).toEqual(
        sorted([...model.namedWeights()].map(([n, v]) => [n, v.shape as number[]])),
      );
    } finally {
      model.dispose();
    }
  });

  test('VAE (CogVideoXVAE, PyTorch layouts)', () => {
    const model = new CogVideoXVAE(parseVaeConfig(tiny.vae).config, WeightSource.zeros());
    const { tensors, converted } = model.referenceTensors();
    try {
      expect(sorted(shapes.vae)).toEqual(sorted(tensors.map(([n, t]) => [n, t.shape])));
    } finally {
      tf.dispose(converted);
      model.dispose();
    }
  });

  test('T5 encoder (T5Encoder)', () => {
    const cfg = readTextEncoderConfig(path.join(dir, 'text_encoder', 'config.json')).config;
    const model = new T5Encoder(cfg, WeightSource.zeros());
    try {
      expect(sorted(shapes.textEncoder)).toEqual(
        sorted([...model.namedWeights()].map(([n, v]) => [n, v.shape as number[]])),
      );
    } finally {
      model.dispose();
    }
  });

  test('the files hold exactly these names, shapes, BF16', async () => {
    for (const [sub, m] of [
      ['transformer', shapes.transformer],
      ['text_encoder', shapes.textEncoder],
      ['vae', shapes.vae],
    ] as const) {
      const src = await openSafetensors(path.join(dir, sub));
      try {
        expect(sorted(src.names().map((n) => [n, src.info(n).shape]))).toEqual(sorted(m));
        expect(new Set(src.names().map((n) => src.info(n).dtype))).toEqual(new Set(['BF16']));
      } finally {
        await src.close();
      }
    }
  });
});

describe('the tiny folder loads and runs', () => {
  test('loadModelFolder (transformer, VAE, SentencePiece tokenizer, T5) and T5Encoder.fromPretrained', async () => {
    const m = await loadModelFolder(dir);
    try {
      expect(m.pipelineClass).toBe('CogVideoXPipeline');
      expect(m.samplerName).toBe('ddim');
      expect(m.notes).toEqual([]);
      expect(m.tokenizer?.constructor.name).toBe('T5Tokenizer');
      expect(m.textEncoder?.config.d_model).toBe(m.transformer.config.text_embed_dim);
      const c = m.transformer.config;
      const y = tf.tidy(() => {
        const x = tf.randomNormal([1, 2, c.in_channels, 8, 8], 0, 1, 'float32', 1);
        const e = tf.randomNormal([1, 2 * c.max_text_seq_length, c.text_embed_dim], 0, 1, 'float32', 2); // 2 scenes
        return m.transformer.forward({ hiddenStates: x, encoderHiddenStates: e, timestep: [500] });
      });
      expect(y.shape).toEqual([1, 2, c.outChannels, 8, 8]);
      expect((await y.data()).every(Number.isFinite)).toBe(true);
      y.dispose();
      const z = tf.randomNormal([1, m.vae.config.latent_channels, 2, 2, 2], 0, 1, 'float32', 3);
      const video = m.vae.decode(z);
      expect(video.shape).toEqual([1, 3, 5, 16, 16]);
      tf.dispose([z, video]);
    } finally {
      m.dispose();
    }
    const enc = await T5Encoder.fromPretrained(dir);
    try {
      const h = enc.encodeIds(Int32Array.from([2099, 2000, 17, 1, 0, 0]), 1);
      expect(h.shape).toEqual([1, 6, enc.config.d_model]);
      expect((await h.data()).every(Number.isFinite)).toBe(true);
      h.dispose();
    } finally {
      enc.dispose();
    }
  });

  test('values: N(0, 1/fan_in) matrices, 1 + small noise norm scales, small biases', async () => {
    const src = await openSafetensors(path.join(dir, 'text_encoder'));
    const stats = async (name: string) => {
      const v = (await src.read(name)) as Float32Array;
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return { mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length) };
    };
    try {
      const shared = await stats('shared.weight'); // [2128, 32]: fan_in 32
      expect(shared.mean).toBeCloseTo(0, 2);
      expect(shared.std).toBeCloseTo(1 / Math.sqrt(32), 2);
      const norm = await stats('encoder.final_layer_norm.weight');
      expect(norm.mean).toBeGreaterThan(0.9);
      expect(norm.mean).toBeLessThan(1.1);
    } finally {
      await src.close();
    }
    const t = await openSafetensors(path.join(dir, 'transformer'));
    try {
      const bias = (await t.read('proj_out.bias')) as Float32Array;
      expect(Math.max(...bias.map(Math.abs))).toBeLessThan(0.2);
    } finally {
      await t.close();
    }
  });

  test('random tensors are deterministic per (seed, name) and independent of chunking', () => {
    const draw = (seed: number, chunk: number) => {
      const t = randomBf16Tensor('blocks.0.w', [33, 7], seed); // 462 bytes: odd pair count, a 2-byte tail
      const out = new Uint8Array(462);
      const buf = new Uint8Array(chunk);
      for (let s = 0; s < out.length; s += chunk) {
        const c = buf.subarray(0, Math.min(chunk, out.length - s));
        t.fill(c, s);
        out.set(c, s);
      }
      return out;
    };
    expect(draw(1, 8)).toEqual(draw(1, 1 << 12));
    expect(draw(1, 16)).toEqual(draw(1, 40));
    expect(draw(2, 8)).not.toEqual(draw(1, 8));
    const [a, b] = randomWeights(
      new Map([
        ['x.weight', [4, 4]],
        ['y.weight', [4, 4]],
      ]),
      1,
    );
    const fa = new Uint8Array(32);
    const fb = new Uint8Array(32);
    a!.fill(fa, 0);
    b!.fill(fb, 0);
    expect(fa).not.toEqual(fb);
  });
});

// ---------------------------------------------------------------------------------------------
// Full scale: counts from closed forms of the configs, and the shard layout (planned, never written)

function transformerCount(c: TransformerConfig): number {
  const D = c.num_attention_heads * c.attention_head_dim;
  const [E, T, C, p, hd] = [c.time_embed_dim, c.text_embed_dim, c.in_channels, c.patch_size, c.attention_head_dim];
  const lin = (o: number, i: number) => o * i + o;
  const block = 2 * (lin(6 * D, E) + 2 * D) + 2 * 2 * hd + 4 * lin(D, D) + lin(4 * D, D) + lin(D, 4 * D);
  const rest =
    D * C * p * p +
    D +
    lin(D, T) +
    lin(E, D) +
    lin(E, E) +
    2 * D +
    lin(2 * D, E) +
    2 * D +
    lin(p * p * c.outChannels, D);
  return c.num_layers * block + rest;
}

function t5Count(c: TextEncoderConfig): number {
  const inner = c.num_heads * c.d_kv;
  const layer = 4 * c.d_model * inner + 3 * c.d_model * c.d_ff + 2 * c.d_model; // q k v o, wi_0 wi_1 wo, 2 RMS norms
  return c.vocab_size * c.d_model + c.num_layers * layer + c.relative_attention_num_buckets * c.num_heads + c.d_model;
}

function vaeCount(c: VaeConfig): number {
  const conv = (o: number, i: number, k = 3) => o * i * k ** 3 + o;
  const gn = (ch: number) => 2 * ch;
  const sn = (ch: number) => gn(ch) + 2 * conv(ch, c.latent_channels, 1);
  const resnet = (i: number, o: number, norm: (ch: number) => number) =>
    norm(i) + norm(o) + conv(o, i) + conv(o, o) + (i !== o ? o * i + o : 0);
  const stack = (i: number, o: number, n: number, norm: (ch: number) => number) =>
    resnet(i, o, norm) + (n - 1) * resnet(o, o, norm);
  const ch = c.block_out_channels;
  const n = ch.length;
  const down2d = (x: number) => x * x * 9 + x;
  let enc =
    conv(ch[0]!, c.in_channels) +
    stack(ch[n - 1]!, ch[n - 1]!, 2, gn) +
    gn(ch[n - 1]!) +
    conv(2 * c.latent_channels, ch[n - 1]!);
  ch.forEach(
    (o, i) => (enc += stack(i === 0 ? ch[0]! : ch[i - 1]!, o, c.layers_per_block, gn) + (i < n - 1 ? down2d(o) : 0)),
  );
  const r = [...ch].reverse();
  let dec =
    conv(r[0]!, c.latent_channels) + stack(r[0]!, r[0]!, 2, sn) + sn(r[n - 1]!) + conv(c.out_channels, r[n - 1]!);
  r.forEach(
    (o, i) => (dec += stack(i === 0 ? r[0]! : r[i - 1]!, o, c.layers_per_block + 1, sn) + (i < n - 1 ? down2d(o) : 0)),
  );
  return enc + dec;
}

describe('full scale (listing only)', () => {
  const full = syntheticSpec('full');
  const shapes = syntheticShapes(full);
  const tc = parseTransformerConfig(full.transformer).config;
  const ec = parseTextEncoderConfig(full.textEncoder).config;
  const vc = parseVaeConfig(full.vae).config;

  test('parameter counts: CogVideoX-5B transformer ≈ 5.57 B, T5-XXL encoder ≈ 4.76 B, VAE ≈ 0.22 B', () => {
    expect(parameterCount(shapes.transformer)).toBe(transformerCount(tc));
    expect(parameterCount(shapes.textEncoder)).toBe(t5Count(ec));
    expect(parameterCount(shapes.vae)).toBe(vaeCount(vc));
    expect(parameterCount(shapes.transformer) / 1e9).toBeCloseTo(5.57, 2);
    expect(parameterCount(shapes.textEncoder) / 1e9).toBeCloseTo(4.76, 2);
    expect(parameterCount(shapes.vae) / 1e9).toBeCloseTo(0.215, 2);
    // same derivation as the tiny lists checked against the classes above
    expect(transformerParameterShapes(tc)).toEqual(shapes.transformer);
    expect(vaeParameterShapes(vc)).toEqual(shapes.vae);
    expect(t5ParameterShapes(ec)).toEqual(shapes.textEncoder);
    expect(shapes.textEncoder.has('encoder.embed_tokens.weight')).toBe(false); // tied: saved as shared.weight only
  });

  test('shards at save_pretrained(max_shard_size="5GB"): transformer 3 files, encoder 2, VAE 1; sizes are 2 bytes a parameter', () => {
    const plan = (m: Map<string, number[]>, stem: string, max: number) =>
      planShards(randomWeights(m, 0), { stem, maxShardSize: max });
    const t = plan(shapes.transformer, 'diffusion_pytorch_model', full.maxShardSize.transformer);
    const e = plan(shapes.textEncoder, 'model', full.maxShardSize.textEncoder);
    const v = plan(shapes.vae, 'diffusion_pytorch_model', full.maxShardSize.vae);
    expect(t.files.map((f) => f.file)).toEqual(
      [1, 2, 3].map((i) => `diffusion_pytorch_model-0000${i}-of-00003.safetensors`),
    );
    expect(e.files.map((f) => f.file)).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    expect(v.files.map((f) => f.file)).toEqual(['diffusion_pytorch_model.safetensors']);
    expect(t.totalSize).toBe(2 * transformerCount(tc));
    expect(e.totalSize).toBe(2 * t5Count(ec));
    for (const f of [...t.files, ...e.files]) expect(f.bytes).toBeLessThanOrEqual(5e9);
  });
});
