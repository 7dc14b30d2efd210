/**
 * End-to-end parity with the reference pipelines (official Mask2DiT, diffusers 0.30.3 DDIM):
 * `mask2dit_pipeline_multiscene` (also with dynamic CFG) and `mask2dit_pipeline_conditional`,
 * replaying their recorded noise: every step's model output and latents, and the final latents,
 * within the README tolerances (1e-4 / 1e-4), and the per-scene decoded video (1e-4), on cpu and wasm.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { Mask2DiTExtendPipeline } from '../../src/model/extendPipeline.js';
import { Mask2DiTPipeline, type StepProgress, type VideoEncoder } from '../../src/model/pipeline.js';
import { gaussianNoise, STREAM } from '../../src/sampler/noise.js';
import { expectClose } from '../helpers/close.js';
import { fixturePath, get, loadFixture, numbers, toTensor, type FixtureTensor } from '../helpers/fixtures.js';
import { loadPipelineTransformer, loadPipelineVae, spyTransformer, type RecordedCall } from './pipeline.helpers.js';

afterAll(() => shutdownBackends());

const TOL = [1e-4, 1e-4] as const;
const STEPS = 3;

/** Prompt table rows 0…S−1 (scene prompts) and row S (negative prompt), each [T, D]. */
function promptTable(io: Map<string, FixtureTensor>) {
  const table = toTensor(io, 'prompt_embeds_table'); // [S+1, T, D]
  const rows = tf.unstack(table, 0);
  table.dispose();
  return { prompts: rows.slice(0, -1), negative: rows[rows.length - 1]!, all: rows };
}

/** Capture each step's latents through the progress callback. */
function stepRecorder() {
  const steps: { latents: Float32Array; guidance: number; timestep: number }[] = [];
  return {
    steps,
    onStep: async (p: StepProgress) => {
      steps.push({
        latents: (await p.latents.data()) as Float32Array,
        guidance: p.guidanceScale,
        timestep: p.timestep,
      });
    },
  };
}

/** Compare the spied transformer calls with `step.i.model_output` ([2, …]: uncond row, cond row). */
function checkModelOutputs(label: string, calls: RecordedCall[], io: Map<string, FixtureTensor>, split: boolean): void {
  expect(calls.length).toBe(split ? 2 * STEPS : STEPS);
  for (let i = 0; i < STEPS; i++) {
    const expected = get(io, `step.${i}.model_output`).data as Float32Array;
    const got = split ? Float32Array.from([...calls[2 * i]!.output, ...calls[2 * i + 1]!.output]) : calls[i]!.output;
    expectClose(`${label} step.${i}.model_output`, got, expected, ...TOL);
    const t = numbers(io, `step.${i}.timestep`);
    if (split) {
      expect(calls[2 * i]!.timestep).toEqual([t[0]]);
      expect(calls[2 * i + 1]!.timestep).toEqual([t[1]]);
    } else {
      expect(calls[i]!.timestep).toEqual(t);
    }
  }
}

