/** The pipelines' `capture` option: a probe at one denoising step sees that step's conditional forward and changes nothing. */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { DEFAULT_MODEL_DIR, loadModelFolder, type LoadedModel } from '../../src/model/modelFolder.js';
import { Mask2DiTPipeline } from '../../src/model/pipeline.js';
import { Probe } from '../../src/layers/probe.js';

let model: LoadedModel;
beforeAll(async () => {
  await selectBackend('cpu');
  model = await loadModelFolder(DEFAULT_MODEL_DIR);
});
// no shutdownBackends(): the cpu backend has no threads, and resetting the shared engine would leave
// later test files in this worker without a backend
afterAll(() => model.dispose());

test('capture at step 1 of 3: probabilities of the chosen block/head/scene, identical latents, no leak', async () => {
  const pipe = new Mask2DiTPipeline({
    transformer: model.transformer,
    vae: model.vae,
    scheduler: model.schedulerConfig,
  });
  const { text_embed_dim: D, max_text_seq_length: T, patch_size: p } = model.transformer.config;
  const prompts = tf.randomNormal([2, T, D], 0, 1, 'float32', 1); // [S, T, D]
  const negative = tf.zeros([1, T, D]);
  const base = {
    prompts,
    negative,
    frames: 5,
    width: 64,
    height: 64,
    steps: 3,
    guidanceScale: 6,
    seed: 3,
    sampler: 'flow-euler' as const,
    output: 'latent' as const,
  };
  const plain = await pipe.generate(base);
  const before = tf.memory().numTensors;
  const probe = new Probe(['block.1.attn1.probs', 'block.0.hidden_states'], { heads: [1], scene: 0 });
  const probed = await pipe.generate({ ...base, capture: { step: 1, probe } });
  expect(Array.from(await probed.latents.data())).toEqual(Array.from(await plain.latents.data()));
  // one capture per name: the conditional branch of step 1 only (guidance runs two forwards per step)
  expect([...probe.captured.keys()].sort()).toEqual(['block.0.hidden_states', 'block.1.attn1.probs']);
  // scene 0's queries (T text + latent frames × patches) against both scenes' tokens
  const perScene = T + ((5 - 1) / model.vae.temporalCompression + 1) * (64 / 8 / p) ** 2; // 16 + 3 × 16 = 64 for the shipped model
  expect(probe.get('block.1.attn1.probs')!.shape).toEqual([1, 1, perScene, 2 * perScene]);
  probe.dispose();
  probed.latents.dispose();
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([prompts, negative, plain.latents]);
});
