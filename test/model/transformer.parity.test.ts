/**
 * Parity with the reference transformer fixtures: the final output and every captured
 * intermediate, within the fixtures' stated tolerances (test/fixtures/README.md), on cpu and wasm
 * (single-threaded, as the suite runs, and the threaded build with 2 threads).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { runningWasmThreads, selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { Probe } from '../../src/layers/probe.js';
import { expectClose } from '../helpers/close.js';
import { fixturePath, get, loadFixture, numbers, toTensor, type FixtureTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const INPUTS = new Set([
  'hidden_states',
  'encoder_hidden_states',
  'timestep',
  'image_rotary_emb.cos',
  'image_rotary_emb.sin',
  'clip_idx',
  'timestep_conditioning',
  'patch_embed.pos_embedding',
]);

/** README tolerances: transformer outputs and intermediates 1e-4/1e-4; time_proj 1e-4/0. */
function tolerance(name: string): [number, number] {
  return name.startsWith('time_proj') ? [1e-4, 0] : [1e-4, 1e-4];
}

async function run(
  model: Mask2DiTTransformer,
  io: Map<string, FixtureTensor>,
  extra: { clipIdx?: number } = {},
  useFixtureRope = true,
) {
  const probe = new Probe(() => true);
  const hs = toTensor(io, 'hidden_states');
  const ehs = toTensor(io, 'encoder_hidden_states');
  const rope =
    useFixtureRope && io.has('image_rotary_emb.cos')
      ? { cos: toTensor(io, 'image_rotary_emb.cos'), sin: toTensor(io, 'image_rotary_emb.sin') }
      : undefined;
  const clip = extra.clipIdx ?? (io.has('clip_idx') ? numbers(io, 'clip_idx')[0] : undefined);
  const out = model.forward({
    hiddenStates: hs,
    encoderHiddenStates: ehs,
    timestep: numbers(io, 'timestep'),
    ...(clip !== undefined ? { clipIdx: clip, timestepCond: numbers(io, 'timestep_conditioning')[0]! } : {}),
    ...(rope !== undefined ? { rope } : {}),
    probe,
  });
  const sample = await out.data();
  tf.dispose([hs, ehs, out, ...(rope !== undefined ? [rope.cos, rope.sin] : [])]);
  return { sample: sample as Float32Array, probe };
}

/** The test suite runs wasm single-threaded (test/setup.ts); `wasm×2` is the threaded build users get. */
type Backend = 'cpu' | 'wasm' | 'wasm×2';
const BACKENDS: Backend[] = ['cpu', 'wasm', 'wasm×2'];

async function useBackend(backend: Backend): Promise<void> {
  if (backend !== 'wasm×2') {
    if (backend === 'wasm' && runningWasmThreads() !== undefined && runningWasmThreads() !== 1) shutdownBackends();
    await selectBackend(backend, backend === 'wasm' ? { threads: 1 } : {});
    return;
  }
  if (runningWasmThreads() !== undefined && runningWasmThreads() !== 2) shutdownBackends(); // a running wasm keeps its thread count
  const info = await selectBackend('wasm', { threads: 2 });
  expect(info.threads).toBe(2);
}

async function checkCase(
  caseName: string,
  backend: Backend,
  weights = 'weights.safetensors',
  ioFile = 'io.safetensors',
) {
  await useBackend(backend);
  const inputs = await loadFixture(caseName, 'io.safetensors');
  const expected = ioFile === 'io.safetensors' ? inputs : await loadFixture(caseName, ioFile);
  const model = await Mask2DiTTransformer.fromPretrained(fixturePath(caseName), {
    weights: fixturePath(caseName, weights),
  });
  try {
    const { sample, probe } = await run(model, inputs);
    expectClose(`${caseName}/${backend}:sample`, sample, get(expected, 'sample').data as Float32Array, 1e-4, 1e-4);
    let compared = 1;
    for (const [name, t] of expected) {
      if (INPUTS.has(name) || name === 'sample' || name.startsWith('sample.')) continue;
      const got = probe.get(name);
      if (got === undefined)
        throw new Error(
          `${caseName}: intermediate ${name} was not captured (captured: ${[...probe.captured.keys()].join(', ')})`,
        );
      expect(got.shape).toEqual(t.shape);
      const [atol, rtol] = tolerance(name);
      expectClose(`${caseName}/${backend}:${name}`, await got.data(), t.data as Float32Array, atol, rtol);
      compared++;
    }
    probe.dispose();
    if (expected.has('sample.clip_idx_1')) {
      const again = await run(model, inputs, { clipIdx: 1 });
      again.probe.dispose();
      expectClose(
        `${caseName}/${backend}:sample.clip_idx_1`,
        again.sample,
        get(expected, 'sample.clip_idx_1').data as Float32Array,
        1e-4,
        1e-4,
      );
      compared++;
    }
    return compared;
  } finally {
    model.dispose();
  }
}

describe.each(BACKENDS)('transformer parity on %s', (backend) => {
  it.each(['transformer_2b_single', 'transformer_5b_rope_single', 'mask2dit_multiscene', 'mask2dit_conditional'])(
    '%s: sample and every intermediate',
    async (caseName) => {
      const n = await checkCase(caseName, backend);
      expect(n).toBeGreaterThan(10);
    },
  );

  it('mask2dit_multiscene with bf16 weights matches the bf16 outputs', async () => {
    await checkCase('mask2dit_multiscene', backend, 'weights.bf16.safetensors', 'io.bf16.safetensors');
  });

  it('RoPE computed from the config equals the fixture tables (5B case, non-base grid)', async () => {
    await useBackend(backend);
    const io = await loadFixture('transformer_5b_rope_single');
    const model = await Mask2DiTTransformer.fromPretrained(fixturePath('transformer_5b_rope_single'), {
      weights: fixturePath('transformer_5b_rope_single', 'weights.safetensors'),
    });
    try {
      const { sample, probe } = await run(model, io, {}, false);
      probe.dispose();
      expectClose('sample (own RoPE)', sample, get(io, 'sample').data as Float32Array, 1e-4, 1e-4);
    } finally {
      model.dispose();
    }
  });
});
