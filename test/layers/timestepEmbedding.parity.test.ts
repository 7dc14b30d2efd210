/**
 * Parity of the timestep conditioning with the reference (`time_proj.out`, `time_embedding.out`) on
 * the four transformer fixtures (the conditional case also checks the conditioning timestep's
 * `call1`), on cpu and wasm, within the README tolerances: `time_proj` atol 1e-4 / rtol 0,
 * `time_embedding` atol 1e-4 / rtol 1e-4. Plus the layer's structure: reference weight names,
 * countParams, config round trip, class registration, no tensor leak, input checks.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { ShapeError } from '../../src/errors.js';
import {
  TimestepEmbedding,
  timestepSinusoid,
  type TimestepEmbeddingConfig,
} from '../../src/layers/timestepEmbedding.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { expectClose } from '../helpers/close.js';
import { fixtureJson, get, loadFixture, numbers, toTensor, type FixtureTensor } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const CASES = [
  'transformer_2b_single',
  'transformer_5b_rope_single',
  'mask2dit_multiscene',
  'mask2dit_conditional',
] as const;
const PROJ_ATOL = 1e-4;
const EMB_ATOL = 1e-4;
const EMB_RTOL = 1e-4;

interface CaseConfig {
  num_attention_heads: number;
  attention_head_dim: number;
  time_embed_dim: number;
  flip_sin_to_cos: boolean;
  freq_shift: number;
}

/** The weights whose names start with `prefix.`, renamed without it (the rest are not loaded). */
function withPrefix(weights: Map<string, FixtureTensor>, prefix: string): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of weights) {
    if (name.startsWith(`${prefix}.`))
      out.set(name.slice(prefix.length + 1), tf.tensor(t.data as Float32Array, t.shape, 'float32'));
  }
  return out;
}

describe.each(['cpu', 'wasm'] as const)('timestep embedding parity on %s', (backend) => {
  it.each(CASES)('%s: time_proj and time_embedding match the reference', async (caseName) => {
    await selectBackend(backend);
    const cfg = fixtureJson<CaseConfig>(caseName, 'config.json');
    const io = await loadFixture(caseName);
    const weights = await loadFixture(caseName, 'weights.safetensors');
    const inner = cfg.num_attention_heads * cfg.attention_head_dim;

    const ws = WeightSource.fromTensors(
      `${caseName}/weights.safetensors[time_embedding.*]`,
      withPrefix(weights, 'time_embedding'),
    );
    const emb = new TimestepEmbedding({ inChannels: inner, timeEmbedDim: cfg.time_embed_dim }, ws);
    ws.finish(); // strict: exactly linear_1/linear_2 weight+bias, right shapes

    const calls: { input: string; suffix: string }[] = io.has('timestep_conditioning')
      ? [
          { input: 'timestep', suffix: '.call0' },
          { input: 'timestep_conditioning', suffix: '.call1' },
        ]
      : [{ input: 'timestep', suffix: '' }];
    for (const { input, suffix } of calls) {
      const t = numbers(io, input);
      const proj = timestepSinusoid(t, inner, cfg.flip_sin_to_cos, cfg.freq_shift);
      const refProj = get(io, `time_proj${suffix}.out`);
      expect(proj.shape).toEqual(refProj.shape);
      expectClose(
        `${backend}:${caseName}:time_proj${suffix}`,
        await proj.data(),
        refProj.data as Float32Array,
        PROJ_ATOL,
        0,
      );

      const refEmb = get(io, `time_embedding${suffix}.out`);
      // end to end (our sinusoid) and isolated (the reference's sinusoid as input)
      const out = emb.forward(proj);
      const refIn = toTensor(io, `time_proj${suffix}.out`);
      const isolated = emb.forward(refIn);
      expect(out.shape).toEqual(refEmb.shape);
      expectClose(
        `${backend}:${caseName}:time_embedding${suffix}`,
        await out.data(),
        refEmb.data as Float32Array,
        EMB_ATOL,
        EMB_RTOL,
      );
      expectClose(
        `${backend}:${caseName}:time_embedding${suffix} (reference input)`,
        await isolated.data(),
        refEmb.data as Float32Array,
        EMB_ATOL,
        EMB_RTOL,
      );
      tf.dispose([proj, out, refIn, isolated]);
    }
    emb.dispose();
  });
});

