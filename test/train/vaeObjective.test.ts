/** The VAE objective's foreground weighting: the mask marks exactly the character, and the weighted loss is the weighted mean. */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { tinyVaeConfig } from '../helpers/tinyVae.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { sampleClip } from '../../src/data/world.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { StepRng } from '../../src/train/rng.js';
import { foregroundWeights, vaeObjective, worldScene } from '../../src/train/vaeObjective.js';

const world = { framesPerScene: 5, width: 32, height: 32 };

beforeAll(async () => {
  await selectBackend('wasm');
});
afterAll(() => shutdownBackends());

describe('foregroundWeights', () => {
  test('weight fg exactly where a pixel differs from the background colour', () => {
    for (const seed of [3, 11, 42]) {
      const clip = sampleClip(seed, world);
      const frames = clip.scenes[0]!.frames; // [3, T, H, W] in [-1, 1]
      const plane = 5 * 32 * 32;
      const w = foregroundWeights(frames, 1, 5, 32, 32, 7);
      const bg = [frames[0]!, frames[plane]!, frames[2 * plane]!];
      let fgCount = 0;
      for (let i = 0; i < plane; i++) {
        const differs = [0, 1, 2].some((c) => Math.abs(frames[c * plane + i]! - bg[c]!) > 0.05);
        expect(w[i]).toBe(differs ? 7 : 1);
        if (differs) fgCount++;
      }
      // the character is there, and small: between 1 % and 30 % of the pixels
      expect(fgCount / plane).toBeGreaterThan(0.01);
      expect(fgCount / plane).toBeLessThan(0.3);
    }
  });

  test('a batch gets each clip its own background', () => {
    const a = sampleClip(1, world).scenes[0]!.frames;
    const b = sampleClip(2, world).scenes[0]!.frames;
    const both = new Float32Array(a.length * 2);
    both.set(a);
    both.set(b, a.length);
    const w = foregroundWeights(both, 2, 5, 32, 32, 4);
    expect(Array.from(w.subarray(0, 5 * 1024))).toEqual(Array.from(foregroundWeights(a, 1, 5, 32, 32, 4)));
    expect(Array.from(w.subarray(5 * 1024))).toEqual(Array.from(foregroundWeights(b, 1, 5, 32, 32, 4)));
  });
});

describe('vaeObjective', () => {
  const raw = tinyVaeConfig({ widths: [4, 4, 4], size: 32, temporalCompression: 4 });

  test('weight 1 is the plain L1; weight w is the w-weighted mean of the same errors; no tensors leak', () => {
    const vae = new CogVideoXVAE(parseVaeConfig(raw).config, WeightSource.random(5));
    const opts = { batchSize: 2, klWeight: 0, world, clipSeeds: 100 };
    const loss = (fg: number) => {
      const o = vaeObjective(vae, { ...opts, foregroundWeight: fg })(0, new StepRng(9, 0));
      const l = o.loss();
      const v = l.dataSync()[0]!;
      l.dispose();
      o.dispose!();
      return v;
    };
    loss(1); // warm-up: the VAE builds its cached tensors on first use
    const before = tf.memory().numTensors;
    const plain = loss(1);
    const weighted = loss(10);
    expect(tf.memory().numTensors).toBe(before);
    // the same step again by hand: its scenes, its noise, the reconstruction error, both means
    const rng = new StepRng(9, 0);
    const u = rng.uniforms(4);
    const scenes = [worldScene(u[0]!, u[1]!, opts), worldScene(u[2]!, u[3]!, opts)];
    const data = new Float32Array(scenes[0]!.length * 2);
    data.set(scenes[0]!);
    data.set(scenes[1]!, scenes[0]!.length);
    const [wantPlain, wantWeighted] = tf.tidy(() => {
      const x = tf.tensor(data, [2, 3, 5, 32, 32]);
      const post = vae.encode(x);
      const z = tf.add(post.mean, tf.mul(post.std, tf.tensor(rng.gaussians(post.mean.size), post.mean.shape)));
      const err = tf.abs(tf.sub(vae.decode(z), x));
      const w = tf.tensor(foregroundWeights(data, 2, 5, 32, 32, 10), [2, 1, 5, 32, 32]);
      return [tf.mean(err).dataSync()[0]!, tf.sum(tf.mul(err, w)).dataSync()[0]! / (3 * tf.sum(w).dataSync()[0]!)];
    });
    expect(plain).toBeCloseTo(wantPlain, 5);
    expect(weighted).toBeCloseTo(wantWeighted, 5);
    expect(Math.abs(weighted - plain)).toBeGreaterThan(1e-4);
    vae.dispose();
  });
});
