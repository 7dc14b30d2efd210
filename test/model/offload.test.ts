/**
 * Weights as stored, one copy each, blocks offloaded (model/offload.ts):
 * - the offloaded transformer gives the resident one's numbers bit for bit, and the fixtures' within
 *   their tolerances (f32 and bf16 weights), every intermediate included;
 * - a resident load holds 4 bytes per parameter; an offloaded one holds its kept part, its forwards
 *   leak nothing and peak one block above it instead of all of them;
 * - 'auto' picks the mode from the memory available and says so; what cannot fit is refused at load
 *   with a MemoryBudgetError naming the folder; an offloaded model refuses training;
 * - sharded bf16 checkpoints, save from an offloaded model, loadModelFolder and the CLI flag.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { MemoryBudgetError } from '../../src/backend/memoryBudget.js';
import { f32ToBf16, f32ToF16, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { DEFAULT_MODEL_DIR, loadModelFolder } from '../../src/model/modelFolder.js';
import { memoryNeeded, widenToF32, type MemoryAvailable, type OffloadDecision } from '../../src/model/offload.js';
import { Probe } from '../../src/layers/probe.js';
import { Mask2DiTTransformer, type TransformerInputs } from '../../src/model/transformer.js';
import { encodePrompts } from '../../src/text/textEncoder.js';
import { expectClose } from '../helpers/close.js';
import { runCli } from '../helpers/cli.js';
import { fixturePath, get, loadFixture, numbers, toTensor, type FixtureTensor } from '../helpers/fixtures.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'offload-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  shutdownBackends();
});

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
const tolerance = (name: string): [number, number] => (name.startsWith('time_proj') ? [1e-4, 0] : [1e-4, 1e-4]);

const loadCase = (caseName: string, offload: 'none' | 'blocks', weights = 'weights.safetensors') =>
  Mask2DiTTransformer.fromPretrained(fixturePath(caseName), { weights: fixturePath(caseName, weights), offload });

/** The fixture's call, every intermediate captured. */
function forward(
  model: Mask2DiTTransformer,
  io: Map<string, FixtureTensor>,
  clipIdx?: number,
): { sample: tf.Tensor; probe: Probe } {
  const probe = new Probe(() => true);
  const hs = toTensor(io, 'hidden_states');
  const ehs = toTensor(io, 'encoder_hidden_states');
  const clip = clipIdx ?? (io.has('clip_idx') ? numbers(io, 'clip_idx')[0] : undefined);
  const sample = model.forward({
    hiddenStates: hs,
    encoderHiddenStates: ehs,
    timestep: numbers(io, 'timestep'),
    ...(clip !== undefined ? { clipIdx: clip, timestepCond: numbers(io, 'timestep_conditioning')[0]! } : {}),
    probe,
  });
  tf.dispose([hs, ehs]);
  return { sample, probe };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe.each(['cpu', 'wasm'] as const)('offloaded transformer on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  const CASES: [string, string, string][] = [
    ['mask2dit_multiscene', 'weights.safetensors', 'io.safetensors'],
    ['mask2dit_multiscene', 'weights.bf16.safetensors', 'io.bf16.safetensors'],
    ['mask2dit_conditional', 'weights.safetensors', 'io.safetensors'],
    ['transformer_5b_rope_single', 'weights.safetensors', 'io.safetensors'],
  ];
  it.each(CASES)('%s (%s): offload = resident bit for bit, both = the fixture', async (caseName, weights, ioFile) => {
    const io = await loadFixture(caseName);
    const expected = ioFile === 'io.safetensors' ? io : await loadFixture(caseName, ioFile);
    const resident = await loadCase(caseName, 'none', weights);
    const offloaded = await loadCase(caseName, 'blocks', weights);
    expect([resident.offload, offloaded.offload]).toEqual(['none', 'blocks']);
    expect(offloaded.countParams()).toBe(resident.countParams());
    const calls = io.has('clip_idx') ? [undefined, 1] : [undefined];
    for (const clip of calls) {
      const a = forward(resident, io, clip);
      const b = forward(offloaded, io, clip);
      expect(maxAbs(await b.sample.data(), await a.sample.data())).toBe(0);
      const ref = get(expected, clip === undefined ? 'sample' : 'sample.clip_idx_1').data as Float32Array;
      expectClose(`${caseName}:sample (offload)`, await b.sample.data(), ref, 1e-4, 1e-4);
      if (clip === undefined) {
        let n = 0;
        for (const [name, t] of expected) {
          if (INPUTS.has(name) || name.startsWith('sample')) continue;
          const [ga, gb] = [a.probe.get(name)!, b.probe.get(name)!];
          expect(maxAbs(await gb.data(), await ga.data())).toBe(0);
          expectClose(`${caseName}:${name} (offload)`, await gb.data(), t.data as Float32Array, ...tolerance(name));
          n++;
        }
        expect(n).toBeGreaterThan(2);
      }
      tf.dispose([a.sample, b.sample]);
      a.probe.dispose();
      b.probe.dispose();
    }
    resident.dispose();
    offloaded.dispose();
  });
});