describe.each(['cpu', 'wasm'] as const)('pipeline parity on %s', (backend) => {
  it.each([['batched'], ['split']] as const)(
    'mask2dit_pipeline_multiscene (cfg %s): context, every step, final latents',
    async (cfgBatch) => {
      await selectBackend(backend);
      const caseName = 'mask2dit_pipeline_multiscene';
      const io = await loadFixture(caseName);
      const { transformer, scheduler } = await loadPipelineTransformer(caseName);
      const { prompts, negative, all } = promptTable(io);
      const latents = toTensor(io, 'latents');
      const spy = spyTransformer(transformer);
      const rec = stepRecorder();
      try {
        const pipe = new Mask2DiTPipeline({ transformer, scheduler });
        const out = await pipe.generate({
          prompts,
          negative,
          scenes: 3,
          frames: 5,
          height: 32,
          width: 32,
          steps: STEPS,
          guidanceScale: 6,
          latents,
          output: 'latent',
          cfgBatch,
          onStep: rec.onStep,
        });
        expect(out.timesteps).toEqual([999, 666, 332]);
        // the transformer saw exactly the reference's text context and initial latents
        const ctx = get(io, 'encoder_hidden_states').data as Float32Array;
        const first = spy.calls[0]!;
        const seenCtx =
          cfgBatch === 'batched'
            ? first.encoderHiddenStates
            : Float32Array.from([...first.encoderHiddenStates, ...spy.calls[1]!.encoderHiddenStates]);
        expect(Array.from(seenCtx)).toEqual(Array.from(ctx));
        expect(Array.from(first.hiddenStates.subarray(0, get(io, 'initial_latents').data.length))).toEqual(
          Array.from(get(io, 'initial_latents').data),
        );
        checkModelOutputs(`${caseName}/${backend}/${cfgBatch}`, spy.calls, io, cfgBatch === 'split');
        expect(rec.steps.length).toBe(STEPS);
        rec.steps.forEach((s, i) =>
          expectClose(
            `${caseName}/${backend} step.${i}.latents`,
            s.latents,
            get(io, `step.${i}.latents`).data as Float32Array,
            ...TOL,
          ),
        );
        expectClose(
          `${caseName}/${backend} final_latents`,
          await out.latents.data(),
          get(io, 'final_latents').data as Float32Array,
          ...TOL,
        );
        out.latents.dispose();
      } finally {
        spy.restore();
        tf.dispose([...all, latents]);
        transformer.dispose();
      }
    },
  );

  it('mask2dit_pipeline_multiscene with dynamic CFG: guidance per step (timestep-value formula) and final latents', async () => {
    await selectBackend(backend);
    const caseName = 'mask2dit_pipeline_multiscene';
    const io = await loadFixture(caseName);
    const src = await openSafetensors(fixturePath(caseName, 'io.safetensors'));
    const refScales = Array.from((await src.read('guidance_scale.dynamic_cfg')) as Float64Array);
    await src.close();
    const { transformer, scheduler } = await loadPipelineTransformer(caseName);
    const { prompts, negative, all } = promptTable(io);
    const latents = toTensor(io, 'latents');
    const rec = stepRecorder();
    try {
      const pipe = new Mask2DiTPipeline({ transformer, scheduler });
      const out = await pipe.generate({
        prompts,
        negative,
        frames: 5,
        height: 32,
        width: 32,
        steps: STEPS,
        guidanceScale: 6,
        dynamicCfg: 'reference',
        latents,
        output: 'latent',
        onStep: rec.onStep,
      });
      rec.steps.forEach((s, i) =>
        expect(Math.abs(s.guidance - refScales[i]!)).toBeLessThanOrEqual(1e-12 * refScales[i]!),
      );
      expectClose(
        `${caseName}/${backend} final_latents.dynamic_cfg`,
        await out.latents.data(),
        get(io, 'final_latents.dynamic_cfg').data as Float32Array,
        ...TOL,
      );
      out.latents.dispose();
    } finally {
      tf.dispose([...all, latents]);
      transformer.dispose();
    }
  });

  it('mask2dit_pipeline_conditional: target = last scene, conditioning restored, every step, final latents', async () => {
    await selectBackend(backend);
    const caseName = 'mask2dit_pipeline_conditional';
    const io = await loadFixture(caseName);
    const { transformer, scheduler } = await loadPipelineTransformer(caseName);
    const { prompts, negative, all } = promptTable(io);
    const init = toTensor(io, 'initial_latents'); // [1, 6, C, h, w]: t=0-noised conditioning (torch RNG) + noise
    // the reference drew the conditioning's posterior sample and t=0 noise with torch's RNG: replay them
    const conditioning = tf.slice(init, [0, 0], [-1, 4]);
    const latents = toTensor(io, 'latents');
    const spy = spyTransformer(transformer);
    const rec = stepRecorder();
    try {
      const pipe = new Mask2DiTExtendPipeline({ transformer, scheduler });
      const out = await pipe.extend({
        prompts,
        negative,
        previous: { latents: conditioning },
        conditionNoise: 'none',
        latents,
        steps: STEPS,
        guidanceScale: 6,
        output: 'latent',
        cfgBatch: 'batched',
        onStep: rec.onStep,
      });
      expect(Array.from(spy.calls[0]!.hiddenStates.subarray(0, init.size))).toEqual(
        Array.from(get(io, 'initial_latents').data),
      );
      for (const c of spy.calls) {
        expect(c.clipIdx).toBe(2);
        expect(c.timestepCond).toBe(numbers(io, 'timestep_conditioning')[0]);
      }
      checkModelOutputs(`${caseName}/${backend}`, spy.calls, io, false);
      rec.steps.forEach((s, i) =>
        expectClose(
          `${caseName}/${backend} step.${i}.latents`,
          s.latents,
          get(io, `step.${i}.latents`).data as Float32Array,
          ...TOL,
        ),
      );
      expectClose(
        `${caseName}/${backend} final_latents`,
        await out.latents.data(),
        get(io, 'final_latents').data as Float32Array,
        ...TOL,
      );
      tf.dispose([out.latents, out.sceneLatents, out.cleanLatents]);
    } finally {
      spy.restore();
      tf.dispose([...all, init, conditioning, latents]);
      transformer.dispose();
    }
  });
});

