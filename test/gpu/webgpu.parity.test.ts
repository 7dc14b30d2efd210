/**
 * The webgpu backend against the cpu reference on the tiny fixtures: the four transformer cases,
 * the VAE decode and encode, and a 10-step flow-matching Euler loop; every output within 1e-3.
 * Also: a failing WebGPU op (5-D pad, a known tfjs-webgpu shader bug) throws on readback instead of
 * returning zeros, and the device got the adapter's real limits.
 *
 * Runs wherever Dawn finds an adapter (CI: Dawn's OpenGL ES path on Mesa llvmpipe, set up by
 * .ci/run); otherwise the file is skipped with the reason printed, unless MASK2DIT_REQUIRE_WEBGPU=1
 * (set by .ci/run when the driver packages are present), which turns the skip into a failure.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { WebGpuDeviceError, checkWebGpu, takeWebGpuErrors, webGpuLimits } from '../../src/backend/webgpu.js';
import { parseSchedulerConfig, type FlowMatchSchedulerConfig } from '../../src/config/schedulerConfig.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { FlowMatchEulerSampler } from '../../src/sampler/flowMatchEuler.js';
import { gaussianArray, gaussianNoise } from '../../src/sampler/noise.js';
import { probeWebGpu } from '../helpers/backends.js';
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

const TOL = 1e-3;
const adapter = await probeWebGpu();
if (adapter === null && process.env['MASK2DIT_REQUIRE_WEBGPU'] === '1') {
  throw new Error('MASK2DIT_REQUIRE_WEBGPU=1 but no WebGPU adapter was found (see the reason above)');
}
if (adapter === null) process.stderr.write('webgpu.parity.test: skipped — no WebGPU adapter (reason above)\n');
const describeGpu = adapter !== null ? describe : describe.skip;

afterAll(() => shutdownBackends());

type Outputs = Record<string, Float32Array>;

/** Run `fn` on cpu, then on webgpu; compare every output within TOL. Returns the cpu outputs. */
async function cpuVsWebgpu(label: string, fn: () => Promise<Outputs>): Promise<Outputs> {
  await selectBackend('cpu');
  const ref = await fn();
  await selectBackend('webgpu');
  const got = await fn();
  checkWebGpu();
  for (const k of Object.keys(ref)) expectClose(`${label}/webgpu:${k}`, got[k]!, ref[k]!, TOL, TOL);
  return ref;
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  const d = (await t.data()) as Float32Array;
  t.dispose();
  return d;
}

async function transformerOutputs(caseName: string, io: Map<string, FixtureTensor>): Promise<Outputs> {
  const model = await Mask2DiTTransformer.fromPretrained(fixturePath(caseName), {
    weights: fixturePath(caseName, 'weights.safetensors'),
  });
  const hs = toTensor(io, 'hidden_states');
  const ehs = toTensor(io, 'encoder_hidden_states');
  try {
    const base = { hiddenStates: hs, encoderHiddenStates: ehs, timestep: numbers(io, 'timestep') };
    if (!io.has('clip_idx')) return { sample: await read(model.forward(base)) };
    const tc = numbers(io, 'timestep_conditioning')[0]!;
    return {
      sample: await read(model.forward({ ...base, clipIdx: numbers(io, 'clip_idx')[0]!, timestepCond: tc })),
      'sample.clip_idx_1': await read(model.forward({ ...base, clipIdx: 1, timestepCond: tc })),
    };
  } finally {
    tf.dispose([hs, ehs]);
    model.dispose();
  }
}

describeGpu(`webgpu matches cpu within ${TOL} (${adapter ?? 'no adapter'})`, () => {
  it('the device has the adapter limits, and a failing op throws on readback instead of returning zeros', async () => {
    await selectBackend('webgpu');
    const limits = webGpuLimits()!;
    expect(limits['maxStorageBufferBindingSize']).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(limits['maxStorageBuffersPerShaderStage']).toBeGreaterThan(8); // above the WebGPU default: requested from the adapter
    const x = tf.ones([1, 2, 2, 2, 2]);
    const padded = tf.pad(x, [
      [0, 0],
      [1, 0],
      [0, 0],
      [0, 0],
      [0, 0],
    ]); // 5-D pad: tfjs-webgpu's shader does not compile
    await expect(padded.data()).rejects.toBeInstanceOf(WebGpuDeviceError);
    tf.dispose([x, padded]);
    expect(takeWebGpuErrors()).toEqual([]); // the throw consumed them
    expect(Array.from(await tf.add(tf.ones([3]), 1).data())).toEqual([2, 2, 2]); // the device still works
  });

  it.each(['transformer_2b_single', 'transformer_5b_rope_single', 'mask2dit_multiscene', 'mask2dit_conditional'])(
    'transformer %s',
    async (caseName) => {
      const io = await loadFixture(caseName);
      const ref = await cpuVsWebgpu(caseName, () => transformerOutputs(caseName, io));
      expectClose(
        `${caseName}/cpu:sample vs fixture`,
        ref['sample']!,
        get(io, 'sample').data as Float32Array,
        1e-4,
        1e-4,
      );
    },
  );

  it('VAE decode and encode', async () => {
    const dec = await loadFixture('vae_decode');
    const enc = await loadFixture('vae_encode');
    await cpuVsWebgpu('vae', async () => {
      const vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode'), {
        weights: fixturePath('vae_decode', 'weights.safetensors'),
      });
      const z = toTensor(dec, 'z');
      const x = toTensor(enc, 'x');
      try {
        const sample = await read(vae.decode(z));
        const post = vae.encode(x);
        const out = {
          sample,
          'latent_dist.mean': (await post.mean.data()) as Float32Array,
          'latent_dist.logvar': (await post.logvar.data()) as Float32Array,
        };
        post.dispose();
        return out;
      } finally {
        tf.dispose([z, x]);
        vae.dispose();
      }
    });
  });

  it('flow-matching Euler: 10 steps (shift 3)', async () => {
    const caseName = 'scheduler_flow_match_euler_shift3';
    const io = await loadFixture(caseName);
    const cfg = parseSchedulerConfig(fixtureJson(caseName, 'config.json')) as FlowMatchSchedulerConfig;
    const ref = await cpuVsWebgpu(caseName, async () => {
      const s = new FlowMatchEulerSampler(cfg);
      s.setTimesteps(10);
      let x = toTensor(io, 'sample.0');
      const out: Outputs = {};
      for (let i = 0; i < s.timesteps.length; i++) {
        const v = toTensor(io, `model_output.${i}`);
        const o = s.step(v, i, x);
        tf.dispose([x, v, o.predOriginalSample]);
        x = o.prevSample;
        out[`prev_sample.${i}`] = (await x.data()) as Float32Array;
      }
      x.dispose();
      return out;
    });
    expectClose(
      'cpu prev_sample.9 vs fixture',
      ref['prev_sample.9']!,
      get(io, 'prev_sample.9').data as Float32Array,
      1e-5,
      1e-5,
    );
  });

  it('seeded noise is bit-identical to the JS generator on webgpu', async () => {
    await selectBackend('webgpu');
    const t = gaussianNoise([1, 3, 4, 6, 10], 1234, 5);
    const u = tf.add(t, 0); // a backend op in between, so the data really lives on the GPU
    expect(Array.from(new Uint32Array(((await u.data()) as Float32Array).buffer))).toEqual(
      Array.from(new Uint32Array(gaussianArray(720, 1234, 5).buffer)),
    );
    tf.dispose([t, u]);
  });
});