describe('memory (wasm)', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('a resident load holds exactly 4 bytes per parameter; a forward adds only the RoPE and patch-conv caches', async () => {
    const before = tf.memory().numBytes;
    const model = await loadCase('mask2dit_multiscene', 'none');
    const P = model.countParams();
    expect(tf.memory().numBytes - before).toBe(4 * P);
    const io = await loadFixture('mask2dit_multiscene');
    const hs = toTensor(io, 'hidden_states');
    const ehs = toTensor(io, 'encoder_hidden_states');
    const y = model.forward({ hiddenStates: hs, encoderHiddenStates: ehs, timestep: numbers(io, 'timestep') });
    y.dispose();
    const c = model.config;
    const [, F, C, H, W] = hs.shape as number[];
    const p = c.patch_size;
    const rope = 2 * F! * (H! / p) * (W! / p) * c.attention_head_dim * 4; // cos, sin [Lv, headDim]
    const patchT = C! * p * p * c.innerDim * 4; // the patch conv's [C·p·p, D]
    expect(tf.memory().numBytes - before - hs.size * 4 - ehs.size * 4).toBe(4 * P + rope + patchT);
    tf.dispose([hs, ehs]);
    model.dispose();
    expect(tf.memory().numBytes).toBe(before);
  });

  it('offloaded: holds the kept part, leaks nothing, peaks one block (not all) above it', async () => {
    const world = path.join(DEFAULT_MODEL_DIR, 'transformer');
    const resident = await Mask2DiTTransformer.fromPretrained(world, { offload: 'none' });
    const c = resident.config;
    const inputs = (): TransformerInputs => ({
      hiddenStates: tf.randomNormal([1, 4, c.in_channels, 8, 8], 0, 1, 'float32', 1), // 2 scenes × 2 latent frames
      encoderHiddenStates: tf.randomNormal([1, 2 * c.max_text_seq_length, c.text_embed_dim], 0, 1, 'float32', 2),
      timestep: [500],
    });
    const x = inputs();
    const warm = resident.forward(x); // caches (RoPE, patch conv) in place before measuring
    const residentLive = tf.memory().numBytes;
    const residentPeak = (await tf.profile(() => resident.forward(x).dispose())).peakBytes; // (profile() reuses its result object)
    const P = resident.countParams();
    resident.dispose(); // peaks are absolute: measure each model alone

    const before = tf.memory().numBytes;
    let decision: OffloadDecision | undefined;
    const offloaded = await Mask2DiTTransformer.fromPretrained(world, {
      offload: 'blocks',
      onDecision: (d) => (decision = d),
    });
    const fp = decision!.footprint;
    expect(decision!.mode).toBe('blocks');
    expect(fp.blockBytes).toHaveLength(c.num_layers);
    expect(tf.memory().numBytes - before).toBe(fp.keptBytes);
    expect(offloaded.countParams()).toBe(P);
    // a running block holds its small parameters and one matrix (Linears read their kernel per forward)
    const wholeBlock = (4 * P - fp.keptBytes) / c.num_layers; // equal blocks
    expect(Math.max(...fp.blockBytes)).toBeLessThan(0.5 * wholeBlock);

    const first = offloaded.forward(x); // (builds its caches too)
    expect(maxAbs(await first.data(), await warm.data())).toBe(0);
    const live = tf.memory();
    for (let i = 0; i < 3; i++) offloaded.forward(x).dispose();
    expect(tf.memory().numTensors).toBe(live.numTensors);
    expect(tf.memory().numBytes).toBe(live.numBytes);
    const offloadPeak = (await tf.profile(() => offloaded.forward(x).dispose())).peakBytes;

    const block = Math.max(...fp.blockBytes);
    const others = 4 * P - fp.keptBytes - block; // every block's weights but what the running one holds
    // resident: all weights + activations; offloaded: kept part + the running block's share + the same activations
    expect(residentPeak - offloadPeak).toBeGreaterThanOrEqual(0.9 * others);
    expect(residentPeak - offloadPeak).toBeLessThanOrEqual(1.1 * others);
    // above what is live: the resident forward's activations; offloaded, those plus the running block
    const activations = residentPeak - residentLive;
    expect(offloadPeak - live.numBytes).toBeGreaterThanOrEqual(block);
    expect(offloadPeak - live.numBytes).toBeLessThanOrEqual(activations + 1.05 * block);
    tf.dispose([x.hiddenStates, x.encoderHiddenStates, warm, first]);
    offloaded.dispose();
  });
});

