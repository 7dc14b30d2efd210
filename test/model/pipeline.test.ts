/**
 * Both pipelines on the tiny fixture transformer (2 layers, 2 heads × 16, 4×4 latents): determinism,
 * the timesteps and segments the transformer is called with (a spy around the real forward), call
 * counts, conditioning latents untouched by extension, chained extension, progress and cancellation,
 * decode plumbing, memory, and the bad-input errors.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { ShapeError } from '../../src/errors.js';
import { Mask2DiTExtendPipeline } from '../../src/model/extendPipeline.js';
import {
  Mask2DiTPipeline,
  PipelineAbortedError,
  PipelineInputError,
  type GenerateOptions,
  type LatentPosterior,
  type VideoEncoder,
} from '../../src/model/pipeline.js';
import type { Mask2DiTTransformer } from '../../src/model/transformer.js';
import type { SchedulerConfig } from '../../src/config/schedulerConfig.js';
import { SamplerError } from '../../src/sampler/index.js';
import { CogVideoXDDIMSampler } from '../../src/sampler/cogvideoxDdim.js';
import { gaussianNoise, STREAM } from '../../src/sampler/noise.js';
import { loadPipelineTransformer, spyTransformer } from './pipeline.helpers.js';

let transformer: Mask2DiTTransformer;
let scheduler: SchedulerConfig;
let prompts: tf.Tensor; // [3, T, D]
let negative: tf.Tensor; // [T, D]

beforeAll(async () => {
  await selectBackend('wasm');
  ({ transformer, scheduler } = await loadPipelineTransformer('mask2dit_pipeline_multiscene'));
  const { max_text_seq_length: T, text_embed_dim: D } = transformer.config;
  prompts = gaussianNoise([3, T, D], 7, 0);
  negative = gaussianNoise([T, D], 7, 1);
});
afterAll(() => {
  tf.dispose([prompts, negative]);
  transformer.dispose();
  shutdownBackends();
});

const base = (): GenerateOptions => ({
  prompts,
  negative,
  frames: 5,
  height: 32,
  width: 32,
  steps: 3,
  guidanceScale: 6,
  seed: 1,
  output: 'latent',
});
const bitsOf = async (t: tf.Tensor) => Array.from(new Uint32Array(((await t.data()) as Float32Array).slice().buffer));

/** Stand-in VAE for plumbing tests (the real one is src/model/vae.ts): nearest-upsampled first 3 channels. */
class PlumbingVae implements VideoEncoder {
  readonly scalingFactor = 0.7;
  decoded: number[][] = [];
  decode(z: tf.Tensor): tf.Tensor {
    this.decoded.push(z.shape);
    const [, , t, h, w] = z.shape as number[];
    return tf.tidy(() => {
      const rgb = tf.slice(z, [0, 0], [-1, 3]); // [1, 3, t, h, w]
      const first = tf.slice(rgb, [0, 0, 0], [-1, -1, 1]);
      const rest = tf.slice(rgb, [0, 0, 1], [-1, -1, t! - 1]);
      const frames = tf.concat([first, ...Array<tf.Tensor>(4).fill(rest)].slice(0, t! === 1 ? 1 : 5), 2); // 4(t−1)+1 frames (t = 2)
      const up = tf.reshape(
        tf.tile(tf.reshape(frames, [1, 3, 4 * (t! - 1) + 1, h!, 1, w!, 1]), [1, 1, 1, 1, 8, 1, 8]),
        [1, 3, 4 * (t! - 1) + 1, 8 * h!, 8 * w!],
      );
      return tf.mul(up, 3); // exercises the clamp
    });
  }
  encode(x: tf.Tensor): LatentPosterior {
    const [, , frames, H, W] = x.shape as number[];
    const shape = [1, 4, (frames! - 1) / 4 + 1, H! / 8, W! / 8];
    return { mean: tf.fill(shape, 0.5), std: tf.fill(shape, 0.1) };
  }
}

