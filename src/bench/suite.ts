/**
 * The benchmark suite behind `npm run bench` (benchmarks/run.ts) and `mask2dit bench`: one row per
 * component × config × backend with ms per call, tokens/s, achieved GFLOP/s (FLOPs counted
 * analytically; each row carries its formula), and peak tensor memory (tf.profile).
 *
 * Components (`--only` names):
 *  matmul     2-D matMul 1024³ and 2048³                                      FLOPs 2·M·N·K
 *  attention  the masked attention op, 3 scenes, chunked and (where it fits) dense
 *                                                                             4·d·H·P (P allowed pairs; dense: L² pairs)
 *  block      one DiT block at small width (D 512) and at CogVideoX-5B width (D 3072)
 *                                                                             24·L·D² + 4·D·P
 *  step       one denoising step (transformer forward, B = 1, no guidance) of the small config,
 *             and of the shipped model in weights/ when present                layers·block + embed/out
 *  vae        VAE decode of one scene: the tiny fixture config, and CogVideoX-5B widths at 64×96
 *                                                                             Σ conv2d 2·out·kh·kw·Cin + Σ matMul 2·out·K (profiled)
 *  demo       the README demo (examples/three-scenes.json) with the shipped model: steps × guided
 *             step + VAE decode per scene (text encoder excluded)
 *
 * `quick` shrinks every config (for CI smoke runs and slow backends); the row's `config` says what ran.
 */
import { DEFAULT_MODEL_DIR } from '../model/modelFolder.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, type BackendInfo } from '../backend/index.js';
import { parseTransformerConfig } from '../config/transformerConfig.js';
import { parseVaeConfig } from '../config/vaeConfig.js';
import { DiTBlock, type DiTBlockConfig } from '../layers/ditBlock.js';
import { denseMaskedAttention, maskedAttention } from '../layers/maskedAttention.js';
import { rope3dTables } from '../layers/rope3d.js';
import { WeightSource } from '../layers/weightSource.js';
import { maskBlocks } from '../scene/masks.js';
import { layoutTotals, rangeLength, uniformLayout, type SceneLayout } from '../scene/layout.js';
import { Mask2DiTTransformer } from '../model/transformer.js';
import { CogVideoXVAE } from '../model/vae.js';
import { memoryLimits } from '../backend/memoryBudget.js';
import { machine, profiledFlops, profiledRun, timeIt } from './measure.js';
import { referenceStepRows, sideBySide } from './reference.js';

export const COMPONENTS = ['matmul', 'attention', 'block', 'step', 'vae', 'demo'] as const;
export type Component = (typeof COMPONENTS)[number];

export interface BenchOptions {
  /** Backends to run on, in order (default `['wasm']`). */
  backends?: string[];
  /** Components to run (default all). */
  only?: Component[];
  /** Smaller configs and fewer repetitions. */
  quick?: boolean;
  /** Timed repetitions of the fast rows (default 3, quick 2). */
  reps?: number;
  /** The shipped model's folder (default `weights/mask2dit-world`). */
  weightsDir?: string;
  /**
   * Also time the PyTorch reference of the `step small` row (benchmarks/reference/pytorch_step.py) with
   * the wasm row's thread count, and print the ratios; needs a Python with torch (else skipped rows).
   */
  reference?: { python?: string; device?: string };
  /** Called with each row as soon as it is measured. */
  onRow?: (row: BenchRow) => void;
}

export interface BenchRow {
  component: Component;
  config: string;
  /** `wasm`, `webgpu`, …; PyTorch rows: `torch <version> <device> (<schedule>)` (src/bench/reference.ts). */
  backend: string;
  device: string;
  /** Median wall time of one call (ms), or null when skipped. */
  msPerCall: number | null;
  tokensPerS: number | null;
  gflops: number | null;
  /** FLOPs counted for one call and the formula (with its numbers). */
  flops: number | null;
  flopFormula: string;
  peakMiB: number | null;
  reps: number;
  skipped: string | null;
  machine: string;
  date: string;
}

interface Measured {
  config: string;
  ms: number | null;
  tokens: number | null;
  flops: number | null;
  formula: string;
  peakBytes: number | null;
  reps: number;
  skipped?: string;
}

// ---- analytic FLOPs -------------------------------------------------------------------------------

/** (query, key) pairs the dual mask allows. */
export const maskPairs = (layout: SceneLayout): number =>
  maskBlocks(layout).reduce((n, b) => n + rangeLength(b.query) * b.keys.reduce((k, r) => k + rangeLength(r), 0), 0);