describe('choosing the mode at load', () => {
  const dir = () => fixturePath('mask2dit_multiscene');
  const weights = fixturePath('mask2dit_multiscene', 'weights.safetensors');
  const mem = (backendBytes: number): MemoryAvailable => ({
    backend: 'wasm',
    backendBytes,
    perTensorBytes: backendBytes,
    jsBytes: 2 ** 34,
    backendInJs: false,
  });

  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it("'auto' keeps a model resident when it fits with room for activations, else offloads and says why", async () => {
    const notes: OffloadDecision[] = [];
    const onDecision = (d: OffloadDecision) => notes.push(d);
    const m1 = await Mask2DiTTransformer.fromPretrained(dir(), { weights, memory: mem(2 ** 30), onDecision });
    expect(m1.offload).toBe('none');
    const fp = notes[0]!.footprint;
    expect(notes[0]!.note).toMatch(/resident/);
    // fits resident, but not with a quarter left for activations; the kept part + one block fit
    const m2 = await Mask2DiTTransformer.fromPretrained(dir(), {
      weights,
      memory: mem(memoryNeeded('blocks', fp, mem(0)).backend),
      onDecision,
    });
    expect(m2.offload).toBe('blocks');
    expect(notes[1]!.note).toMatch(/offloading 2 blocks/);
    expect(notes[1]!.note).toContain(dir());
    m1.dispose();
    m2.dispose();
  });

  it('refuses what cannot fit, before reading, naming the folder', async () => {
    const live = tf.memory().numTensors;
    const tooSmall = await Mask2DiTTransformer.fromPretrained(dir(), { weights, memory: mem(1000) }).catch(
      (e: unknown) => e,
    );
    expect(tooSmall).toBeInstanceOf(MemoryBudgetError);
    expect((tooSmall as Error).message).toContain(dir());
    expect((tooSmall as Error).message).toMatch(/too large even for offload/);
    let fp: OffloadDecision['footprint'] | undefined;
    (
      await Mask2DiTTransformer.fromPretrained(dir(), {
        weights,
        offload: 'none',
        memory: mem(2 ** 30),
        onDecision: (d) => (fp = d.footprint),
      })
    ).dispose();
    const [resident, offload] = [
      memoryNeeded('none', fp!, mem(0)).backend,
      memoryNeeded('blocks', fp!, mem(0)).backend,
    ];
    expect(resident).toBe(fp!.residentBytes + fp!.packedBytes); // wasm: XNNPACK's packed copies of the matrices count
    expect(offload).toBeLessThan(resident);
    const noOffload = await Mask2DiTTransformer.fromPretrained(dir(), {
      weights,
      offload: 'none',
      memory: mem(resident - 1),
    }).catch((e: unknown) => e);
    expect(noOffload).toBeInstanceOf(MemoryBudgetError);
    expect((noOffload as Error).message).toMatch(/--offload blocks/); // offload would fit: said so
    const blocks = await Mask2DiTTransformer.fromPretrained(dir(), {
      weights,
      offload: 'blocks',
      memory: mem(offload),
    });
    expect(blocks.offload).toBe('blocks');
    blocks.dispose();
    expect(tf.memory().numTensors).toBe(live);
  });

  it('the wasm budget (MASK2DIT_WASM_BUDGET_MIB) drives auto', async () => {
    const old = process.env['MASK2DIT_WASM_BUDGET_MIB'];
    try {
      let fp: OffloadDecision['footprint'] | undefined;
      (
        await Mask2DiTTransformer.fromPretrained(dir(), {
          weights,
          offload: 'none',
          memory: mem(2 ** 30),
          onDecision: (d) => (fp = d.footprint),
        })
      ).dispose();
      const offload = memoryNeeded('blocks', fp!, mem(0)).backend;
      const used = tf.memory().numBytes;
      process.env['MASK2DIT_WASM_BUDGET_MIB'] = String((used + offload) / 2 ** 20); // the kept part + a block fit, the whole model does not
      const m = await Mask2DiTTransformer.fromPretrained(dir(), { weights });
      expect(m.offload).toBe('blocks');
      m.dispose();
    } finally {
      if (old === undefined) delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
      else process.env['MASK2DIT_WASM_BUDGET_MIB'] = old;
    }
  });
});