describe('Pipeline 1 (fixed scenes) on the tiny model', () => {
  it('same seed → bit-identical latents; different seeds differ; no tensor leak', async () => {
    const pipe = new Mask2DiTPipeline({ transformer, scheduler });
    const a = await pipe.generate(base());
    const before = tf.memory().numTensors;
    const b = await pipe.generate(base());
    const c = await pipe.generate({ ...base(), seed: 2 });
    expect(a.latents.shape).toEqual([1, 6, 4, 4, 4]);
    expect(await bitsOf(a.latents)).toEqual(await bitsOf(b.latents));
    expect(await bitsOf(a.latents)).not.toEqual(await bitsOf(c.latents));
    tf.dispose([b.latents, c.latents]);
    expect(tf.memory().numTensors).toBe(before);
    a.latents.dispose();
  });

  it('calls the transformer steps × 2 times with CFG (per-call timestep [t]), steps × 1 without or batched', async () => {
    const pipe = new Mask2DiTPipeline({ transformer, scheduler });
    for (const [opts, calls, timestep] of [
      [{}, 6, (t: number) => [t]],
      [{ guidanceScale: 1 }, 3, (t: number) => [t]],
      [{ cfgBatch: 'batched' as const }, 3, (t: number) => [t, t]],
    ] as const) {
      const spy = spyTransformer(transformer);
      try {
        const out = await pipe.generate({ ...base(), ...opts });
        expect(spy.calls.length).toBe(calls);
        const perStep = calls / 3;
        spy.calls.forEach((c, k) => {
          expect(c.timestep).toEqual(timestep(out.timesteps[Math.floor(k / perStep)]!));
          expect(c.clipIdx).toBeUndefined();
        });
        expect(out.timesteps).toEqual([999, 666, 332]);
        out.latents.dispose();
      } finally {
        spy.restore();
      }
    }
  });

  it('reports progress per step and can be cancelled between steps (no leak)', async () => {
    const pipe = new Mask2DiTPipeline({ transformer, scheduler });
    const seen: number[] = [];
    const out = await pipe.generate({ ...base(), onStep: (p) => void seen.push(p.step * 1000 + p.timestep) });
    expect(seen).toEqual([999, 1666, 2332]);
    out.latents.dispose();
    const before = tf.memory().numTensors;
    const ctl = new AbortController();
    await expect(
      pipe.generate({ ...base(), signal: ctl.signal, onStep: (p) => (p.step === 0 ? ctl.abort() : undefined) }),
    ).rejects.toThrow(PipelineAbortedError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('runs every sampler: dpm is deterministic per seed, flow-euler uses float timesteps', async () => {
    const pipe = new Mask2DiTPipeline({ transformer, scheduler });
    const d1 = await pipe.generate({ ...base(), sampler: 'dpm' });
    const d2 = await pipe.generate({ ...base(), sampler: 'dpm' });
    expect(await bitsOf(d1.latents)).toEqual(await bitsOf(d2.latents));
    const flowPipe = new Mask2DiTPipeline({ transformer });
    const spy = spyTransformer(transformer);
    const f = await flowPipe.generate({ ...base(), sampler: 'flow-euler', guidanceScale: 1 });
    spy.restore();
    const ts = spy.calls.map((c) => c.timestep[0]!);
    [1000, 500.5, 1].forEach((t, i) => expect(ts[i]).toBeCloseTo(t, 3)); // σ·1000 in float32
    expect((await f.latents.data()).every(Number.isFinite)).toBe(true);
    tf.dispose([d1.latents, d2.latents, f.latents]);
  });

  it('decodes each scene separately: latents / scaling_factor, (x/2 + 0.5) clamped, frames concatenated', async () => {
    const vae = new PlumbingVae();
    const pipe = new Mask2DiTPipeline({ transformer, scheduler, vae });
    const out = await pipe.generate({ ...base(), output: 'video' });
    expect(vae.decoded).toEqual([
      [1, 4, 2, 4, 4],
      [1, 4, 2, 4, 4],
      [1, 4, 2, 4, 4],
    ]);
    expect(out.video!.shape).toEqual([1, 3, 15, 32, 32]);
    const v = await out.video!.data();
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThanOrEqual(1);
    // scene 1, frame 0, pixel (0, 0), channel 0 = clamp(3·z/0.7/2 + 0.5) with z = latents[0, 2, 0, 0, 0]
    const z = (await out.latents.data())[2 * 4 * 16]!;
    expect(v[5 * 32 * 32]).toBeCloseTo(Math.min(1, Math.max(0, (3 * (z / 0.7)) / 2 + 0.5)), 5);
    tf.dispose([out.latents, out.video!]);
  });
});

describe('Pipeline 2 (scene extension) on the tiny model', () => {
  it('target = last scene with conditioning timestep 0; conditioning latents bit-identical before and after', async () => {
    const previous = gaussianNoise([1, 4, 4, 4, 4], 3, 9);
    const pipe = new Mask2DiTExtendPipeline({ transformer, scheduler });
    const spy = spyTransformer(transformer);
    try {
      const out = await pipe.extend({
        prompts,
        negative,
        previous: { latents: previous },
        conditionNoise: 'none',
        steps: 3,
        guidanceScale: 6,
        seed: 4,
        output: 'latent',
      });
      expect(spy.calls.length).toBe(6);
      for (const c of spy.calls) {
        expect(c.clipIdx).toBe(2);
        expect(c.timestepCond).toBe(0);
      }
      expect(spy.calls.map((c) => c.timestep[0])).toEqual([999, 999, 666, 666, 332, 332]);
      const prevBits = await bitsOf(previous);
      const finalBits = await bitsOf(out.latents);
      expect(finalBits.slice(0, prevBits.length)).toEqual(prevBits); // conditioning frames untouched
      for (const c of spy.calls)
        expect(Array.from(new Uint32Array(c.hiddenStates.buffer)).slice(0, prevBits.length)).toEqual(prevBits);
      expect(await bitsOf(out.cleanLatents)).toEqual(finalBits);
      expect(out.sceneLatents.shape).toEqual([1, 2, 4, 4, 4]);
      tf.dispose([out.latents, out.sceneLatents, out.cleanLatents]);
    } finally {
      spy.restore();
      previous.dispose();
    }
  });

  it("'reference' conditioning noise = the sampler's add_noise at t = 0 with the seeded draw", async () => {
    const previous = gaussianNoise([1, 4, 4, 4, 4], 3, 9);
    const pipe = new Mask2DiTExtendPipeline({ transformer, scheduler });
    const spy = spyTransformer(transformer);
    try {
      const out = await pipe.extend({
        prompts,
        negative,
        previous: { latents: previous },
        steps: 1,
        guidanceScale: 1,
        seed: 4,
        output: 'latent',
      });
      const eps = gaussianNoise(previous.shape, 4, STREAM.conditionNoise);
      const expected = new CogVideoXDDIMSampler(scheduler as never).addNoise(previous, eps, [0]);
      const bits = await bitsOf(expected);
      expect(Array.from(new Uint32Array(spy.calls[0]!.hiddenStates.buffer)).slice(0, bits.length)).toEqual(bits);
      expect((await bitsOf(out.latents)).slice(0, bits.length)).toEqual(bits);
      expect((await bitsOf(out.cleanLatents)).slice(0, bits.length)).toEqual(await bitsOf(previous));
      tf.dispose([eps, expected, out.latents, out.sceneLatents, out.cleanLatents]);
    } finally {
      spy.restore();
      previous.dispose();
    }
  });

  it('extends k times in a row: 1 scene → 2 → 3, earlier scenes kept exactly', async () => {
    const p1 = new Mask2DiTPipeline({ transformer, scheduler });
    const ext = new Mask2DiTExtendPipeline({ transformer, scheduler });
    const rows = tf.unstack(prompts, 0);
    const before = tf.memory().numTensors;
    const first = await p1.generate({ ...base(), prompts: [rows[0]!] });
    const second = await ext.extend({
      prompts: rows.slice(0, 2),
      negative,
      previous: { latents: first.latents },
      steps: 2,
      seed: 5,
      output: 'latent',
    });
    const third = await ext.extend({
      prompts: rows,
      negative,
      previous: { latents: second.cleanLatents },
      steps: 2,
      seed: 6,
      output: 'latent',
    });
    expect(third.latents.shape).toEqual([1, 6, 4, 4, 4]);
    const b1 = await bitsOf(first.latents);
    const b2 = await bitsOf(second.cleanLatents);
    const b3 = await bitsOf(third.cleanLatents);
    expect(b2.slice(0, b1.length)).toEqual(b1);
    expect(b3.slice(0, b2.length)).toEqual(b2);
    expect((await third.sceneLatents.data()).every(Number.isFinite)).toBe(true);
    tf.dispose([
      first.latents,
      second.latents,
      second.sceneLatents,
      second.cleanLatents,
      third.latents,
      third.sceneLatents,
      third.cleanLatents,
    ]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(rows);
  });

  it('encodes previous videos with the VAE (posterior sample × scaling_factor) and decodes all or only the new scene', async () => {
    const vae = new PlumbingVae();
    const pipe = new Mask2DiTExtendPipeline({ transformer, scheduler, vae });
    const videos = [tf.zeros([1, 5, 3, 32, 32]), tf.zeros([1, 5, 3, 32, 32])];
    const spy = spyTransformer(transformer);
    try {
      const out = await pipe.extend({
        prompts,
        negative,
        previous: { videos },
        conditionNoise: 'none',
        steps: 1,
        guidanceScale: 1,
        seed: 8,
        decode: 'new',
      });
      expect(out.video!.shape).toEqual([1, 3, 5, 32, 32]);
      const eps0 = await gaussianNoise([1, 4, 2, 4, 4], 8, STREAM.posterior).data();
      const z = await out.cleanLatents.data(); // [1, f, C, h, w]: scene 0, frame 0, channel 0, (0, 0)
      expect(z[0]).toBeCloseTo((0.5 + 0.1 * eps0[0]!) * 0.7, 6);
      tf.dispose([out.latents, out.sceneLatents, out.cleanLatents, out.video!]);
    } finally {
      spy.restore();
      tf.dispose(videos);
    }
  });
});

describe('bad input gets a clear, typed error', () => {
  const pipe = () => new Mask2DiTPipeline({ transformer, scheduler });
  it.each([
    ['prompt count ≠ scene count', { scenes: 2 }, PipelineInputError, /3 prompt embeddings for 2 scenes/],
    ['frames not 4k + 1', { frames: 6 }, PipelineInputError, /frames per scene must have the form 4k \+ 1/],
    [
      'height not divisible by VAE × patch',
      { height: 40 },
      PipelineInputError,
      /height: must be a positive multiple of 16/,
    ],
    [
      'width not divisible by VAE × patch',
      { width: 24 },
      PipelineInputError,
      /width: must be a positive multiple of 16/,
    ],
    [
      'unknown sampler',
      { sampler: 'euler-a' as never },
      SamplerError,
      /unknown sampler 'euler-a'; expected one of ddim, dpm, flow-euler/,
    ],
    ['steps < 1', { steps: 0 }, PipelineInputError, /steps/],
    [
      'guidance without negative embeddings',
      { negative: undefined },
      PipelineInputError,
      /needs negative prompt embeddings/,
    ],
    ['video output without a VAE', { output: 'video' as const }, PipelineInputError, /needs a VAE/],
  ] as const)('%s', async (_name, patch, cls, msg) => {
    const before = tf.memory().numTensors;
    const opts = { ...base(), ...patch } as GenerateOptions;
    await expect(pipe().generate(opts)).rejects.toThrow(cls);
    await expect(pipe().generate(opts)).rejects.toThrow(msg);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('embedding width ≠ text_embed_dim, and wrong text length', async () => {
    const wide = tf.zeros([3, 4, 48]);
    const long = tf.zeros([3, 5, 32]);
    await expect(pipe().generate({ ...base(), prompts: wide })).rejects.toThrow(
      /embedding width 48 does not match the transformer's text_embed_dim 32/,
    );
    await expect(pipe().generate({ ...base(), prompts: long })).rejects.toThrow(ShapeError);
    await expect(pipe().generate({ ...base(), negative: tf.zeros([4, 16]) })).rejects.toThrow(
      /negative\[0\]: embedding width 16/,
    );
    tf.dispose([wide, long]);
  });

  it('extension: previous scenes must match the prompts; initial noise shape is checked', async () => {
    const ext = new Mask2DiTExtendPipeline({ transformer, scheduler });
    const prev = tf.zeros([1, 3, 4, 4, 4]); // 3 frames cannot be 2 scenes
    await expect(
      ext.extend({ prompts, negative, previous: { latents: prev }, steps: 1, output: 'latent' }),
    ).rejects.toThrow(/previous.latents: expected \[1, 2·f, 4, h, w\]/);
    await expect(
      ext.extend({ prompts, negative, previous: { videos: [] }, steps: 1, output: 'latent' }),
    ).rejects.toThrow(/needs a VAE with encode/);
    const good = tf.zeros([1, 4, 4, 4, 4]);
    const badNoise = tf.zeros([1, 3, 4, 4, 4]);
    await expect(
      ext.extend({ prompts, negative, previous: { latents: good }, latents: badNoise, steps: 1, output: 'latent' }),
    ).rejects.toThrow(ShapeError);
    tf.dispose([prev, good, badNoise]);
  });
});