/** One DiT block: q, k, v, out (4·2·L·D²) and the 4·D MLP (2·2·L·4D²) = 24·L·D², plus attention 4·D·P. */
export const blockFlops = (layout: SceneLayout, D: number): number =>
  24 * layoutTotals(layout).total * D * D + 4 * D * maskPairs(layout);

// ---- shared configs -------------------------------------------------------------------------------

/** The vae_decode fixture config (block_out_channels [8,8,16,16]). */
export const TINY_VAE = {
  block_out_channels: [8, 8, 16, 16],
  latent_channels: 4,
  layers_per_block: 1,
  norm_num_groups: 4,
  sample_height: 24,
  sample_width: 32,
  scaling_factor: 0.7,
};
/** CogVideoX-5B vae/config.json widths (the reference class defaults). */
export const COGVIDEOX_5B_VAE = {
  block_out_channels: [128, 256, 256, 512],
  latent_channels: 16,
  layers_per_block: 3,
  norm_num_groups: 32,
  scaling_factor: 0.7,
};

export const FIVE_B_BLOCK: DiTBlockConfig = {
  dim: 3072,
  heads: 48,
  headDim: 64,
  timeEmbedDim: 512,
  normEps: 1e-5,
  normElementwiseAffine: true,
  attentionBias: true,
  ffInnerDim: 4 * 3072,
};
export const SMALL_BLOCK: DiTBlockConfig = {
  dim: 512,
  heads: 8,
  headDim: 64,
  timeEmbedDim: 512,
  normEps: 1e-5,
  normElementwiseAffine: true,
  attentionBias: true,
  ffInnerDim: 4 * 512,
};

/**
 * The small benchmark config (also in benchmarks/reference/pytorch_step.py): 8 layers, 8×64 heads,
 * text_embed_dim 4096, 64 text tokens a scene, latents 4 frames × 32×64 per scene (2,048 tokens).
 */
export function smallTransformerConfig() {
  return parseTransformerConfig({
    _class_name: 'MultiPromptCogVideoXTransformer3DModel',
    num_attention_heads: 8,
    attention_head_dim: 64,
    num_layers: 8,
    in_channels: 16,
    out_channels: 16,
    text_embed_dim: 4096,
    max_text_seq_length: 64,
    time_embed_dim: 512,
    sample_height: 32,
    sample_width: 64,
    use_rotary_positional_embeddings: true,
  }).config;
}

/** Decode z streaming, reading back every chunk; returns output frames. */
export async function decodeAll(vae: CogVideoXVAE, z: tf.Tensor): Promise<number> {
  let frames = 0;
  for (const chunk of vae.decodeChunks(z)) {
    await chunk.data();
    frames += chunk.shape[2]!;
    chunk.dispose();
  }
  return frames;
}

/** Profile one call (warm-up, peak, kernels), then time `reps` more (none when reps = 0: the profiled time counts). */
async function measure(
  fn: () => Promise<void>,
  reps: number,
): Promise<{ ms: number; peakBytes: number; kernels: Parameters<typeof profiledFlops>[0] }> {
  const p = await profiledRun(fn);
  if (reps === 0) return { ms: p.ms, peakBytes: p.peakBytes, kernels: p.kernels };
  const t = await timeIt(fn, reps, 0);
  return { ms: t.medianMs, peakBytes: p.peakBytes, kernels: p.kernels };
}

const G = (f: number) => `${(f / 1e9).toFixed(2)} GFLOP`;

// ---- components -----------------------------------------------------------------------------------

async function matmulRows(quick: boolean, reps: number): Promise<Measured[]> {
  const out: Measured[] = [];
  for (const n of quick ? [1024] : [1024, 2048]) {
    const [a, b] = [tf.randomNormal([n, n], 0, 1, 'float32', 1), tf.randomNormal([n, n], 0, 1, 'float32', 2)];
    const m = await measure(async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    }, reps);
    tf.dispose([a, b]);
    const flops = 2 * n ** 3;
    out.push({
      config: `${n}³`,
      ms: m.ms,
      tokens: null,
      flops,
      formula: `2·M·N·K = 2·${n}³ = ${G(flops)}`,
      peakBytes: m.peakBytes,
      reps,
    });
  }
  return out;
}

