/**
 * Behaviour of the VAE beyond parity: frame-batching plans, causality at call granularity, memory
 * that does not grow with the frame count, no leaked tensors, loading errors by name, config
 * validation, seeded posterior sampling. Tiny fixture weights, wasm backend (fast), cpu where noted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { ConfigError } from '../../src/errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { WeightLoadError, WeightSource } from '../../src/layers/weightSource.js';
import { CogVideoXVAE, decodeCallRanges, decodedFrameCount, encodeCallRanges } from '../../src/model/vae.js';
import { fixtureJson, fixturePath, loadFixture, toTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const WEIGHTS = fixturePath('vae_decode', 'weights.safetensors');
const load = () => CogVideoXVAE.fromPretrained(fixturePath('vae_decode'), { weights: WEIGHTS });
const tinyConfig = () => parseVaeConfig(fixtureJson('vae_decode', 'config.json')).config;

/** Latents `[1, 4, n, 3, 4]`, deterministic. */
const latents = (n: number, seed = 7) => tf.randomNormal([1, 4, n, 3, 4], 0, 1, 'float32', seed);

/** All chunks of a streamed decode, read back to arrays (tensors disposed). */
async function chunks(vae: CogVideoXVAE, z: tf.Tensor): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const c of vae.decodeChunks(z)) {
    out.push((await c.data()) as Float32Array);
    c.dispose();
  }
  return out;
}

// every block below may make tensors: never depend on a backend chosen by an earlier test file
beforeAll(async () => {
  await selectBackend('cpu');
});

describe('frame batching plans (the reference loops)', () => {
  it('decode: Mask2DiT default, auto_split, one_call', () => {
    expect(decodeCallRanges(5)).toEqual([
      [0, 1],
      [1, 3],
      [3, 5],
    ]);
    expect(decodeCallRanges(4)).toEqual([
      [0, 1],
      [1, 3],
      [3, 4],
    ]);
    expect(decodeCallRanges(13)).toHaveLength(7);
    expect(decodeCallRanges(5, 'auto_split')).toEqual([
      [0, 3],
      [3, 5],
    ]);
    expect(decodeCallRanges(1, 'auto_split')).toEqual([[0, 1]]);
    expect(decodeCallRanges(5, 'one_call')).toEqual([[0, 5]]);
    const meta = fixtureJson<{
      frame_batching: { default_mask2dit: number[][]; auto_split_and_diffusers: number[][] };
    }>('vae_decode', 'meta.json');
    expect(decodeCallRanges(5)).toEqual(meta.frame_batching.default_mask2dit);
    expect(decodeCallRanges(5, 'auto_split')).toEqual(meta.frame_batching.auto_split_and_diffusers);
  });

  it('encode: 8 frames a call, remainder joined to the first', () => {
    expect(encodeCallRanges(17)).toEqual([
      [0, 9],
      [9, 17],
    ]);
    expect(encodeCallRanges(16)).toEqual([
      [0, 8],
      [8, 16],
    ]);
    expect(encodeCallRanges(5)).toEqual([[0, 5]]);
    expect(encodeCallRanges(49)).toEqual([
      [0, 9],
      [9, 17],
      [17, 25],
      [25, 33],
      [33, 41],
      [41, 49],
    ]);
  });

  it('decoded frame counts: 4(n-1)+1 by default', () => {
    for (const n of [1, 2, 3, 5, 13]) expect(decodedFrameCount(n, 'mask2dit', 2)).toBe(4 * (n - 1) + 1);
    expect(decodedFrameCount(5, 'auto_split', 2)).toBe(17);
    expect(decodedFrameCount(5, 'one_call', 2)).toBe(17);
  });
});