describe('timestepSinusoid', () => {
  it('orders [cos | sin] with flip_sin_to_cos, [sin | cos] without, and pads an odd dim with zero', async () => {
    await selectBackend('cpu');
    const t = [0, 3.5, 999];
    const flip = await timestepSinusoid(t, 8, true, 0).data();
    const plain = await timestepSinusoid(t, 8, false, 0).data();
    const odd = await timestepSinusoid(t, 9, true, 0).data();
    for (let b = 0; b < t.length; b++) {
      for (let i = 0; i < 4; i++) {
        const arg = t[b]! * Math.exp((-Math.log(10000) * i) / 4);
        expect(flip[b * 8 + i]).toBeCloseTo(Math.cos(arg), 6);
        expect(flip[b * 8 + 4 + i]).toBeCloseTo(Math.sin(arg), 6);
        expect(plain[b * 8 + i]).toBe(flip[b * 8 + 4 + i]);
        expect(plain[b * 8 + 4 + i]).toBe(flip[b * 8 + i]);
        expect(odd[b * 9 + i]).toBe(flip[b * 8 + i]);
        expect(odd[b * 9 + 4 + i]).toBe(flip[b * 8 + 4 + i]);
      }
      expect(odd[b * 9 + 8]).toBe(0);
    }
  });

  it('applies freq_shift, scale and max_period as get_timestep_embedding does', async () => {
    await selectBackend('cpu');
    const y = await timestepSinusoid([10], 6, true, 1, { scale: 2, maxPeriod: 100 }).data();
    for (let i = 0; i < 3; i++) {
      const arg = 2 * 10 * Math.exp((-Math.log(100) * i) / (3 - 1));
      expect(y[i]).toBeCloseTo(Math.cos(arg), 6);
      expect(y[3 + i]).toBeCloseTo(Math.sin(arg), 6);
    }
  });

  it('rejects empty, non-finite and degenerate inputs with a ShapeError', () => {
    expect(() => timestepSinusoid([], 8, true, 0)).toThrow(ShapeError);
    expect(() => timestepSinusoid([Number.NaN], 8, true, 0)).toThrow(/not a finite number/);
    expect(() => timestepSinusoid([1], 0, true, 0)).toThrow(ShapeError);
    expect(() => timestepSinusoid([1], 8, true, 4)).toThrow(/divide by zero/);
  });
});

describe('TimestepEmbedding layer', () => {
  const config: TimestepEmbeddingConfig = { inChannels: 8, timeEmbedDim: 6 };

  it('names its weights like the reference, counts them, registers its class and round-trips its config', async () => {
    await selectBackend('cpu');
    const before = tf.memory().numTensors;
    const emb = new TimestepEmbedding(config, WeightSource.random(7).pp('time_embedding'));
    const named = [...emb.namedWeights()].map(([n, v]) => `${n}:${v.shape.join('x')}`);
    expect(named).toEqual(['linear_1.weight:6x8', 'linear_1.bias:6', 'linear_2.weight:6x6', 'linear_2.bias:6']);
    expect(emb.name).toBe('time_embedding');
    expect(emb.countParams()).toBe([...emb.namedWeights()].reduce((n, [, v]) => n + v.read().size, 0));
    expect(emb.countParams()).toBe(6 * 8 + 6 + 6 * 6 + 6);
    expect(tf.serialization.getRegisteredName(TimestepEmbedding)).toBe('Mask2DiT>M2TimestepEmbedding');
    const cfg = emb.getConfig();
    expect(cfg).toMatchObject({ inChannels: 8, timeEmbedDim: 6, outDim: 6, sampleProjBias: true, act: 'silu' });
    const again = new TimestepEmbedding(
      cfg as unknown as TimestepEmbeddingConfig,
      WeightSource.zeros().pp('time_embedding'),
    );
    expect(again.getConfig()).toEqual(cfg);
    expect(emb.computeOutputShape([2, 8])).toEqual([2, 6]);
    emb.dispose();
    again.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('matches linear_2(SiLU(linear_1(x))) written out, through forward and apply, without leaking', async () => {
    await selectBackend('cpu');
    const emb = new TimestepEmbedding({ ...config, outDim: 5 }, WeightSource.random(11));
    const x = tf.randomNormal([3, 8], 0, 1, 'float32', 5);
    const w1 = emb.weightByName('linear_1.weight')!;
    const b1 = emb.weightByName('linear_1.bias')!;
    const w2 = emb.weightByName('linear_2.weight')!;
    const b2 = emb.weightByName('linear_2.bias')!;
    const expected = tf.tidy(() => {
      const h = tf.add(tf.matMul(x, w1, false, true), b1);
      return tf.add(tf.matMul(tf.mul(h, tf.sigmoid(h)), w2, false, true), b2);
    });
    const y = emb.forward(x); // switches each Linear back to its [in, out] kernel (weightByName gave [out, in])
    expectClose('forward', await y.data(), await expected.data(), 1e-6, 1e-6);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) emb.forward(x).dispose();
    const applied = emb.apply(x) as tf.Tensor;
    expect(tf.memory().numTensors).toBe(before + 1);
    expectClose('apply', await applied.data(), await y.data(), 0, 0);
    tf.dispose([x, expected, y, applied]);
    expect(emb.dispose().numDisposedVariables).toBe(4);
    expect(tf.memory().numTensors).toBe(before - 3 - 4); // x, expected, y; the weights gone too (a Linear holds one copy, no cached transpose)
  });

  it('rejects a sinusoid of the wrong width and reports missing weights by name', async () => {
    await selectBackend('cpu');
    const emb = new TimestepEmbedding(config, WeightSource.zeros());
    const x = tf.zeros([2, 7]);
    expect(() => emb.forward(x)).toThrow(ShapeError);
    x.dispose();
    emb.dispose();
    const ws = WeightSource.fromTensors('partial', new Map([['linear_1.weight', tf.zeros([6, 8])]]));
    const partial = new TimestepEmbedding(config, ws);
    expect(() => ws.finish()).toThrow(/missing 3: linear_1.bias, linear_2.weight, linear_2.bias/);
    partial.dispose();
  });
});