describe('offloaded models elsewhere', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('reads a sharded bf16 checkpoint per block; saves as the resident model does; refuses training', async () => {
    const world = path.join(DEFAULT_MODEL_DIR, 'transformer');
    const resident = await Mask2DiTTransformer.fromPretrained(world, { offload: 'none' });
    // the world transformer as two bf16 shards + index
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(world, 'config.json'), path.join(dir, 'config.json'));
    const shards: Record<string, TensorToWrite>[] = [{}, {}];
    const map: Record<string, string> = {};
    for (const [i, [name, v]] of [...resident.namedWeights()].entries()) {
      shards[i % 2]![name] = {
        dtype: 'BF16',
        shape: [...v.shape] as number[],
        data: (await v.read().data()) as Float32Array,
      };
      map[name] = `model-0000${(i % 2) + 1}-of-00002.safetensors`;
    }
    for (const [i, s] of shards.entries())
      await writeSafetensors(path.join(dir, `model-0000${i + 1}-of-00002.safetensors`), s);
    fs.writeFileSync(
      path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: map }),
    );
    resident.dispose();

    const a = await Mask2DiTTransformer.fromPretrained(dir, { offload: 'none' });
    const b = await Mask2DiTTransformer.fromPretrained(dir, { offload: 'blocks' });
    const c = a.config;
    const x = tf.randomNormal([1, 2, c.in_channels, 8, 8], 0, 1, 'float32', 3);
    const e = tf.randomNormal([1, c.max_text_seq_length, c.text_embed_dim], 0, 1, 'float32', 4);
    const [ya, yb] = [
      a.forward({ hiddenStates: x, encoderHiddenStates: e, timestep: [321] }),
      b.forward({ hiddenStates: x, encoderHiddenStates: e, timestep: [321] }),
    ];
    expect(maxAbs(await yb.data(), await ya.data())).toBe(0);

    expect(() => b.setTrainable(true)).toThrow(/offloaded/);
    const out = path.join(tmp, 'saved');
    await b.save(out);
    const back = await Mask2DiTTransformer.fromPretrained(out, { offload: 'none' });
    const [wa, wb] = [a.variables(), back.variables()];
    expect([...wb.keys()].sort()).toEqual([...wa.keys()].sort());
    for (const [n, v] of wa) expect(maxAbs(await wb.get(n)!.data(), await v.data())).toBe(0);
    tf.dispose([x, e, ya, yb]);
    for (const m of [a, b, back]) m.dispose();
  });

  it('loadModelFolder: offloaded transformer and T5 give the resident numbers and notes say so', async () => {
    const r = await loadModelFolder(DEFAULT_MODEL_DIR, { offload: 'none' });
    const o = await loadModelFolder(DEFAULT_MODEL_DIR, { offload: 'blocks' });
    expect(r.offload).toEqual({ transformer: 'none', textEncoder: 'none', notes: [] });
    expect(o.offload.transformer).toBe('blocks');
    expect(o.offload.textEncoder).toBe('blocks');
    expect(o.offload.notes).toHaveLength(2);
    expect(o.notes).toEqual(expect.arrayContaining(o.offload.notes));
    const captions = ['a red ball rolls', 'a blue cube jumps'];
    const [ea, eb] = [
      encodePrompts(r.tokenizer!, r.textEncoder!, captions),
      encodePrompts(o.tokenizer!, o.textEncoder!, captions),
    ];
    expect(maxAbs(await eb.data(), await ea.data())).toBe(0);
    const c = r.transformer.config;
    const x = tf.randomNormal([1, 4, c.in_channels, 8, 8], 0, 1, 'float32', 5);
    const [ya, yb] = [
      r.transformer.forward({ hiddenStates: x, encoderHiddenStates: ea, timestep: [700] }),
      o.transformer.forward({ hiddenStates: x, encoderHiddenStates: eb, timestep: [700] }),
    ];
    expect(maxAbs(await yb.data(), await ya.data())).toBe(0);
    tf.dispose([ea, eb, x, ya, yb]);
    r.dispose();
    o.dispose();
  });
});