async function attentionRows(quick: boolean, reps: number): Promise<Measured[]> {
  const H = 2;
  const d = 64;
  const [text, video] = quick ? [16, 256] : [64, 2048];
  const layout = uniformLayout(3, text, video);
  const L = layoutTotals(layout).total;
  const cfg = `3 scenes × (${text} text + ${video} video), ${H}×${d} heads, L ${L}`;
  const [q, k, v] = [8, 9, 10].map((s) => tf.randomNormal([1, H, L, d], 0, 1, 'float32', s)) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
  const out: Measured[] = [];
  try {
    const P = maskPairs(layout);
    const chunked = await measure(async () => {
      const o = maskedAttention(q, k, v, layout);
      await o.data();
      o.dispose();
    }, reps);
    out.push({
      config: `chunked: ${cfg}`,
      ms: chunked.ms,
      tokens: L,
      flops: 4 * d * H * P,
      formula: `4·d·H·P = 4·${d}·${H}·${P} allowed pairs = ${G(4 * d * H * P)}`,
      peakBytes: chunked.peakBytes,
      reps,
    });
    // dense holds ~5 [B, H, L, L] float32 tensors (scores, fill, masked, probs, + the mask)
    const denseBytes = 5 * 4 * H * L * L;
    const lim = memoryLimits();
    const oneTensor = 4 * H * L * L;
    const fits = denseBytes <= 1.5 * 2 ** 30 && (lim.perTensorBytes === undefined || oneTensor <= lim.perTensorBytes);
    const denseFlops = 4 * d * H * L * L;
    if (!fits) {
      out.push({
        config: `dense: ${cfg}`,
        ms: null,
        tokens: L,
        flops: denseFlops,
        formula: `4·d·H·L² = ${G(denseFlops)}`,
        peakBytes: null,
        reps: 0,
        skipped: `dense needs ~${(denseBytes / 2 ** 30).toFixed(1)} GiB (one [B,H,L,L] tensor ${(oneTensor / 2 ** 20).toFixed(0)} MiB)`,
      });
    } else {
      const dense = await measure(
        async () => {
          const o = denseMaskedAttention(q, k, v, layout, L);
          await o.out.data();
          tf.dispose([o.out, o.probs]);
        },
        Math.min(reps, 1),
      );
      out.push({
        config: `dense: ${cfg}`,
        ms: dense.ms,
        tokens: L,
        flops: denseFlops,
        formula: `4·d·H·L² = 4·${d}·${H}·${L}² = ${G(denseFlops)}`,
        peakBytes: dense.peakBytes,
        reps: Math.min(reps, 1),
      });
    }
  } finally {
    tf.dispose([q, k, v]);
  }
  return out;
}

async function blockRow(
  name: string,
  cfg: DiTBlockConfig,
  S: number,
  text: number,
  grid: [number, number, number],
  reps: number,
): Promise<Measured> {
  const [F, gh, gw] = grid;
  const video = F * gh * gw;
  const layout = uniformLayout(S, text, video);
  const block = new DiTBlock(cfg, WeightSource.random(4));
  const h = tf.randomNormal([1, S * video, cfg.dim], 0, 1, 'float32', 5);
  const e = tf.randomNormal([1, S * text, cfg.dim], 0, 1, 'float32', 6);
  const temb = tf.randomNormal([1, cfg.timeEmbedDim], 0, 1, 'float32', 7);
  const rope = rope3dTables({ headDim: cfg.headDim, frames: F * S, gridH: gh, gridW: gw, baseH: gh, baseW: gw });
  try {
    const m = await measure(async () => {
      const o = block.forward({ hidden: h, encoderHidden: e, temb, layout, rope });
      await o.hidden.data();
      tf.dispose([o.hidden, o.encoderHidden]);
    }, reps);
    const L = layoutTotals(layout).total;
    const f = blockFlops(layout, cfg.dim);
    return {
      config: `${name}: D ${cfg.dim} (${cfg.heads}×${cfg.headDim}), ${S} scene × (${text} + ${video}), L ${L}`,
      ms: m.ms,
      tokens: L,
      flops: f,
      formula: `24·L·D² + 4·D·P = 24·${L}·${cfg.dim}² + 4·${cfg.dim}·${maskPairs(layout)} = ${G(f)}`,
      peakBytes: m.peakBytes,
      reps,
    };
  } finally {
    tf.dispose([h, e, temb, rope.cos, rope.sin]);
    block.dispose();
  }
}

