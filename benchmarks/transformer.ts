/**
 * Transformer benchmark: forward time and peak tensor memory.
 *
 *   node --expose-gc --import tsx benchmarks/transformer.ts [--backends wasm,cpu] [--only tiny,small,block5b,attention]
 *                                                          [--scenes 1,3] [--reps 3] [--cpu-big]
 *
 * Rows:
 *  tiny      the fixture checkpoints (test/fixtures) on their own inputs;
 *  small     8 layers, 8×64 heads (D 512), 3 scenes × (64 text + 2,048 video tokens), RoPE;
 *  block5b   one DiT block at CogVideoX-5B width (48×64 heads, D 3072), per scene 226 text tokens and
 *            13×15×22 = 4,290 video tokens (13 latent frames at 240×360 px), for 1 and 3 scenes;
 *  attention the masked attention op alone at the block5b token counts for 1–4 scenes (2 heads: the op
 *            runs one head at a time, so its working set does not depend on the head count): measured
 *            peak bytes, the analytic largest score block, and what one dense [L, L] head would take.
 * FLOPs are counted analytically: a block does 24·L·D² (q, k, v, out and the 4·D MLP: 2 FLOPs a
 * multiply-add) plus 4·D·P for attention, where P is the number of (query, key) pairs the dual mask
 * allows. The full model adds patch embedding and output projection (counted) and the time MLP (not).
 * The big rows are slow on `cpu` (tfjs cpu does ~1–5 GFLOP/s): they run there only with --cpu-big.
 */
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../src/backend/index.js';
import { DiTBlock } from '../src/layers/ditBlock.js';
import { denseScoreBytes, maskedAttention, peakScoreBytes } from '../src/layers/maskedAttention.js';
import { rope3dTables } from '../src/layers/rope3d.js';
import { WeightSource } from '../src/layers/weightSource.js';
import { uniformLayout, layoutTotals } from '../src/scene/layout.js';
import { Mask2DiTTransformer } from '../src/model/transformer.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { blockFlops, FIVE_B_BLOCK as FIVE_B, maskPairs, smallTransformerConfig } from '../src/bench/suite.js';
import { arg, flag, machine, mib, peakTensorBytes, report, timeIt, type Row } from './lib.js';

const list = (name: string, dflt: string) => (arg(name) ?? dflt).split(',').filter((s) => s !== '');
const backends = list('--backends', 'wasm,cpu');
const only = new Set(list('--only', 'tiny,small,block5b,attention'));
const sceneCounts = list('--scenes', '1,3').map(Number);
const reps = Number(arg('--reps') ?? 3);
const cpuBig = flag('--cpu-big');

async function tensorsFromFixture(caseName: string): Promise<Map<string, tf.Tensor | number[]>> {
  const src = await openSafetensors(`test/fixtures/${caseName}/io.safetensors`);
  const out = new Map<string, tf.Tensor | number[]>();
  for (const n of ['hidden_states', 'encoder_hidden_states', 'timestep', 'clip_idx', 'timestep_conditioning']) {
    if (!src.has(n)) continue;
    const d = await src.read(n);
    out.set(n, d instanceof BigInt64Array ? Array.from(d, Number) : tf.tensor(d as Float32Array, src.info(n).shape));
  }
  await src.close();
  return out;
}