describe('widening', () => {
  it('bf16/f16/f32/f64 → f32, transposed in one pass, equals decode-then-transpose', () => {
    const [rows, cols] = [70, 133]; // not multiples of the tile
    const vals = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i) * 3);
    const transposed = (a: Float32Array) =>
      Float32Array.from({ length: a.length }, (_, k) => a[(k % rows) * cols + Math.floor(k / rows)]!);
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
    const cases: [Parameters<typeof widenToF32>[0], Uint8Array][] = [
      ['BF16', bytes(f32ToBf16(vals))],
      ['F16', bytes(f32ToF16(vals))],
      ['F32', bytes(vals)],
      ['F64', bytes(Float64Array.from(vals))],
    ];
    for (const [dtype, raw] of cases) {
      const plain = widenToF32(dtype, raw, [rows, cols], false);
      if (dtype === 'F32' || dtype === 'F64') expect(plain).toEqual(vals);
      expect(widenToF32(dtype, raw, [rows, cols], true)).toEqual(transposed(plain));
    }
  });
});

describe('--offload on the CLI', () => {
  it('forward transformer --offload blocks reproduces the fixture; a bad value is a usage error', () => {
    const caseName = 'mask2dit_multiscene';
    const out = path.join(tmp, 'cli-out.safetensors');
    const args = [
      'forward',
      'transformer',
      '--model',
      fixturePath(caseName),
      '--weights',
      fixturePath(caseName, 'weights.safetensors'),
      '--inputs',
      fixturePath(caseName, 'io.safetensors'),
      '--out',
      out,
    ];
    const r = runCli([...args, '--offload', 'blocks', '--compare', fixturePath(caseName, 'io.safetensors'), '--json'], {
      timeoutMs: 120_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { offload: string; compare: { name: string; maxAbs: number }[] };
    expect(report.offload).toBe('blocks');
    expect(report.compare.find((c) => c.name === 'sample')!.maxAbs).toBeLessThan(1e-4);
    const bad = runCli([...args, '--offload', 'sometimes'], { timeoutMs: 120_000 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--offload: expected one of auto, none, blocks/);
  });
});