async function blockRows(quick: boolean, reps: number): Promise<Measured[]> {
  return [
    await blockRow('small', SMALL_BLOCK, quick ? 1 : 3, 64, quick ? [1, 16, 32] : [4, 16, 32], reps),
    // 5B: 13 latent frames at 240×360 px → 13×15×22 = 4,290 video tokens + 226 text tokens, one scene
    await blockRow('5B', FIVE_B_BLOCK, 1, quick ? 32 : 226, quick ? [1, 8, 16] : [13, 15, 22], quick ? reps : 0),
  ];
}

/** FLOPs of a full transformer forward: layers·block + patch embedding, text projection, output projection. */
function forwardFlops(
  model: Mask2DiTTransformer,
  layout: SceneLayout,
  textDim: number,
): { flops: number; formula: string } {
  const c = model.config;
  const D = c.innerDim;
  const { textTotal: Lt, videoTotal: Lv } = layoutTotals(layout);
  const p2 = c.patch_size * c.patch_size;
  const blocks = c.num_layers * blockFlops(layout, D);
  const io = 2 * Lv * c.in_channels * p2 * D + 2 * Lt * textDim * D + 2 * Lv * D * p2 * c.outChannels;
  return {
    flops: blocks + io,
    formula: `layers·(24·L·D² + 4·D·P) + 2·Lv·D·(Cin+Cout)·p² + 2·Lt·textDim·D = ${c.num_layers}·block + io = ${G(blocks + io)}`,
  };
}

async function forwardRow(
  name: string,
  model: Mask2DiTTransformer,
  S: number,
  F: number,
  H: number,
  W: number,
  B: number,
  reps: number,
): Promise<Measured> {
  const c = model.config;
  const x = tf.randomNormal([B, F * S, c.in_channels, H, W], 0, 1, 'float32', 2);
  const e = tf.randomNormal([B, c.max_text_seq_length * S, c.text_embed_dim], 0, 1, 'float32', 3);
  try {
    const inputs = { hiddenStates: x, encoderHiddenStates: e, timestep: Array<number>(B).fill(500) };
    const layout = model.plan(inputs).layout;
    const m = await measure(async () => {
      const y = model.forward(inputs);
      await y.data();
      y.dispose();
    }, reps);
    const { flops, formula } = forwardFlops(model, layout, c.text_embed_dim);
    const L = layoutTotals(layout).total;
    return {
      config: `${name}: ${c.num_layers}L D ${c.innerDim}, ${S} scene × (${c.max_text_seq_length} + ${layout.video[0]}), B ${B}, L ${L}`,
      ms: m.ms,
      tokens: B * L,
      flops: B * flops,
      formula: B > 1 ? `B·(${formula})` : formula,
      peakBytes: m.peakBytes,
      reps,
    };
  } finally {
    tf.dispose([x, e]);
  }
}

const NO_MODEL = 'skipped: no shipped model in weights/';

function shippedModelDir(weightsDir: string): string | undefined {
  return fs.existsSync(path.join(weightsDir, 'transformer', 'config.json')) ? weightsDir : undefined;
}

/** The README demo's latent geometry per scene under a model folder's VAE: frames, height, width. */
function demoLatents(dir: string, demo: DemoSpec): [number, number, number] {
  const file = path.join(dir, 'vae', 'config.json');
  const { config } = parseVaeConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file);
  return [
    (demo.frames - 1) / config.temporal_compression_ratio + 1,
    demo.height / config.spatialCompression,
    demo.width / config.spatialCompression,
  ];
}

interface DemoSpec {
  scenes: number;
  frames: number;
  width: number;
  height: number;
  steps: number;
  guidance: number;
}

function readDemo(): DemoSpec {
  const file = path.join('examples', 'three-scenes.json');
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    scenes: { frames: number }[];
    width: number;
    height: number;
    defaults: { steps: number; guidance: number };
  };
  return {
    scenes: j.scenes.length,
    frames: j.scenes[0]!.frames,
    width: j.width,
    height: j.height,
    steps: j.defaults.steps,
    guidance: j.defaults.guidance,
  };
}

