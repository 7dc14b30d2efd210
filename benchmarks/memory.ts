/**
 * Memory of a transformer forward on wasm: the estimate against what the heap really needs.
 *
 *   node --expose-gc --import tsx benchmarks/memory.ts [--only a,b] [--big] [--threads n]
 *
 * Each case runs in a fresh process (one child per case, `--case <name>`): a model of random weights
 * (the case's width and layers, CogVideoX-5B's text width 4096 and 16 latent channels), a warm-up
 * forward at a tiny size (weight layouts and XNNPACK's packed weights are made there and stay), then
 * one measured forward at the case's size. Measured, with the malloc guard of src/backend/memoryBudget.ts:
 *  - tensor peak: the highest sum of live tensor bytes on the heap during the forward, above the start
 *    (what `tf.profile`'s peakBytes reports, without profiling);
 *  - heap need: before the forward every free block of the heap is occupied (`occupyWasmHeapHoles`),
 *    so everything it allocates comes from the top; the highest end address it reaches, less where the
 *    top was, is what it needs in one free block, fragmentation included;
 *  - est: `transformerPeakEstimate` (tensor peak) and `wasmHeapNeed` of it (heap need).
 * The budget guard is lifted in the children (MASK2DIT_WASM_BUDGET_MIB=4095) so that every case runs.
 * Rows with `--big` are the full 480×720 sizes (minutes each on 2 cores).
 * Prints a table, then one JSON line per case.
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends, type BackendInfo } from '../src/backend/index.js';
import {
  installWasmHeapGuard,
  occupyWasmHeapHoles,
  resetWasmHighWater,
  wasmHeapNeed,
  wasmHeapStats,
  type PeakEstimate,
} from '../src/backend/memoryBudget.js';
import { t5PeakEstimate, transformerPeakEstimate } from '../src/model/peakEstimate.js';
import { parseTextEncoderConfig } from '../src/config/textEncoderConfig.js';
import { parseTransformerConfig } from '../src/config/transformerConfig.js';
import { T5Encoder } from '../src/text/textEncoder.js';
import { WeightSource } from '../src/layers/weightSource.js';
import { Mask2DiTTransformer } from '../src/model/transformer.js';
import { arg, flag, machine, report, type Row } from './lib.js';

/** One measured forward: model width and depth, latents `[batch, frames, 16, h, w]`, text 226 a scene. */
export interface MemoryCase {
  dim: number;
  layers: number;
  frames: number;
  h: number;
  w: number;
  scenes: number;
  /** 2: classifier-free guidance as one batch. */
  batch: number;
  /** Target scene of the segment condition (`clip_idx`). */
  clip?: number;
  big?: boolean;
}

/** One measured T5 encoder forward: ids `[batch, 226]` (batch = scenes × 2 with CFG). */
export interface T5Case {
  t5: true;
  dModel: number;
  heads: number;
  dFF: number;
  layers: number;
  batch: number;
  padding?: boolean;
}

const TEXT = 226;
/** Cases by name: width 512 (8 heads) for the sweep, 3072 (CogVideoX-5B, 48 heads) for the real width. */
export const CASES: Record<string, MemoryCase | T5Case> = {
  'd512-1scene-13f-240x360': { dim: 512, layers: 2, frames: 13, h: 30, w: 44, scenes: 1, batch: 1 },
  'd512-3scene-39f-240x360': { dim: 512, layers: 2, frames: 39, h: 30, w: 44, scenes: 3, batch: 1 },
  'd512-3scene-39f-240x360-clip1': { dim: 512, layers: 2, frames: 39, h: 30, w: 44, scenes: 3, batch: 1, clip: 1 },
  'd512-1scene-13f-240x360-cfg': { dim: 512, layers: 2, frames: 13, h: 30, w: 44, scenes: 1, batch: 2 },
  'd512-3scene-3f-480x720-cfg-clip0': { dim: 512, layers: 2, frames: 3, h: 60, w: 90, scenes: 3, batch: 2, clip: 0 },
  'd512-1scene-1f-480x720': { dim: 512, layers: 2, frames: 1, h: 60, w: 90, scenes: 1, batch: 1 },
  'd3072-1scene-1f-480x720': { dim: 3072, layers: 1, frames: 1, h: 60, w: 90, scenes: 1, batch: 1 },
  'd3072-3scene-3f-480x720': { dim: 3072, layers: 1, frames: 3, h: 60, w: 90, scenes: 3, batch: 1 },
  'd3072-1scene-13f-240x360': { dim: 3072, layers: 1, frames: 13, h: 30, w: 44, scenes: 1, batch: 1 },
  'd3072-1scene-13f-480x720': { dim: 3072, layers: 1, frames: 13, h: 60, w: 90, scenes: 1, batch: 1, big: true },
  // T5-XXL's ratios (heads·L / d_model, d_ff / d_model) at width 512, 4 of its 24 layers
  't5-d512-b2': { t5: true, dModel: 512, heads: 8, dFF: 1280, layers: 4, batch: 2 },
  't5-d512-b6': { t5: true, dModel: 512, heads: 8, dFF: 1280, layers: 4, batch: 6 },
  't5-d512-b6-padding': { t5: true, dModel: 512, heads: 8, dFF: 1280, layers: 4, batch: 6, padding: true },
  't5-d1024-b2-8layers': { t5: true, dModel: 1024, heads: 16, dFF: 2560, layers: 8, batch: 2 },
};