describe.each(['cpu', 'wasm'] as const)('decoded video parity on %s (pipeline VAE, per-scene decode)', (backend) => {
  it.each(['mask2dit_pipeline_multiscene', 'mask2dit_pipeline_conditional'])(
    '%s: video [1, 3, 15, 32, 32] within 1e-4',
    async (caseName) => {
      await selectBackend(backend);
      const io = await loadFixture(caseName);
      const { transformer, scheduler } = await loadPipelineTransformer(caseName);
      const vae = await loadPipelineVae(caseName);
      const { prompts, negative, all } = promptTable(io);
      const latents = toTensor(io, 'latents');
      const init = toTensor(io, 'initial_latents');
      const conditioning = tf.slice(init, [0, 0], [-1, 4]);
      try {
        const common = { prompts, negative, latents, steps: STEPS, guidanceScale: 6, output: 'video' as const };
        const out =
          caseName === 'mask2dit_pipeline_multiscene'
            ? await new Mask2DiTPipeline({ transformer, scheduler, vae }).generate({
                ...common,
                frames: 5,
                height: 32,
                width: 32,
              })
            : await new Mask2DiTExtendPipeline({ transformer, scheduler, vae }).extend({
                ...common,
                previous: { latents: conditioning },
                conditionNoise: 'none',
                decode: 'all',
              });
        expect(out.video!.shape).toEqual(get(io, 'video').shape);
        expectClose(
          `${caseName}/${backend} video`,
          await out.video!.data(),
          get(io, 'video').data as Float32Array,
          1e-4,
          0,
        );
        expectClose(
          `${caseName}/${backend} final_latents`,
          await out.latents.data(),
          get(io, 'final_latents').data as Float32Array,
          ...TOL,
        );
        tf.dispose(Object.values(out).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
      } finally {
        tf.dispose([...all, latents, init, conditioning]);
        transformer.dispose();
        vae.dispose();
      }
    },
  );
});

describe('scene extension from videos with the real VAE (wasm)', () => {
  it('mask2dit_pipeline_conditional: video_conds encoded (posterior sample × scaling_factor), new scene generated', async () => {
    await selectBackend('wasm');
    const caseName = 'mask2dit_pipeline_conditional';
    const io = await loadFixture(caseName);
    const { transformer, scheduler } = await loadPipelineTransformer(caseName);
    const vae = await loadPipelineVae(caseName);
    const encoder: VideoEncoder = vae; // the real VAE satisfies the pipeline's interface
    const { prompts, negative, all } = promptTable(io);
    const videos = [toTensor(io, 'video_conds.0'), toTensor(io, 'video_conds.1')];
    try {
      const out = await new Mask2DiTExtendPipeline({ transformer, scheduler, vae: encoder }).extend({
        prompts,
        negative,
        previous: { videos },
        steps: STEPS,
        seed: 3,
        output: 'video',
        decode: 'new',
      });
      expect(out.cleanLatents.shape).toEqual([1, 6, 4, 4, 4]);
      expect(out.video!.shape).toEqual([1, 3, 5, 32, 32]);
      // ours = (mean + std·ε)·scaling_factor with the seeded posterior draw of each scene
      const mean: number[] = [];
      const std: number[] = [];
      const eps: number[] = [];
      tf.tidy(() => {
        for (const [k, v] of videos.entries()) {
          const post = vae.encode(tf.transpose(v, [0, 2, 1, 3, 4]));
          const toFrames = (t: tf.Tensor) => tf.transpose(t, [0, 2, 1, 3, 4]).dataSync(); // [1, f, C, h, w] order
          mean.push(...toFrames(post.mean));
          std.push(...toFrames(post.std));
          eps.push(...toFrames(gaussianNoise(post.mean.shape, 3, STREAM.posterior + k)));
        }
      });
      const ours = Float32Array.from((await out.cleanLatents.data()).subarray(0, mean.length));
      expectClose(
        'conditioning latents',
        ours,
        Float32Array.from(mean, (m, i) => (m + std[i]! * eps[i]!) * 0.7),
        1e-5,
        1e-5,
      );
      // the reference's conditioning (torch draws) is consistent with the same posterior and t = 0 noise:
      // (ref − √ᾱ₀·0.7·mean) / √(ᾱ₀·0.49·std² + 1 − ᾱ₀) should look standard normal
      const ref = get(io, 'initial_latents').data as Float32Array;
      const a0 = 0.99915; // ᾱ[0] of the CogVideoX-5B schedule
      const r = mean.map((m, i) => (ref[i]! - Math.sqrt(a0) * 0.7 * m) / Math.sqrt(a0 * 0.49 * std[i]! ** 2 + 1 - a0));
      const rms = Math.sqrt(r.reduce((acc, v) => acc + v * v, 0) / r.length);
      expect(rms).toBeGreaterThan(0.8);
      expect(rms).toBeLessThan(1.25);
      expect(Math.max(...r.map(Math.abs))).toBeLessThan(4.5);
      tf.dispose(Object.values(out).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
    } finally {
      tf.dispose([...all, ...videos]);
      transformer.dispose();
      vae.dispose();
    }
  });
});