async function stepRows(quick: boolean, reps: number, weightsDir: string): Promise<Measured[]> {
  const rows: Measured[] = [];
  const small = new Mask2DiTTransformer(smallTransformerConfig(), WeightSource.random(1));
  try {
    // per scene 4 latent frames × 32×64 latents = 2,048 tokens (quick: 1 frame × 16×32 = 128)
    rows.push(
      await forwardRow('small', small, 3, quick ? 1 : 4, quick ? 16 : 32, quick ? 32 : 64, 1, quick ? reps : 1),
    );
  } finally {
    small.dispose();
  }
  const dir = shippedModelDir(weightsDir);
  if (dir === undefined) {
    rows.push({
      config: 'shipped model, README demo geometry',
      ms: null,
      tokens: null,
      flops: null,
      formula: '-',
      peakBytes: null,
      reps: 0,
      skipped: NO_MODEL,
    });
    return rows;
  }
  const model = await Mask2DiTTransformer.fromPretrained(dir);
  try {
    const demo = readDemo();
    const B = demo.guidance > 1 ? 2 : 1; // classifier-free guidance runs both branches as one batch
    rows.push(
      await forwardRow('shipped (weights/mask2dit-world)', model, demo.scenes, ...demoLatents(dir, demo), B, reps),
    );
  } finally {
    model.dispose();
  }
  return rows;
}

async function vaeRow(
  name: string,
  config: Record<string, unknown>,
  latentFrames: number,
  height: number,
  width: number,
  reps: number,
  weightsDir?: string,
): Promise<Measured> {
  const vae =
    weightsDir !== undefined
      ? await CogVideoXVAE.fromPretrained(path.join(weightsDir, 'vae'))
      : new CogVideoXVAE(parseVaeConfig(config, `${name} config`).config, WeightSource.random(1));
  const c = vae.config;
  const [h, w] = [height / c.spatialCompression, width / c.spatialCompression];
  const z = tf.randomNormal([1, c.latent_channels, latentFrames, h, w], 0, 1, 'float32', 2);
  try {
    let frames = 0;
    const m = await measure(async () => {
      frames = await decodeAll(vae, z);
    }, reps);
    const f = profiledFlops(m.kernels);
    return {
      config: `${name}: ${latentFrames} latent frames → ${frames} frames of ${height}×${width}, block_out_channels [${c.block_out_channels.join(',')}]`,
      ms: m.ms,
      tokens: latentFrames * h * w,
      flops: f,
      formula: `Σ conv2d 2·out·kh·kw·Cin + Σ matMul 2·out·K (profiled) = ${G(f)}`,
      peakBytes: m.peakBytes,
      reps,
    };
  } finally {
    z.dispose();
    vae.dispose();
  }
}

async function vaeRows(quick: boolean, reps: number): Promise<Measured[]> {
  const rows = [await vaeRow('tiny', TINY_VAE, 5, 24, 32, reps)];
  if (!quick) rows.push(await vaeRow('CogVideoX-5B widths', COGVIDEOX_5B_VAE, 3, 64, 96, 0)); // = benchmarks/vae.ts's `batch` scenario
  return rows;
}

async function demoRows(reps: number, weightsDir: string): Promise<Measured[]> {
  const dir = shippedModelDir(weightsDir);
  const demo = readDemo();
  const cfg = `README demo: ${demo.scenes} scenes × ${demo.frames} frames ${demo.width}×${demo.height}, ${demo.steps} steps, guidance ${demo.guidance}`;
  if (dir === undefined || !fs.existsSync(path.join(dir, 'vae', 'config.json')))
    return [
      { config: cfg, ms: null, tokens: null, flops: null, formula: '-', peakBytes: null, reps: 0, skipped: NO_MODEL },
    ];
  // steps × one guided step + one VAE decode per scene (the text encoder is not timed)
  const latents = demoLatents(dir, demo);
  const model = await Mask2DiTTransformer.fromPretrained(dir);
  let step: Measured;
  try {
    step = await forwardRow('demo step', model, demo.scenes, ...latents, demo.guidance > 1 ? 2 : 1, reps);
  } finally {
    model.dispose();
  }
  const dec = await vaeRow('demo scene', {}, latents[0], demo.height, demo.width, reps, dir);
  const ms = demo.steps * step.ms! + demo.scenes * dec.ms!;
  const flops = demo.steps * step.flops! + demo.scenes * dec.flops!;
  return [
    {
      config: cfg,
      ms,
      tokens: null,
      flops,
      formula: `steps·step + scenes·decode = ${demo.steps}·${G(step.flops!)} + ${demo.scenes}·${G(dec.flops!)} (text encoder excluded)`,
      peakBytes: Math.max(step.peakBytes!, dec.peakBytes!),
      reps: step.reps,
    },
  ];
}

