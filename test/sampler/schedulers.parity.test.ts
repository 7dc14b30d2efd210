/**
 * Parity with the reference scheduler fixtures (diffusers 0.30.3): schedules, every step of the
 * recorded loops, add_noise / get_velocity / scale_noise, within the README tolerances, on cpu and wasm.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import {
  parseSchedulerConfig,
  type CogVideoXSchedulerConfig,
  type FlowMatchSchedulerConfig,
} from '../../src/config/schedulerConfig.js';
import { CogVideoXDDIMSampler } from '../../src/sampler/cogvideoxDdim.js';
import { CogVideoXDPMSampler } from '../../src/sampler/cogvideoxDpm.js';
import { FlowMatchEulerSampler } from '../../src/sampler/flowMatchEuler.js';
import type { NoiseSource, Sampler } from '../../src/sampler/sampler.js';
import { expectClose } from '../helpers/close.js';
import {
  fixtureJson,
  fixturePath,
  get,
  loadFixture,
  numbers,
  toTensor,
  type FixtureTensor,
} from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

/** README: scheduler step outputs, add_noise, get_velocity, scale_noise. */
const STEP_TOL = [1e-5, 1e-5] as const;

async function readF64(caseName: string, name: string): Promise<Float64Array> {
  const src = await openSafetensors(fixturePath(caseName, 'io.safetensors'));
  try {
    return (await src.read(name)) as Float64Array;
  } finally {
    await src.close();
  }
}

async function expectTensor(
  label: string,
  actual: tf.Tensor,
  io: Map<string, FixtureTensor>,
  name: string,
): Promise<void> {
  expect(actual.shape).toEqual(get(io, name).shape);
  expectClose(label, await actual.data(), get(io, name).data as Float32Array, STEP_TOL[0], STEP_TOL[1]);
}

/** Run the fixture's 10-step loop and compare every prev_sample (and pred_original_sample where stored). */
async function checkLoop(
  caseName: string,
  sampler: Sampler,
  io: Map<string, FixtureTensor>,
  noise?: NoiseSource,
): Promise<number> {
  sampler.setTimesteps(10);
  let x = toTensor(io, 'sample.0');
  let compared = 0;
  for (let i = 0; i < sampler.timesteps.length; i++) {
    const v = toTensor(io, `model_output.${i}`);
    const out = sampler.step(v, i, x, noise !== undefined ? { noise } : {});
    await expectTensor(`${caseName} prev_sample.${i}`, out.prevSample, io, `prev_sample.${i}`);
    compared++;
    if (io.has(`pred_original_sample.${i}`)) {
      await expectTensor(
        `${caseName} pred_original_sample.${i}`,
        out.predOriginalSample,
        io,
        `pred_original_sample.${i}`,
      );
      compared++;
    }
    tf.dispose([x, v, out.predOriginalSample]);
    x = out.prevSample; // chain our own output, as the reference loop does
  }
  x.dispose();
  sampler.reset();
  return compared;
}

const COGVIDEOX_CASES = ['scheduler_cogvideox_ddim', 'scheduler_cogvideox_ddim_2b', 'scheduler_cogvideox_dpm'];

describe('CogVideoX schedules (backend-independent)', () => {
  it.each(COGVIDEOX_CASES)(
    '%s: alphas_cumprod (rtol 1e-12) and timesteps for 10 and 50 steps (exact)',
    async (caseName) => {
      const io = await loadFixture(caseName);
      const cfg = parseSchedulerConfig(fixtureJson(caseName, 'config.json')) as CogVideoXSchedulerConfig;
      const s = new CogVideoXDDIMSampler(cfg);
      const ref = await readF64(caseName, 'alphas_cumprod');
      expect(s.alphasCumprod.length).toBe(ref.length);
      ref.forEach((r, i) => {
        const a = s.alphasCumprod[i]!;
        if (Math.abs(a - r) > 1e-12 * Math.abs(r)) throw new Error(`alphas_cumprod[${i}]: ${a} vs ${r}`);
      });
      expect(s.alphasCumprod[999]).toBe(0);
      s.setTimesteps(10);
      expect([...s.timesteps]).toEqual(numbers(io, 'timesteps'));
      s.setTimesteps(50);
      expect([...s.timesteps]).toEqual(numbers(io, 'timesteps.50'));
    },
  );

  it('trailing timesteps: numpy arange quirk (n + 1 values) is dropped; 3 steps give 999, 666, 332', () => {
    const cfg = parseSchedulerConfig(
      fixtureJson('scheduler_cogvideox_ddim', 'config.json'),
    ) as CogVideoXSchedulerConfig;
    const s = new CogVideoXDDIMSampler(cfg);
    s.setTimesteps(3);
    expect([...s.timesteps]).toEqual([999, 666, 332]);
    for (const n of [61, 103, 121, 1000]) {
      s.setTimesteps(n);
      expect(s.timesteps.length).toBe(n);
      expect(Math.min(...s.timesteps)).toBeGreaterThanOrEqual(0);
    }
  });
});