describe('CogVideoXVAE on wasm', () => {
  let vae: CogVideoXVAE;
  beforeAll(async () => {
    await selectBackend('wasm');
    vae = await load();
  });
  afterAll(() => {
    vae?.dispose();
  });

  it('exposes the reference parameter names, scaling_factor and shift_factor', async () => {
    const src = await openSafetensors(WEIGHTS);
    expect([...vae.namedWeights()].map(([n]) => n).sort()).toEqual([...src.names()].sort());
    await src.close();
    expect(vae.scalingFactor).toBe(0.7);
    expect(vae.shiftFactor).toBeNull();
    expect(vae.countParams()).toBeGreaterThan(0);
  });

  it('prefix_check: decoding a prefix that ends a call reproduces the first frames exactly', async () => {
    const io = await loadFixture('vae_decode');
    const meta = fixtureJson<{
      frame_batching: { prefix_check: { latent_frames_decoded: number; output_frames_compared: number } };
    }>('vae_decode', 'meta.json');
    const { latent_frames_decoded: k, output_frames_compared: n } = meta.frame_batching.prefix_check;
    const z = toTensor(io, 'z');
    const prefix = tf.slice(z, [0, 0, 0, 0, 0], [1, 4, k, 3, 4]);
    const full = vae.decode(z);
    const part = vae.decode(prefix);
    expect(part.shape[2]).toBe(n);
    const head = tf.slice(full, [0, 0, 0, 0, 0], part.shape);
    expect(Array.from(await part.data())).toEqual(Array.from(await head.data()));
    tf.dispose([z, prefix, full, part, head]);
  });

  it('appending latent frames never changes the frames of completed calls', async () => {
    const z = latents(8);
    const all = await chunks(vae, z);
    for (let k = 1; k < 8; k++) {
      const zk = tf.slice(z, [0, 0, 0, 0, 0], [1, 4, k, 3, 4]);
      const part = await chunks(vae, zk);
      const complete = k % 2 === 1 ? part.length : part.length - 1; // an even prefix ends inside a pair
      for (let i = 0; i < complete; i++) expect(Array.from(part[i]!)).toEqual(Array.from(all[i]!));
      zk.dispose();
    }
    z.dispose();
  });

  it('peak tensor bytes while decoding 3 vs 12 latent frames differ by less than 1.25x', async () => {
    const peakAbove = async (n: number) => {
      const z = latents(n);
      const base = tf.memory().numBytes;
      const info = await tf.profile(async () => {
        for (const c of vae.decodeChunks(z)) {
          await c.data();
          c.dispose();
        }
      });
      z.dispose();
      return info.peakBytes - base;
    };
    const p3 = await peakAbove(3);
    const p12 = await peakAbove(12);
    expect(p3).toBeGreaterThan(0);
    expect(p12 / p3).toBeLessThan(1.25);
  });

  it('leaks no tensors across repeated decode and encode', async () => {
    const z = latents(3);
    const x = tf.randomUniform([1, 3, 9, 24, 32], -1, 1, 'float32', 3);
    const round = async () => {
      const out = vae.decode(z);
      await out.data();
      out.dispose();
      for (const c of vae.decodeChunks(z, { batching: 'auto_split' })) c.dispose();
      const post = vae.encode(x);
      const s = post.sample({ seed: 1 });
      await s.data();
      tf.dispose(s);
      post.dispose();
    };
    await round();
    const before = tf.memory().numTensors;
    await round();
    await round();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([z, x]);
  });

  it('a stream abandoned early frees its cache', () => {
    const z = latents(5);
    const before = tf.memory().numTensors;
    for (const c of vae.decodeChunks(z)) {
      c.dispose();
      break;
    }
    expect(tf.memory().numTensors).toBe(before);
    z.dispose();
  });

  it('posterior sampling is seeded, and mean + std·noise with explicit noise', async () => {
    const x = tf.randomUniform([1, 3, 5, 24, 32], -1, 1, 'float32', 5);
    const post = vae.encode(x);
    const [a, b, c] = [post.sample({ seed: 3 }), post.sample({ seed: 3 }), post.sample({ seed: 4 })];
    expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
    expect(Array.from(await a.data())).not.toEqual(Array.from(await c.data()));
    const zeros = tf.zerosLike(post.mean);
    const m = post.sample({ noise: zeros });
    expect(Array.from(await m.data())).toEqual(Array.from(await post.mean.data()));
    const wrong = tf.zeros([1]);
    expect(() => post.sample({ noise: wrong })).toThrow(/noise/);
    tf.dispose([a, b, c, zeros, m, x, wrong]);
    post.dispose();
  });

  it('rejects inputs of the wrong shape by name', () => {
    const bad = tf.zeros([1, 5, 2, 3, 4]);
    expect(() => vae.decode(bad)).toThrow(/z: expected \[B, 4, T/);
    expect(() => vae.encode(bad)).toThrow(/x: expected \[B, 3, T/);
    bad.dispose();
  });
});

describe('fromPretrained errors', () => {
  let dir: string;
  beforeAll(async () => {
    await selectBackend('cpu');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-load-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The fixture checkpoint rewritten through `edit`, in `dir/vae/` of a pipeline-style folder. */
  async function writeEdited(edit: (t: Record<string, TensorToWrite>) => void): Promise<string> {
    const src = await openSafetensors(WEIGHTS);
    const tensors: Record<string, TensorToWrite> = {};
    for (const n of src.names())
      tensors[n] = { dtype: 'F32', shape: src.info(n).shape, data: (await src.read(n)) as Float32Array };
    await src.close();
    edit(tensors);
    const vaeDir = path.join(dir, 'vae');
    fs.mkdirSync(vaeDir, { recursive: true });
    fs.copyFileSync(fixturePath('vae_decode', 'config.json'), path.join(vaeDir, 'config.json'));
    await writeSafetensors(path.join(vaeDir, 'diffusion_pytorch_model.safetensors'), tensors);
    return dir;
  }

  it('loads a pipeline folder holding vae/ (with bf16 weights)', async () => {
    await writeEdited((t) => {
      for (const v of Object.values(t)) v.dtype = 'BF16';
    });
    const vae = await CogVideoXVAE.fromPretrained(dir);
    expect(vae.config.latent_channels).toBe(4);
    vae.dispose();
  });

  it('names missing, unexpected and wrongly shaped tensors in one error', async () => {
    await writeEdited((t) => {
      delete t['decoder.conv_in.conv.bias'];
      t['decoder.extra.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array([1]) };
      t['encoder.norm_out.weight'] = { dtype: 'F32', shape: [3], data: new Float32Array(3) };
    });
    const before = tf.memory().numTensors;
    const err = await CogVideoXVAE.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightLoadError);
    const e = err as WeightLoadError;
    expect(e.missing).toEqual(['decoder.conv_in.conv.bias']);
    expect(e.unexpected).toEqual(['decoder.extra.weight']);
    expect(e.wrongShape).toEqual([{ name: 'encoder.norm_out.weight', expected: [16], got: [3] }]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a folder without config.json is a ConfigError naming the file', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-empty-'));
    await expect(CogVideoXVAE.fromPretrained(empty)).rejects.toThrow(/config\.json/);
    fs.rmSync(empty, { recursive: true });
  });

  it('the WeightSource random constructor builds the same tree (no file)', () => {
    const vae = new CogVideoXVAE(tinyConfig(), WeightSource.random(1));
    expect([...vae.namedWeights()]).toHaveLength(240);
    vae.dispose();
  });
});

describe('VAE config validation', () => {
  const base = () => fixtureJson('vae_decode', 'config.json');
  it('accepts the fixture config and fills reference defaults', () => {
    const c = tinyConfig();
    expect(c.temporalCompressLevel).toBe(2);
    expect(c.spatialCompression).toBe(8);
    const d = parseVaeConfig({}).config;
    expect(d.block_out_channels).toEqual([128, 256, 256, 512]);
    expect(d.latent_channels).toBe(16);
    expect(d.scaling_factor).toBe(1.15258426);
  });
  it('warns about unknown keys and returns them', () => {
    expect(parseVaeConfig({ ...base(), surprise: 1 }).unknownKeys).toEqual(['surprise']);
  });
  it.each([
    [{ block_out_channels: [8, 10, 16, 16] }, /block_out_channels.*multiple of norm_num_groups 4/],
    [{ down_block_types: ['CogVideoXDownBlock3D'] }, /down_block_types: expected 4 entries/],
    [{ temporal_compression_ratio: 3 }, /temporal_compression_ratio: expected a power of 2/],
    [{ temporal_compression_ratio: 16 }, /exceeds the 3 resampling blocks/],
    [{ latent_channels: 0 }, /latent_channels/],
    [{ use_quant_conv: true }, /use_quant_conv: quant_conv is not supported/],
    [{ _class_name: 'AutoencoderKL' }, /_class_name/],
  ])('rejects %j', (patch, message) => {
    expect(() => parseVaeConfig({ ...base(), ...patch }, 'vae/config.json')).toThrow(ConfigError);
    expect(() => parseVaeConfig({ ...base(), ...patch }, 'vae/config.json')).toThrow(message);
  });
});
