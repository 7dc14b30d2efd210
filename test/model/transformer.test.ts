/**
 * The transformer beyond parity: checkpoint loading errors, sharded loading, config validation,
 * the conditional mask's modulation isolation, attention-probability capture, no tensor leaks.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { ConfigError } from '../../src/errors.js';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { parseTransformerConfig, readTransformerConfig } from '../../src/config/transformerConfig.js';
import { AdaLayerNorm, LayerNormZero, type SegmentCondition } from '../../src/layers/adaLayerNorm.js';
import { WeightLoadError, WeightSource } from '../../src/layers/weightSource.js';
import { Mask2DiTTransformer } from '../../src/model/transformer.js';
import { Probe } from '../../src/layers/probe.js';
import { rangeLength, type TokenRange } from '../../src/scene/layout.js';
import { fixturePath, loadFixture, numbers, toTensor } from '../helpers/fixtures.js';

const CASE = 'mask2dit_conditional';
let tmp: string;

beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-transformer-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackends();
});

/** A copy of the fixture checkpoint with `edit` applied to its tensors. */
async function editedCheckpoint(name: string, edit: (t: Record<string, TensorToWrite>) => void): Promise<string> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(fixturePath(CASE, 'config.json'), path.join(dir, 'config.json'));
  const src = await openSafetensors(fixturePath(CASE, 'weights.safetensors'));
  const tensors: Record<string, TensorToWrite> = {};
  for (const n of src.names())
    tensors[n] = { dtype: 'F32', shape: src.info(n).shape, data: (await src.read(n)) as Float32Array };
  await src.close();
  edit(tensors);
  await writeSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), tensors);
  return dir;
}

async function sampleOf(model: Mask2DiTTransformer): Promise<Float32Array> {
  const io = await loadFixture(CASE);
  const [hs, ehs] = [toTensor(io, 'hidden_states'), toTensor(io, 'encoder_hidden_states')];
  const out = model.forward({
    hiddenStates: hs,
    encoderHiddenStates: ehs,
    timestep: numbers(io, 'timestep'),
    clipIdx: 2,
    timestepCond: 0,
  });
  const data = (await out.data()) as Float32Array;
  tf.dispose([hs, ehs, out]);
  return data;
}