async function tinyRows(backend: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const c of [
    'transformer_2b_single',
    'transformer_5b_rope_single',
    'mask2dit_multiscene',
    'mask2dit_conditional',
  ]) {
    const model = await Mask2DiTTransformer.fromPretrained(`test/fixtures/${c}`, {
      weights: `test/fixtures/${c}/weights.safetensors`,
    });
    const io = await tensorsFromFixture(c);
    const clip = io.get('clip_idx') as number[] | undefined;
    const run = async () => {
      const y = model.forward({
        hiddenStates: io.get('hidden_states') as tf.Tensor,
        encoderHiddenStates: io.get('encoder_hidden_states') as tf.Tensor,
        timestep: io.get('timestep') as number[],
        ...(clip !== undefined ? { clipIdx: clip[0]!, timestepCond: 0 } : {}),
      });
      await y.data();
      y.dispose();
    };
    const t = await timeIt(run, reps * 3);
    const peak = await peakTensorBytes(run);
    rows.push({
      bench: 'transformer',
      row: `tiny:${c}`,
      backend,
      tokens: model
        .plan({
          hiddenStates: io.get('hidden_states') as tf.Tensor,
          encoderHiddenStates: io.get('encoder_hidden_states') as tf.Tensor,
          timestep: io.get('timestep') as number[],
        })
        .layout.video.reduce((a, b) => a + b),
      ms: Number(t.medianMs.toFixed(2)),
      gflops: null,
      peakMiB: Number((peak / 2 ** 20).toFixed(2)),
      params: model.countParams(),
    });
    tf.dispose([...io.values()].filter((v): v is tf.Tensor => v instanceof tf.Tensor));
    model.dispose();
  }
  return rows;
}

async function smallRow(backend: string): Promise<Row> {
  const config = smallTransformerConfig();
  const model = new Mask2DiTTransformer(config, WeightSource.random(1));
  const S = 3;
  const x = tf.randomNormal([1, 4 * S, 16, 32, 64], 0, 1, 'float32', 2); // 4 latent frames × 16×32 patches = 2,048 tokens a scene
  const e = tf.randomNormal([1, 64 * S, 4096], 0, 1, 'float32', 3);
  const layout = uniformLayout(S, 64, 2048);
  const D = config.innerDim;
  const flops = 8 * blockFlops(layout, D) + 2 * 3 * 2048 * (16 * 4) * D + 2 * 64 * S * 4096 * D + 2 * 3 * 2048 * D * 64;
  const rope = model.ropeFor(4 * S, 32, 64);
  const run = async () => {
    const y = model.forward({ hiddenStates: x, encoderHiddenStates: e, timestep: [500], rope });
    await y.data();
    y.dispose();
  };
  const t = await timeIt(run, Math.max(1, Math.floor(reps / 2)), 1);
  const peak = await peakTensorBytes(run);
  tf.dispose([x, e, rope.cos, rope.sin]);
  const row = {
    bench: 'transformer',
    row: 'small:8L-8x64-3x2048',
    backend,
    tokens: 3 * 2048 + 3 * 64,
    ms: Number(t.medianMs.toFixed(1)),
    gflops: Number((flops / t.medianMs / 1e6).toFixed(2)),
    peakMiB: Number((peak / 2 ** 20).toFixed(1)),
    params: model.countParams(),
  };
  model.dispose();
  return row;
}

const TEXT_5B = 226;
const VIDEO_5B = 13 * 15 * 22; // 4,290

async function block5bRows(backend: string): Promise<Row[]> {
  const block = new DiTBlock(FIVE_B, WeightSource.random(4));
  const rows: Row[] = [];
  for (const S of sceneCounts) {
    const layout = uniformLayout(S, TEXT_5B, VIDEO_5B);
    const h = tf.randomNormal([1, S * VIDEO_5B, FIVE_B.dim], 0, 1, 'float32', 5);
    const e = tf.randomNormal([1, S * TEXT_5B, FIVE_B.dim], 0, 1, 'float32', 6);
    const temb = tf.randomNormal([1, 512], 0, 1, 'float32', 7);
    const rope = rope3dTables({ headDim: 64, frames: 13 * S, gridH: 15, gridW: 22, baseH: 30, baseW: 45 });
    let peak = 0;
    const run = async () => {
      const o = block.forward({ hidden: h, encoderHidden: e, temb, layout, rope });
      await o.hidden.data();
      tf.dispose([o.hidden, o.encoderHidden]);
    };
    const t0 = performance.now();
    peak = await peakTensorBytes(run); // one run, also the timing (a block at this size takes tens of seconds)
    const ms = performance.now() - t0;
    rows.push({
      bench: 'transformer',
      row: `block5b:${S}scene`,
      backend,
      tokens: layoutTotals(layout).total,
      ms: Number(ms.toFixed(0)),
      gflops: Number((blockFlops(layout, FIVE_B.dim) / ms / 1e6).toFixed(2)),
      peakMiB: Number((peak / 2 ** 20).toFixed(0)),
      params: block.countParams(),
    });
    tf.dispose([h, e, temb, rope.cos, rope.sin]);
  }
  block.dispose();
  return rows;
}