// ---- driver ---------------------------------------------------------------------------------------

/** Run the suite; rows in backend, then component order. Leaves the last backend selected. */
export async function runBenchmarks(opts: BenchOptions = {}): Promise<BenchRow[]> {
  const backends = opts.backends ?? ['wasm'];
  const only = opts.only ?? [...COMPONENTS];
  const quick = opts.quick ?? false;
  const reps = opts.reps ?? (quick ? 2 : 3);
  const weightsDir = opts.weightsDir ?? DEFAULT_MODEL_DIR;
  const date = new Date().toISOString().slice(0, 10);
  const rows: BenchRow[] = [];
  let threads = os.cpus().length; // torch's threads: the wasm row's, when wasm ran
  for (const b of backends) {
    const info: BackendInfo = await selectBackend(b);
    if (info.threads !== undefined) threads = info.threads;
    const emit = (component: Component, m: Measured) => {
      const row: BenchRow = {
        component,
        config: m.config,
        backend: info.name,
        device: info.device,
        msPerCall: m.ms === null ? null : round(m.ms, 3),
        tokensPerS: m.ms === null || m.tokens === null ? null : round(m.tokens / (m.ms / 1000), 3),
        gflops: m.ms === null || m.flops === null ? null : round(m.flops / m.ms / 1e6, 3),
        flops: m.flops,
        flopFormula: m.formula,
        peakMiB: m.peakBytes === null ? null : round(m.peakBytes / 2 ** 20, 3),
        reps: m.reps,
        skipped: m.skipped ?? null,
        machine: machine(),
        date,
      };
      rows.push(row);
      opts.onRow?.(row);
    };
    for (const c of only) {
      const measured = await runComponent(c, quick, reps, weightsDir);
      for (const m of measured) emit(c, m);
    }
  }
  if (opts.reference !== undefined && only.includes('step')) {
    const small = rows.find((r) => r.component === 'step' && r.config.startsWith('small'));
    const ref = await referenceStepRows({
      ...opts.reference,
      threads,
      quick,
      reps: quick ? reps : 1,
      flops: small?.flops ?? null,
      flopFormula: small?.flopFormula ?? '-',
      ...(small !== undefined && { expectConfig: small.config }),
    });
    for (const r of ref) {
      rows.push(r);
      opts.onRow?.(r);
    }
  }
  return rows;
}

function runComponent(c: Component, quick: boolean, reps: number, weightsDir: string): Promise<Measured[]> {
  switch (c) {
    case 'matmul':
      return matmulRows(quick, reps);
    case 'attention':
      return attentionRows(quick, reps);
    case 'block':
      return blockRows(quick, reps);
    case 'step':
      return stepRows(quick, reps, weightsDir);
    case 'vae':
      return vaeRows(quick, reps);
    case 'demo':
      return demoRows(reps, weightsDir);
  }
}

/** 3 significant digits. */
function round(x: number, digits: number): number {
  return Number(x.toPrecision(digits));
}

/** The rows as one aligned table (the FLOP formula per row under it), then one JSON line per row. */
export function formatReport(rows: BenchRow[]): string {
  const cols: [string, (r: BenchRow) => string][] = [
    ['component', (r) => r.component],
    ['backend', (r) => r.backend],
    ['ms/call', (r) => (r.msPerCall === null ? '-' : String(r.msPerCall))],
    ['tokens/s', (r) => (r.tokensPerS === null ? '-' : String(r.tokensPerS))],
    ['GFLOP/s', (r) => (r.gflops === null ? '-' : String(r.gflops))],
    ['peak MiB', (r) => (r.peakMiB === null ? '-' : String(r.peakMiB))],
    ['config', (r) => r.config + (r.skipped !== null ? ` — ${r.skipped}` : '')],
  ];
  const cells = rows.map((r) => cols.map(([, f]) => f(r)));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  const out = [line(cols.map(([h]) => h)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)];
  const ratios = sideBySide(rows);
  if (ratios.length > 0) out.push('', 'Side by side (one run, same machine):', ...ratios);
  out.push('', 'FLOPs per call:');
  rows.forEach((r, i) => out.push(`  [${i + 1}] ${r.component} ${r.backend}: ${r.flopFormula}`));
  out.push('');
  for (const r of rows) out.push(JSON.stringify(r));
  return out.join('\n') + '\n';
}
