/**
 * The pipeline folder: save → load reproduces every component bit for bit (the VAE's kernels go back
 * to the PyTorch layout on disk), typed errors for missing and unsupported parts, and the shipped
 * default model has the documented layout.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { FlowMatchSchedulerConfigSchema } from '../../src/config/schedulerConfig.js';
import { parseTextEncoderConfig } from '../../src/config/textEncoderConfig.js';
import { parseTransformerConfig } from '../../src/config/transformerConfig.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { ConfigError } from '../../src/errors.js';
import { OutputExistsError } from '../../src/io/atomic.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import {
  DEFAULT_MODEL_DIR,
  loadModelFolder,
  ModelFolderError,
  saveModelFolder,
  type ModelParts,
} from '../../src/model/modelFolder.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { encodePrompts, T5Encoder } from '../../src/text/textEncoder.js';
import { TokenizerFileError } from '../../src/text/sentencepiece.js';
import { WordTokenizer } from '../../src/text/tokenizer.js';

const TRANSFORMER = {
  _class_name: 'MultiPromptCogVideoXTransformer3DModel',
  num_attention_heads: 2,
  attention_head_dim: 16,
  in_channels: 4,
  out_channels: 4,
  time_embed_dim: 16,
  text_embed_dim: 16,
  num_layers: 1,
  sample_width: 4,
  sample_height: 4,
  sample_frames: 5,
  max_text_seq_length: 6,
  use_rotary_positional_embeddings: true,
};
const VAE = {
  block_out_channels: [8, 8, 16],
  down_block_types: Array(3).fill('CogVideoXDownBlock3D'),
  up_block_types: Array(3).fill('CogVideoXUpBlock3D'),
  latent_channels: 4,
  layers_per_block: 1,
  norm_num_groups: 4,
  temporal_compression_ratio: 4,
  sample_height: 16,
  sample_width: 16,
  scaling_factor: 0.9,
};

function makeParts(overrides: { textDim?: number; length?: number } = {}): ModelParts {
  const tokenizer = WordTokenizer.forWorld(overrides.length ?? 6);
  const te = parseTextEncoderConfig({
    vocab_size: tokenizer.vocabSize,
    d_model: overrides.textDim ?? 16,
    d_kv: 4,
    d_ff: 32,
    num_layers: 1,
    num_heads: 2,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 16,
  }).config;
  return {
    transformer: new Mask2DiTTransformer(parseTransformerConfig(TRANSFORMER).config, WeightSource.random(1)),
    vae: new CogVideoXVAE(parseVaeConfig(VAE).config, WeightSource.random(2)),
    textEncoder: T5Encoder.init(te, 3),
    tokenizer,
    schedulerConfig: FlowMatchSchedulerConfigSchema.parse({ shift: 2 }),
    samplerName: 'flow-euler',
  };
}

function disposeParts(p: ModelParts): void {
  p.transformer.dispose();
  p.vae.dispose();
  p.textEncoder?.dispose();
}

let tmp: string;
beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-folder-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true }); // no shutdownBackends(): cpu only, and later files share the engine
});

async function same(a: tf.Tensor, b: tf.Tensor): Promise<void> {
  expect(b.shape).toEqual(a.shape);
  expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
}

describe('saveModelFolder → loadModelFolder', () => {
  test('every component comes back bit for bit: weights, transformer forward, VAE decode and encode, text encoder', async () => {
    const parts = makeParts();
    const dir = path.join(tmp, 'roundtrip');
    await saveModelFolder(dir, parts, { files: { 'README.md': '# test\n' } });
    expect(fs.readdirSync(dir).sort()).toEqual([
      'README.md',
      'model_index.json',
      'scheduler',
      'text_encoder',
      'tokenizer',
      'transformer',
      'vae',
    ]);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    expect(index['_class_name']).toBe('Mask2DiTPipeline');
    expect(index['transformer']).toEqual(['videox_fun', 'MultiPromptCogVideoXTransformer3DModel']);
    expect(index['vae']).toEqual(['diffusers', 'AutoencoderKLCogVideoX']);

    const loaded = await loadModelFolder(dir);
    try {
      expect(loaded.samplerName).toBe('flow-euler');
      expect(loaded.schedulerConfig).toEqual(parts.schedulerConfig);
      expect(loaded.notes).toEqual([]);
      expect((loaded.tokenizer as WordTokenizer).toJSON()).toEqual((parts.tokenizer as WordTokenizer).toJSON());
      expect(loaded.transformer.configJson()).toEqual(parts.transformer.configJson());
      expect(loaded.vae.configJson()).toEqual(parts.vae.configJson());
      for (const [a, b] of [
        [parts.transformer, loaded.transformer],
        [parts.vae, loaded.vae],
        [parts.textEncoder!, loaded.textEncoder!],
      ] as const) {
        const wa = a.variables();
        const wb = b.variables();
        expect([...wb.keys()].sort()).toEqual([...wa.keys()].sort());
        for (const [n, v] of wa) await same(v, wb.get(n)!);
      }
      // outputs
      const x = tf.randomNormal([1, 4, 4, 4, 4], 0, 1, 'float32', 5); // [B, F, C, h, w]: 2 scenes × 2 latent frames
      const e = tf.randomNormal([1, 12, 16], 0, 1, 'float32', 6);
      const ya = parts.transformer.forward({ hiddenStates: x, encoderHiddenStates: e, timestep: [500] });
      const yb = loaded.transformer.forward({ hiddenStates: x, encoderHiddenStates: e, timestep: [500] });
      await same(ya, yb);
      const z = tf.randomNormal([1, 4, 2, 2, 2], 0, 1, 'float32', 7); // [B, C, f, h, w]
      const da = parts.vae.decode(z);
      const db = loaded.vae.decode(z);
      await same(da, db);
      const pa = parts.vae.encode(da);
      const pb = loaded.vae.encode(da);
      await same(pa.moments, pb.moments);
      const ta = encodePrompts(parts.tokenizer!, parts.textEncoder!, ['a red circle bounces']);
      const tb = encodePrompts(loaded.tokenizer!, loaded.textEncoder!, ['a red circle bounces']);
      await same(ta, tb);
      tf.dispose([x, e, ya, yb, z, da, db, ta, tb]);
      pa.dispose();
      pb.dispose();
    } finally {
      loaded.dispose();
      disposeParts(parts);
    }
  });

  test('the VAE is stored in the PyTorch layout: conv kernels [Cout, Cin, kt, kh, kw], 2-D ones [Cout, Cin, kh, kw]', async () => {
    const parts = makeParts();
    const dir = path.join(tmp, 'layout');
    try {
      await parts.vae.save(dir);
      const src = await openSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'));
      expect(src.info('encoder.conv_in.conv.weight').shape).toEqual([8, 3, 3, 3, 3]);
      expect(src.info('decoder.conv_out.conv.weight').shape).toEqual([3, 8, 3, 3, 3]);
      expect(src.info('encoder.down_blocks.0.downsamplers.0.conv.weight').shape).toEqual([8, 8, 3, 3]);
      expect(src.info('encoder.down_blocks.2.resnets.0.conv_shortcut.weight').shape).toEqual([16, 8, 1, 1, 1]);
      // values: element [o, i, t, y, x] on disk = tfjs kernel [t, y, x, i, o]
      const disk = (await src.read('encoder.conv_in.conv.weight')) as Float32Array;
      const mem = parts.vae.weightByName('encoder.conv_in.conv.weight')!;
      const m = (await mem.data()) as Float32Array;
      const [o, i, t, y, x] = [5, 2, 1, 0, 2];
      expect(disk[(((o * 3 + i) * 3 + t) * 3 + y) * 3 + x]).toBe(m[(((t * 3 + y) * 3 + x) * 3 + i) * 8 + o]);
      await src.close();
    } finally {
      disposeParts(parts);
    }
  });

  test('an existing folder is refused without force and replaced whole with it; saving and loading leak no tensors', async () => {
    const dir = path.join(tmp, 'force');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'old.txt'), 'old');
    const parts = makeParts();
    try {
      const before = tf.memory().numTensors;
      await expect(saveModelFolder(dir, parts)).rejects.toBeInstanceOf(OutputExistsError);
      await saveModelFolder(dir, parts, { force: true });
      expect(fs.existsSync(path.join(dir, 'old.txt'))).toBe(false);
      for (let k = 0; k < 2; k++) (await loadModelFolder(dir)).dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      disposeParts(parts);
    }
  });
});

describe('loadModelFolder errors', () => {
  let good: string;
  beforeAll(async () => {
    const parts = makeParts();
    good = path.join(tmp, 'good');
    await saveModelFolder(good, parts);
    disposeParts(parts);
  });
  const copy = (name: string) => {
    const d = path.join(tmp, name);
    fs.cpSync(good, d, { recursive: true });
    return d;
  };

  test('not a folder / no model_index.json / unsupported pipeline class', async () => {
    await expect(loadModelFolder(path.join(tmp, 'nope'))).rejects.toThrow(/nope: no such model folder/);
    const bare = copy('bare');
    fs.rmSync(path.join(bare, 'model_index.json'));
    await expect(loadModelFolder(bare)).rejects.toThrow(/not a pipeline folder: model_index\.json is missing/);
    const i2v = copy('i2v');
    const index = JSON.parse(fs.readFileSync(path.join(i2v, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(
      path.join(i2v, 'model_index.json'),
      JSON.stringify({ ...index, _class_name: 'CogVideoXImageToVideoPipeline' }),
    );
    const err = await loadModelFolder(i2v).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      /model_index\.json.*_class_name.*CogVideoXImageToVideoPipeline.*Mask2DiTPipeline and CogVideoXPipeline/,
    );
  });

  test('a missing component names itself', async () => {
    const noVae = copy('novae');
    fs.rmSync(path.join(noVae, 'vae'), { recursive: true });
    const err = await loadModelFolder(noVae).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelFolderError);
    expect((err as Error).message).toMatch(/novae: missing vae\/config\.json \(the video autoencoder\)/);
    const noSched = copy('nosched');
    fs.rmSync(path.join(noSched, 'scheduler'), { recursive: true });
    await expect(loadModelFolder(noSched)).rejects.toThrow(/missing scheduler\/scheduler_config\.json/);
  });

  test('a CogVideoX-style folder without a tokenizer loads, with a note that prompts need embeddings files; a broken spiece.model is an error naming it', async () => {
    const cog = copy('cogvideox');
    fs.rmSync(path.join(cog, 'tokenizer'), { recursive: true });
    const index = JSON.parse(fs.readFileSync(path.join(cog, 'model_index.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(
      path.join(cog, 'model_index.json'),
      JSON.stringify({ ...index, _class_name: 'CogVideoXPipeline', tokenizer: ['transformers', 'T5Tokenizer'] }),
    );
    const m = await loadModelFolder(cog);
    try {
      expect(m.tokenizer).toBeUndefined();
      expect(m.textEncoder).toBeUndefined();
      expect(m.notes.join(' ')).toMatch(
        /no tokenizer \(expected tokenizer\/spiece\.model.*"embeddings" file.*instead of a "prompt"/,
      );
    } finally {
      m.dispose();
    }
    fs.mkdirSync(path.join(cog, 'tokenizer'));
    fs.writeFileSync(path.join(cog, 'tokenizer', 'spiece.model'), 'x');
    const before = tf.memory().numTensors;
    const err = await loadModelFolder(cog).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerFileError);
    expect((err as Error).message).toMatch(/tokenizer\/spiece\.model: not a SentencePiece model/);
    expect(tf.memory().numTensors).toBe(before); // the transformer and VAE loaded before it were disposed
  });

  test('text parts that do not fit the transformer are a ConfigError naming the key', async () => {
    const parts = makeParts({ textDim: 8 });
    const dir = path.join(tmp, 'misfit');
    await saveModelFolder(dir, parts);
    disposeParts(parts);
    const before = tf.memory().numTensors;
    const err = await loadModelFolder(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/text_embed_dim.*d_model is 8.*expects 16/);
    expect(tf.memory().numTensors).toBe(before); // everything loaded so far was disposed
  });
});

describe('the shipped default model (weights/mask2dit-world)', () => {
  test('has the documented layout: 8× spatial / 2× temporal VAE, text length = tokenizer length, text dim = d_model, flow-matching Euler; under 25 MB', async () => {
    const m = await loadModelFolder(DEFAULT_MODEL_DIR);
    try {
      expect(m.pipelineClass).toBe('Mask2DiTPipeline');
      expect(m.vae.spatialCompression).toBe(8);
      expect(m.vae.temporalCompression).toBe(2);
      expect(m.vae.config.sample_height).toBe(64);
      expect(m.transformer.config.multiScene).toBe(true);
      expect(m.transformer.config.max_text_seq_length).toBe(m.tokenizer!.length);
      expect(m.transformer.config.text_embed_dim).toBe(m.textEncoder!.config.d_model);
      expect(m.transformer.config.in_channels).toBe(m.vae.config.latent_channels);
      expect(m.samplerName).toBe('flow-euler');
      // the model card states what was trained, how long, the final losses and how to reproduce it
      const card = fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'README.md'), 'utf8');
      const params = (n: number) => n.toLocaleString('en-US');
      for (const part of [m.vae, m.transformer, m.textEncoder!])
        expect(card).toContain(`| ${params(part.countParams())} |`);
      expect(card).toMatch(/\| \d+ steps, [\d.]+ h; final loss \(L1.* [\d.]+ \|/);
      expect(card).toMatch(/\| \d+ steps jointly with the text encoder, [\d.]+ h; final loss \(.* [\d.]+ \|/);
      expect(card).toMatch(/```bash\n.*bash scripts\/train-world\.sh/);
      expect(card).not.toMatch(/placeholder/i);
      // the reproduction script trains and exports what is shipped: steps, prediction type, sampler
      const script = fs.readFileSync('scripts/train-world.sh', 'utf8');
      const ditLine = script.split('\n').find((l) => / train dit /.test(l))!;
      expect(card).toContain(`| ${/--steps (\d+)/.exec(ditLine)![1]} steps jointly with the text encoder`);
      const sched = m.schedulerConfig as { prediction_type?: string; stochastic_sampling?: boolean };
      expect(sched.prediction_type === 'sample').toBe(/--prediction sample/.test(ditLine));
      expect(sched.stochastic_sampling === true).toBe(/ train export .*--stochastic-sampling/.test(script));
    } finally {
      m.dispose();
    }
    const bytes = (d: string): number =>
      fs
        .readdirSync(d, { withFileTypes: true })
        .reduce(
          (n, e) => n + (e.isDirectory() ? bytes(path.join(d, e.name)) : fs.statSync(path.join(d, e.name)).size),
          0,
        );
    expect(bytes(DEFAULT_MODEL_DIR)).toBeLessThan(25 * 2 ** 20);
  });
});