async function attentionRows(backend: string): Promise<Row[]> {
  const rows: Row[] = [];
  const H = 2;
  for (const S of [1, 2, 3, 4]) {
    const layout = uniformLayout(S, TEXT_5B, VIDEO_5B);
    const L = layoutTotals(layout).total;
    const [q, k, v] = [8, 9, 10].map((s) => tf.randomNormal([1, H, L, 64], 0, 1, 'float32', s));
    const run = async () => {
      const o = maskedAttention(q!, k!, v!, layout);
      await o.data();
      o.dispose();
    };
    const t0 = performance.now();
    const peak = await peakTensorBytes(run);
    const ms = performance.now() - t0;
    rows.push({
      bench: 'maskedAttention',
      row: `attention:${S}scene-${H}heads`,
      backend,
      tokens: L,
      ms: Number(ms.toFixed(0)),
      gflops: Number(((4 * 64 * H * maskPairs(layout)) / ms / 1e6).toFixed(2)),
      peakMiB: Number((peak / 2 ** 20).toFixed(1)),
      scoreBlockMiB: Number((peakScoreBytes(layout) / 2 ** 20).toFixed(1)),
      denseHeadMiB: Number((denseScoreBytes(layout) / 2 ** 20).toFixed(1)),
      inputsMiB: Number(((3 * H * L * 64 * 4) / 2 ** 20).toFixed(1)),
    });
    tf.dispose([q!, k!, v!]);
  }
  return rows;
}

async function main(): Promise<void> {
  process.stdout.write(`transformer benchmark — ${machine()}\n`);
  const rows: Row[] = [];
  for (const b of backends) {
    const info = await selectBackend(b);
    process.stdout.write(`backend ${info.name}: ${info.device}\n`);
    const big = b !== 'cpu' || cpuBig;
    const add = (rs: Row[]) => {
      for (const r of rs) process.stderr.write(`done: ${JSON.stringify(r)}\n`); // partial results survive an interrupted run
      rows.push(...rs);
    };
    if (only.has('tiny')) add(await tinyRows(b));
    if (only.has('attention')) add(await attentionRows(b));
    if (only.has('small') && big) add([await smallRow(b)]);
    if (only.has('block5b') && big) add(await block5bRows(b));
  }
  shutdownBackends();
  const stamp = { machine: machine(), date: new Date().toISOString().slice(0, 10) };
  report(
    `transformer forward (${stamp.machine}; ms = median wall time; peak = tf.profile peak tensor bytes)`,
    rows.map((r) => ({ ...r, ...stamp })),
    ['row', 'backend', 'tokens', 'ms', 'gflops', 'peakMiB', 'scoreBlockMiB', 'denseHeadMiB', 'inputsMiB', 'params'],
  );
  const att = rows.filter((r) => r['bench'] === 'maskedAttention');
  for (const b of backends) {
    const a = att.filter((r) => r['backend'] === b);
    if (a.length < 2) continue;
    const first = a[0]!;
    const last = a[a.length - 1]!;
    const scenes = a.length;
    const opGrowth =
      (Number(last['peakMiB']) - Number(last['inputsMiB'])) / (Number(first['peakMiB']) - Number(first['inputsMiB']));
    process.stdout.write(
      `attention op on ${b}: ${scenes}× the scenes → working set (peak − inputs) ×${opGrowth.toFixed(2)}, largest score block ×${(Number(last['scoreBlockMiB']) / Number(first['scoreBlockMiB'])).toFixed(2)}, a dense [L, L] head ×${(Number(last['denseHeadMiB']) / Number(first['denseHeadMiB'])).toFixed(2)} (${mib(Number(last['denseHeadMiB']) * 2 ** 20)} per head)\n`,
    );
  }
}

await main();