describe.each(['cpu', 'wasm'] as const)('scheduler parity on %s', (backend) => {
  it.each(COGVIDEOX_CASES)('%s: add_noise, get_velocity, t=0 pipeline noise', async (caseName) => {
    await selectBackend(backend);
    const io = await loadFixture(caseName);
    const cfg = parseSchedulerConfig(fixtureJson(caseName, 'config.json')) as CogVideoXSchedulerConfig;
    const s = new CogVideoXDDIMSampler(cfg);
    const x0 = toTensor(io, 'add_noise.original_samples');
    const eps = toTensor(io, 'add_noise.noise');
    const ts = numbers(io, 'add_noise.timesteps');
    const noisy = s.addNoise(x0, eps, ts);
    await expectTensor('add_noise.out', noisy, io, 'add_noise.out');
    const vel = s.getVelocity(x0, eps, ts);
    await expectTensor('get_velocity.out', vel, io, 'get_velocity.out');
    const x01 = tf.slice(x0, [0], [1]);
    const eps1 = tf.slice(eps, [0], [1]);
    const t0 = s.addNoise(x01, eps1, [0]);
    await expectTensor('add_noise.t0_pipeline.out', t0, io, 'add_noise.t0_pipeline.out');
    tf.dispose([x0, eps, noisy, vel, x01, eps1, t0]);
  });

  it.each(['scheduler_cogvideox_ddim', 'scheduler_cogvideox_ddim_2b'])(
    '%s: 10-step loop, every prev_sample and pred_original_sample',
    async (caseName) => {
      await selectBackend(backend);
      const io = await loadFixture(caseName);
      const cfg = parseSchedulerConfig(fixtureJson(caseName, 'config.json')) as CogVideoXSchedulerConfig;
      expect(await checkLoop(caseName, new CogVideoXDDIMSampler(cfg), io)).toBe(20);
    },
  );

  it('scheduler_cogvideox_dpm: 10-step loop replaying the recorded step noise', async () => {
    await selectBackend(backend);
    const caseName = 'scheduler_cogvideox_dpm';
    const io = await loadFixture(caseName);
    const cfg = parseSchedulerConfig(fixtureJson(caseName, 'config.json')) as CogVideoXSchedulerConfig;
    const requested: string[] = [];
    const replay: NoiseSource = (shape, step, draw) => {
      requested.push(`${step}.${draw}`);
      const t = toTensor(io, `noise.${step}.${draw}`);
      expect(t.shape).toEqual(shape);
      return t;
    };
    const before = tf.memory().numTensors;
    expect(await checkLoop(caseName, new CogVideoXDPMSampler(cfg), io, replay)).toBe(20);
    expect(tf.memory().numTensors).toBe(before);
    // the reference uses draw 0 on the first and last step and draw 1 (its second draw) otherwise
    expect(requested).toEqual(['0.0', '1.1', '2.1', '3.1', '4.1', '5.1', '6.1', '7.1', '8.1', '9.0']);
  });

  it.each(['scheduler_flow_match_euler_shift1', 'scheduler_flow_match_euler_shift3'])(
    '%s: sigmas, timesteps, loop, scale_noise',
    async (caseName) => {
      await selectBackend(backend);
      const io = await loadFixture(caseName);
      const cfg = parseSchedulerConfig(fixtureJson(caseName, 'config.json')) as FlowMatchSchedulerConfig;
      const s = new FlowMatchEulerSampler(cfg);
      expectClose('train_sigmas', s.trainSigmas, get(io, 'train_sigmas').data as Float32Array, 1e-6);
      s.setTimesteps(10);
      expectClose('sigmas', s.sigmas, get(io, 'sigmas').data as Float32Array, 1e-6);
      expectClose('timesteps', s.timesteps as number[], get(io, 'timesteps').data as Float32Array, 1e-3);
      expect(await checkLoop(caseName, s, io)).toBe(10);
      s.setTimesteps(10);
      const x0 = toTensor(io, 'scale_noise.sample');
      const eps = toTensor(io, 'scale_noise.noise');
      const out = s.addNoise(x0, eps, numbers(io, 'scale_noise.timesteps'));
      await expectTensor('scale_noise.out', out, io, 'scale_noise.out');
      tf.dispose([x0, eps, out]);
    },
  );
});

describe('flow-match schedule variants', () => {
  it("'reference' shifts the smallest sigma twice; 'shift-once' once", async () => {
    const cfg = parseSchedulerConfig(
      fixtureJson('scheduler_flow_match_euler_shift3', 'config.json'),
    ) as FlowMatchSchedulerConfig;
    const shift = (s: number) => (3 * s) / (1 + 2 * s);
    const ref = new FlowMatchEulerSampler(cfg);
    ref.setTimesteps(10);
    expect(ref.sigmas[9]).toBeCloseTo(shift(shift(0.001)), 6);
    const once = new FlowMatchEulerSampler(cfg, { schedule: 'shift-once' });
    once.setTimesteps(10);
    expect(once.sigmas[9]).toBeCloseTo(shift(0.001), 6);
    expect(once.sigmas[0]).toBe(1);
    expect(once.sigmas[10]).toBe(0);
  });
});