const MiB = (b: number) => Number((b / 2 ** 20).toFixed(1));

function model(c: MemoryCase): Mask2DiTTransformer {
  const { config } = parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: c.dim / 64,
    attention_head_dim: 64,
    num_layers: c.layers,
    in_channels: 16,
    out_channels: 16,
    text_embed_dim: 4096,
    max_text_seq_length: TEXT,
    time_embed_dim: 512,
    sample_height: 60,
    sample_width: 90,
    use_rotary_positional_embeddings: true,
  });
  return new Mask2DiTTransformer(config, WeightSource.random(1));
}

function inputs(c: MemoryCase, frames: number, h: number, w: number) {
  return {
    hiddenStates: tf.randomNormal([c.batch, frames, 16, h, w], 0, 1, 'float32', 2),
    encoderHiddenStates: tf.randomNormal([c.batch, TEXT * c.scenes, 4096], 0, 1, 'float32', 3),
    timestep: Array<number>(c.batch).fill(500),
    ...(c.clip !== undefined ? { clipIdx: c.clip, timestepCond: 0 } : {}),
  };
}

/** The child: one case in this process, one JSON line on stdout. */
async function runCase(name: string): Promise<void> {
  const c = CASES[name];
  if (c === undefined) throw new Error(`unknown case ${name}; cases: ${Object.keys(CASES).join(', ')}`);
  const threads = arg('--threads');
  const info: BackendInfo = await selectBackend('wasm', threads !== undefined ? { threads: Number(threads) } : {});
  installWasmHeapGuard();
  const row = 't5' in c ? t5Case(c) : transformerCase(c);
  shutdownBackends();
  process.stdout.write(
    JSON.stringify({ bench: 'memory', row: name, backend: 'wasm', threads: info.threads ?? null, ...row }) + '\n',
  );
}

/**
 * Measure `run`: tensor peak above the start and, on a heap without holes (`fill`), contiguous heap
 * need. Without `fill` (the big rows: the holes left by building 0.5 GiB of random weights are
 * needed there) the need is not measured.
 */
function measure(run: () => void, est: PeakEstimate, act: number, fill = true): Row {
  const hole = fill ? occupyWasmHeapHoles() : undefined;
  resetWasmHighWater();
  const before = wasmHeapStats()!;
  const t0 = performance.now();
  run();
  const ms = performance.now() - t0;
  const after = wasmHeapStats()!;
  hole?.release();
  const peak = after.liveHighWaterBytes - before.liveBytes;
  const need = hole !== undefined ? after.highWaterBytes - hole.top : NaN;
  return {
    actMiB: MiB(act),
    peakMiB: MiB(peak),
    peakActs: Number((peak / act).toFixed(2)),
    estMiB: MiB(est.totalBytes),
    estOverPeak: Number((est.totalBytes / peak).toFixed(3)),
    heapNeedMiB: fill ? MiB(need) : null,
    needOverPeak: fill ? Number((need / peak).toFixed(3)) : null,
    estHeapMiB: MiB(wasmHeapNeed(est)),
    estHeapOverNeed: fill ? Number((wasmHeapNeed(est) / need).toFixed(3)) : null,
    heapBeforeMiB: MiB(before.heapBytes),
    heapMiB: MiB(after.heapBytes),
    liveBeforeMiB: MiB(before.liveBytes),
    ms: Math.round(ms),
  };
}

