/**
 * Parity with the reference VAE fixtures (test/fixtures/vae_decode, vae_encode): the decoded
 * `sample` under each frame batching, the encoder's moments and posterior, and every stored
 * per-call intermediate, within the README tolerances (1e-4 / 1e-4), on cpu and wasm.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { CogVideoXVAE, type FrameBatching } from '../../src/model/vae.js';
import { Probe } from '../../src/layers/probe.js';
import { expectClose } from '../helpers/close.js';
import { fixturePath, get, loadFixture, toTensor, type FixtureTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const ATOL = 1e-4;
const RTOL = 1e-4;

/** Fixture intermediate `decoder.conv_in.call1.out` → probe key `decoder.conv_in.out.call1` (call0 → no suffix). */
function probeKey(fixtureName: string): string {
  const m = /^(.*)\.call(\d+)\.out$/.exec(fixtureName);
  if (m === null) throw new Error(`not an intermediate: ${fixtureName}`);
  return m[2] === '0' ? `${m[1]}.out` : `${m[1]}.out.call${m[2]}`;
}

async function checkIntermediates(io: Map<string, FixtureTensor>, probe: Probe, label: string): Promise<number> {
  let n = 0;
  for (const [name, t] of io) {
    if (!/\.call\d+\.out$/.test(name)) continue;
    const got = probe.get(probeKey(name));
    if (got === undefined)
      throw new Error(`${label}: ${name} not captured (have ${[...probe.captured.keys()].join(', ')})`);
    expect(got.shape).toEqual(t.shape);
    expectClose(`${label}:${name}`, await got.data(), t.data as Float32Array, ATOL, RTOL);
    n++;
  }
  return n;
}

describe.each(['cpu', 'wasm'] as const)('VAE parity on %s', (backend) => {
  let vae: CogVideoXVAE;
  let dec: Map<string, FixtureTensor>;
  let enc: Map<string, FixtureTensor>;

  beforeAll(async () => {
    await selectBackend(backend);
    vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode'), {
      weights: fixturePath('vae_decode', 'weights.safetensors'),
    });
    dec = await loadFixture('vae_decode');
    enc = await loadFixture('vae_encode');
  });
  afterAll(() => {
    vae?.dispose();
  });

  it('decode (Mask2DiT default batching) matches sample and every decoder intermediate', async () => {
    const z = toTensor(dec, 'z');
    const probe = new Probe(['decoder.*']);
    const out = vae.decode(z, { probe });
    expect(out.shape).toEqual(get(dec, 'sample').shape);
    expectClose(`${backend}:sample`, await out.data(), get(dec, 'sample').data as Float32Array, ATOL, RTOL);
    expect(await checkIntermediates(dec, probe, backend)).toBe(12);
    tf.dispose([z, out]);
    probe.dispose();
  });

  it.each([
    ['auto_split', 'sample.auto_split'],
    ['auto_split', 'sample.diffusers_0_30_3'],
    ['one_call', 'sample.one_call'],
  ] as [FrameBatching, string][])('decode with batching %s matches %s', async (batching, name) => {
    const z = toTensor(dec, 'z');
    const out = vae.decode(z, { batching });
    expectClose(`${backend}:${name}`, await out.data(), get(dec, name).data as Float32Array, ATOL, RTOL);
    tf.dispose([z, out]);
  });

  it('encode matches moments, latent_dist.{mean,logvar,std} and every encoder intermediate', async () => {
    const x = toTensor(enc, 'x');
    const probe = new Probe(['encoder.*']);
    const post = vae.encode(x, { probe });
    for (const [name, t] of [
      ['moments', post.moments],
      ['moments.diffusers_0_30_3', post.moments],
      ['latent_dist.mean', post.mean],
      ['latent_dist.logvar', post.logvar],
      ['latent_dist.std', post.std],
    ] as [string, tf.Tensor][]) {
      expect(t.shape).toEqual(get(enc, name).shape);
      expectClose(`${backend}:${name}`, await t.data(), get(enc, name).data as Float32Array, ATOL, RTOL);
    }
    expect(await checkIntermediates(enc, probe, backend)).toBe(12);
    post.dispose();
    probe.dispose();
    x.dispose();
  });
});