describe('fromPretrained', () => {
  test('missing, unexpected and wrongly shaped parameters are all listed by name in one error', async () => {
    const dir = await editedCheckpoint('broken', (t) => {
      delete t['transformer_blocks.1.ff.net.2.bias'];
      t['transformer_blocks.0.extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
      const w = t['proj_out.weight']!;
      t['proj_out.weight'] = {
        dtype: 'F32',
        shape: [w.shape[0]! - 1, w.shape[1]!],
        data: (w.data as Float32Array).subarray(0, (w.shape[0]! - 1) * w.shape[1]!),
      };
    });
    const before = tf.memory().numTensors;
    const err = await Mask2DiTTransformer.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightLoadError);
    const e = err as WeightLoadError;
    expect(e.missing).toEqual(['transformer_blocks.1.ff.net.2.bias']);
    expect(e.unexpected).toEqual(['transformer_blocks.0.extra.weight']);
    expect(e.wrongShape.map((w) => w.name)).toEqual(['proj_out.weight']);
    expect(e.message).toMatch(/missing 1: transformer_blocks\.1\.ff\.net\.2\.bias/);
    expect(e.message).toMatch(/proj_out\.weight expected \[\d+,\d+\] got/);
    expect(tf.memory().numTensors).toBe(before); // the half-built model was disposed
    // strict: false tolerates the unexpected key only
    await expect(Mask2DiTTransformer.fromPretrained(dir, { strict: false })).rejects.toThrow(/missing 1/);
  });

  test('a sharded checkpoint (diffusers index.json) and a pipeline folder load to the same model', async () => {
    const src = await openSafetensors(fixturePath(CASE, 'weights.safetensors'));
    const names = src.names();
    const root = path.join(tmp, 'pipeline');
    const dir = path.join(root, 'transformer');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(fixturePath(CASE, 'config.json'), path.join(dir, 'config.json'));
    const weightMap: Record<string, string> = {};
    for (const [k, part] of [names.slice(0, 20), names.slice(20)].entries()) {
      const file = `diffusion_pytorch_model-0000${k + 1}-of-00002.safetensors`;
      const tensors: Record<string, TensorToWrite> = {};
      for (const n of part) {
        tensors[n] = { dtype: 'F32', shape: src.info(n).shape, data: (await src.read(n)) as Float32Array };
        weightMap[n] = file;
      }
      await writeSafetensors(path.join(dir, file), tensors);
    }
    await src.close();
    fs.writeFileSync(
      path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const sharded = await Mask2DiTTransformer.fromPretrained(root);
    const single = await Mask2DiTTransformer.fromPretrained(fixturePath(CASE), {
      weights: fixturePath(CASE, 'weights.safetensors'),
    });
    try {
      expect(sharded.countParams()).toBe(single.countParams());
      expect(await sampleOf(sharded)).toEqual(await sampleOf(single));
    } finally {
      sharded.dispose();
      single.dispose();
    }
  });

  test('a folder without config.json is a ConfigError naming the file', async () => {
    await expect(Mask2DiTTransformer.fromPretrained(path.join(tmp, 'nothing-here'))).rejects.toThrow(
      /config\.json.*missing/,
    );
  });
});

describe('config.json validation', () => {
  const base = JSON.parse(fs.readFileSync(fixturePath(CASE, 'config.json'), 'utf8')) as Record<string, unknown>;

  test('the fixture config parses, derived values are right, getConfig round-trips', () => {
    const { config, unknownKeys } = parseTransformerConfig(base);
    expect(unknownKeys).toEqual([]);
    expect(config.innerDim).toBe(config.num_attention_heads * config.attention_head_dim);
    expect(config.multiScene).toBe(true);
    const model = new Mask2DiTTransformer(config, WeightSource.zeros());
    try {
      const again = parseTransformerConfig(JSON.parse(JSON.stringify(model.configJson())) as Record<string, unknown>);
      expect(again.unknownKeys).toEqual([]);
      expect(model.getConfig()['num_layers']).toBe(config.num_layers);
      expect(again.config).toEqual(config);
    } finally {
      model.dispose();
    }
  });

  test.each([
    [{ num_attention_heads: 2.5 }, 'num_attention_heads'],
    [{ num_attention_heads: '2' }, 'num_attention_heads'],
    [{ attention_head_dim: 8, use_rotary_positional_embeddings: true }, 'attention_head_dim'],
    [{ _class_name: 'UNet2DModel' }, '_class_name'],
    [{ patch_size_t: 2 }, 'patch_size_t'],
    [{ attn_msk_version: 1 }, 'attn_msk_version'],
  ])('%j is refused naming %s', (edit, field) => {
    let err: unknown;
    try {
      parseTransformerConfig({ ...base, ...edit }, 'model/config.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch('model/config.json');
    expect((err as ConfigError).field).toBe(field);
  });

  test('unknown keys are reported, not fatal; unreadable JSON names the file', () => {
    expect(parseTransformerConfig({ ...base, my_new_flag: 1 }).unknownKeys).toEqual(['my_new_flag']);
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(bad, '{"num_layers": ');
    expect(() => readTransformerConfig(bad)).toThrow(/bad\.json.*not valid JSON/);
  });
});

describe('segment-level conditional mask: modulation isolation', () => {
  const D = 8;
  const E = 6;
  let norm1: LayerNormZero;
  let normOut: AdaLayerNorm;
  beforeAll(() => {
    norm1 = new LayerNormZero(
      { dim: D, conditioningDim: E, eps: 1e-5, elementwiseAffine: true },
      WeightSource.random(11),
    );
    normOut = new AdaLayerNorm(
      { dim: D, conditioningDim: E, eps: 1e-5, elementwiseAffine: true },
      WeightSource.random(12),
    );
  });
  afterAll(() => {
    norm1.dispose();
    normOut.dispose();
  });

  const ranges = (lens: number[]): TokenRange[] => {
    let at = 0;
    return lens.map((n) => ({ start: at, end: (at += n) }));
  };
  const rows = async (x: tf.Tensor, r: TokenRange[], keep: (i: number) => boolean) =>
    (
      await Promise.all(
        r.filter((_, i) => keep(i)).map((t) => tf.slice(x, [0, t.start, 0], [-1, rangeLength(t), -1]).data()),
      )
    ).map((d) => Array.from(d));

  test('changing the target timestep changes nothing in the conditioning segments, and vice versa', async () => {
    const arb = fc.record({
      text: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 5 }),
      video: fc.integer({ min: 1, max: 5 }),
      targetFrac: fc.double({ min: 0, max: 0.999, noNaN: true }),
      seed: fc.integer({ min: 0, max: 1e6 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ text, video, targetFrac, seed }) => {
        const S = text.length;
        const target = Math.floor(targetFrac * S);
        const videoLens = Array(S).fill(video) as number[];
        const tr = ranges(text);
        const vr = ranges(videoLens);
        const B = 2;
        const h = tf.randomNormal([B, S * video, D], 0, 1, 'float32', seed);
        const e = tf.randomNormal([B, tr[S - 1]!.end, D], 0, 1, 'float32', seed + 1);
        const [t1, t2, c1, c2] = [0, 1, 2, 3].map((k) =>
          tf.randomNormal([k < 2 ? B : 1, E], 0, 1, 'float32', seed + 2 + k),
        ) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const cond = (tembCond: tf.Tensor): SegmentCondition => ({ tembCond, target, textRanges: tr, videoRanges: vr });
        const run = async (temb: tf.Tensor, tembCond: tf.Tensor) => {
          const o = norm1.forward({ hidden: h, encoderHidden: e, temb, cond: cond(tembCond) });
          const out = normOut.forward({ hidden: h, temb, cond: cond(tembCond) });
          const pick = async (isTarget: boolean) => {
            const k = (i: number) => (i === target) === isTarget;
            return [
              await rows(o.hidden, vr, k),
              await rows(o.encoderHidden, tr, k),
              await rows(o.gate, vr, k),
              await rows(o.encGate, tr, k),
              await rows(out, vr, k),
            ];
          };
          const r = { target: await pick(true), cond: await pick(false) };
          tf.dispose([o.hidden, o.encoderHidden, o.gate, o.encGate, out]);
          return r;
        };
        const base = await run(t1, c1);
        const newTarget = await run(t2, c1);
        const newCond = await run(t1, c2);
        tf.dispose([h, e, t1, t2, c1, c2]);
        expect(newTarget.cond).toEqual(base.cond); // bit-identical
        expect(newTarget.target).not.toEqual(base.target);
        expect(newCond.target).toEqual(base.target);
        expect(newCond.cond).not.toEqual(base.cond);
      }),
      { numRuns: 25 },
    );
  });

  test('in the whole model: every block’s conditioning modulation ignores the target timestep', async () => {
    const model = await Mask2DiTTransformer.fromPretrained(fixturePath(CASE), {
      weights: fixturePath(CASE, 'weights.safetensors'),
    });
    const io = await loadFixture(CASE);
    const [hs, ehs] = [toTensor(io, 'hidden_states'), toTensor(io, 'encoder_hidden_states')];
    const gates = async (t: number, tc: number) => {
      const probe = new Probe(
        (n) => /^block\.\d+\.norm[12]\.call[01]\.(gate|enc_gate)$/.test(n) || /^norm_out\.call[01]\.out$/.test(n),
      );
      tf.dispose(
        model.forward({
          hiddenStates: hs,
          encoderHiddenStates: ehs,
          timestep: [t, t],
          clipIdx: 1,
          timestepCond: tc,
          probe,
        }),
      );
      const out = new Map<string, number[]>();
      for (const [k, v] of probe.captured) out.set(k, Array.from(await v.data()));
      probe.dispose();
      return out;
    };
    const a = await gates(701, 0);
    const b = await gates(300, 0);
    const c = await gates(701, 50);
    tf.dispose([hs, ehs]);
    model.dispose();
    const names = [...a.keys()].filter((k) => /gate/.test(k));
    expect(names.length).toBe(2 * 2 * 2 * 2); // layers × norms × calls × {gate, enc_gate}
    for (const k of names) {
      if (k.includes('.call1.')) {
        expect(b.get(k)).toEqual(a.get(k));
        expect(c.get(k)).not.toEqual(a.get(k));
      } else {
        expect(c.get(k)).toEqual(a.get(k));
        expect(b.get(k)).not.toEqual(a.get(k));
      }
    }
  });
});

describe('introspection and memory', () => {
  let model: Mask2DiTTransformer;
  let io: Awaited<ReturnType<typeof loadFixture>>;
  beforeAll(async () => {
    model = await Mask2DiTTransformer.fromPretrained(fixturePath('mask2dit_multiscene'), {
      weights: fixturePath('mask2dit_multiscene', 'weights.safetensors'),
    });
    io = await loadFixture('mask2dit_multiscene');
  });
  afterAll(() => {
    model.dispose();
  });

  const forward = (probe?: Probe, clip?: number) => {
    const [hs, ehs] = [toTensor(io, 'hidden_states'), toTensor(io, 'encoder_hidden_states')];
    const out = model.forward({
      hiddenStates: hs,
      encoderHiddenStates: ehs,
      timestep: numbers(io, 'timestep'),
      ...(clip !== undefined ? { clipIdx: clip, timestepCond: 0 } : {}),
      ...(probe !== undefined ? { probe } : {}),
    });
    tf.dispose([hs, ehs]);
    return out;
  };

  test('attention probabilities of one head and one scene, captured without changing the output', async () => {
    const plain = forward();
    const probe = new Probe(['block.1.attn1.probs'], { heads: [1], scene: 2 });
    const probed = forward(probe);
    expect(await probed.data()).toEqual(await plain.data());
    const p = probe.get('block.1.attn1.probs')!;
    const { text, video } = model.plan({
      hiddenStates: toTensor(io, 'hidden_states'),
      encoderHiddenStates: toTensor(io, 'encoder_hidden_states'),
      timestep: [0, 0],
    }).layout;
    const L = text.reduce((a, b) => a + b) + video.reduce((a, b) => a + b);
    expect(p.shape).toEqual([2, 1, text[2]! + video[2]!, L]); // [B, heads, scene-2 queries, all keys]
    const rowSums = (await tf.sum(p, -1).data()) as Float32Array;
    for (const s of rowSums) expect(s).toBeCloseTo(1, 5);
    // a text query of scene 2 gives zero probability to scene 0's text keys
    const row0 = (await tf.slice(p, [0, 0, 0, 0], [1, 1, 1, text[0]!]).data()) as Float32Array;
    expect(Array.from(row0).every((x) => x === 0)).toBe(true);
    probe.dispose();
    tf.dispose([plain, probed]);
  });

  test('no tensor leak across repeated forwards (plain, conditional, probed)', async () => {
    tf.dispose(forward()); // first calls build caches (transposed weights)
    tf.dispose(forward(undefined, 1));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose(forward());
      tf.dispose(forward(undefined, i % 3));
      const probe = new Probe(() => true);
      tf.dispose(forward(probe));
      probe.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test('dispose frees every tensor the model holds (weights and caches)', async () => {
    const before = tf.memory().numTensors;
    const m = await Mask2DiTTransformer.fromPretrained(fixturePath('transformer_2b_single'), {
      weights: fixturePath('transformer_2b_single', 'weights.safetensors'),
    });
    const io2 = await loadFixture('transformer_2b_single');
    const [hs, ehs] = [toTensor(io2, 'hidden_states'), toTensor(io2, 'encoder_hidden_states')];
    tf.dispose([
      m.forward({ hiddenStates: hs, encoderHiddenStates: ehs, timestep: numbers(io2, 'timestep') }),
      hs,
      ehs,
    ]);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