/** A T5 encoder of random (Hugging Face-initialised) weights: warm-up at batch 1, then the case. */
function t5Case(c: T5Case): Row {
  const { config } = parseTextEncoderConfig({
    d_model: c.dModel,
    num_heads: c.heads,
    d_kv: 64,
    d_ff: c.dFF,
    num_layers: c.layers,
    feed_forward_proj: 'gated-gelu',
    vocab_size: 32128,
  });
  const enc = T5Encoder.init(config, 1);
  const ids = (B: number) =>
    tf.tensor2d(
      Int32Array.from({ length: B * TEXT }, (_, i) => (i * 7919) % 32000),
      [B, TEXT],
      'int32',
    );
  const warm = ids(1);
  tf.dispose(enc.forward({ ids: warm }));
  warm.dispose();
  const x = ids(c.batch);
  const est = t5PeakEstimate({
    B: c.batch,
    L: TEXT,
    dModel: c.dModel,
    heads: c.heads,
    dKv: 64,
    dFF: c.dFF,
    layers: c.layers,
    gated: true,
    paddingMask: c.padding === true,
  });
  const row = measure(
    () => tf.dispose(enc.forward({ ids: x, attentionMask: c.padding === true ? 'padding' : 'none' })),
    est,
    4 * c.batch * TEXT * c.dModel,
  );
  enc.dispose();
  return { dim: c.dModel, layers: c.layers, batch: c.batch, tokens: TEXT, ...row };
}

function transformerCase(c: MemoryCase): Row {
  const m = model(c);
  const tiny = inputs(c, c.scenes, 4, 4);
  tf.dispose(m.forward(tiny)); // weight layouts, packed weights
  tf.dispose([tiny.hiddenStates, tiny.encoderHiddenStates]);
  const x = inputs(c, c.frames, c.h, c.w);
  const plan = m.plan(x);
  const cfg = m.config;
  const est = transformerPeakEstimate({
    B: c.batch,
    Lt: TEXT * c.scenes,
    Lv: plan.layout.video.reduce((a, b) => a + b, 0),
    dim: cfg.innerDim,
    heads: cfg.num_attention_heads,
    ffInner: 4 * cfg.innerDim,
    chunkSize: 1024,
    layout: plan.layout,
    heldBlockOutputs: cfg.num_layers,
    segment: c.clip !== undefined,
    headDim: cfg.attention_head_dim,
  });
  const L = TEXT * c.scenes + plan.layout.video.reduce((a, b) => a + b, 0);
  const row = measure(() => tf.dispose(m.forward(x)), est, 4 * c.batch * L * cfg.innerDim, c.big !== true);
  m.dispose();
  return {
    dim: cfg.innerDim,
    layers: c.layers,
    scenes: c.scenes,
    batch: c.batch,
    clip: c.clip ?? null,
    tokens: L,
    ...row,
  };
}

async function main(): Promise<void> {
  const only = arg('--only')?.split(',');
  const names = Object.keys(CASES).filter((n) =>
    only !== undefined ? only.includes(n) : !(CASES[n] as MemoryCase).big || flag('--big'),
  );
  const stamp = { machine: machine(), date: new Date().toISOString().slice(0, 10) };
  process.stdout.write(`memory benchmark — ${stamp.machine}\n`);
  const rows: Row[] = [];
  for (const n of names) {
    const extra = arg('--threads') !== undefined ? ['--threads', arg('--threads')!] : [];
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, '--case', n, ...extra], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
      env: { ...process.env, MASK2DIT_WASM_BUDGET_MIB: '4095' },
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (r.status !== 0 || line === undefined) {
      process.stderr.write(`case ${n} failed (status ${r.status}): ${r.stderr.slice(-2000)}\n`);
      continue;
    }
    const row = { ...(JSON.parse(line) as Row), ...stamp };
    process.stderr.write(`done: ${JSON.stringify(row)}\n`);
    rows.push(row);
  }
  report(
    `transformer forward memory on wasm (${stamp.machine}; peak = live tensor bytes, heap need = contiguous heap bytes)`,
    rows,
    [
      'row',
      'tokens',
      'actMiB',
      'peakMiB',
      'peakActs',
      'estMiB',
      'estOverPeak',
      'heapNeedMiB',
      'needOverPeak',
      'estHeapMiB',
      'estHeapOverNeed',
      'ms',
    ],
  );
}

const one = arg('--case');
await (one !== undefined ? runCase(one) : main());
