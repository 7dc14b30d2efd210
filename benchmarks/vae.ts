/**
 * VAE decode benchmark: time per output frame and peak tensor memory of CogVideoXVAE.decode.
 *
 *   node --expose-gc --import tsx benchmarks/vae.ts [--backend wasm|cpu|webgpu] [--size 64x96]
 *        [--iters 1] [--scene] [--only tiny,batch,scene]
 *
 * Scenarios (data, below):
 * - `tiny`:  the vae_decode fixture config (block_out_channels [8,8,16,16]), 5 latent frames at 3×4
 *            → 17 frames of 24×32.
 * - `batch`: the real CogVideoX-5B VAE widths (block_out_channels [128,256,256,512], 16 latent
 *            channels, layers_per_block 3, norm_num_groups 32; random weights), one frame batch:
 *            latent frames [0, 3) = the reference's first two decoder calls (frame 0, then a pair)
 *            → 9 frames, at `--size` pixels (default 64×96: 480×720 is 37.5× the work and does not
 *            fit the 4 GiB wasm heap untiled; the row prints the linear 480×720 estimate).
 * - `scene`: a full scene, 13 latent frames → 49 frames, at `--size`; skipped unless `--scene`
 *            (the estimate is printed instead).
 *
 * FLOPs are counted exactly from a profiled run (every Conv2D and MatMul kernel's shapes:
 * `2·out·kh·kw·Cin`, `2·out·K`); that run also gives the peak tensor bytes (`tf.profile`). The timed
 * runs are not profiled. Each run ends with `await data()` on every output chunk. Conv FLOPs scale
 * exactly with H·W, so the 480×720 estimates multiply time and activation bytes by the pixel ratio
 * at the measured GFLOP/s. Prints a table on stderr and one JSON line per scenario on stdout.
 */
import { execSync } from 'node:child_process';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends, type BackendInfo } from '../src/backend/index.js';
import { parseVaeConfig, type VaeConfig } from '../src/config/vaeConfig.js';
import { WeightSource } from '../src/layers/weightSource.js';
import { CogVideoXVAE, decodeCallRanges } from '../src/model/vae.js';
import { profiledFlops as flopsOf } from '../src/bench/measure.js';
import { TINY_VAE as TINY, COGVIDEOX_5B_VAE as COGVIDEOX_5B, decodeAll } from '../src/bench/suite.js';

interface Scenario {
  name: 'tiny' | 'batch' | 'scene';
  config: Record<string, unknown>;
  latentFrames: number;
  /** Output pixels (multiples of 8). */
  height: number;
  width: number;
  iters: number;
  /** Skipped (estimate only) unless enabled. */
  enabled: boolean;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function scenarios(): Scenario[] {
  const [h, w] = (arg('--size') ?? '64x96').split('x').map(Number) as [number, number];
  if (!(h > 0 && w > 0 && h % 8 === 0 && w % 8 === 0))
    throw new Error(`--size must be HxW, multiples of 8, got ${arg('--size')}`);
  const iters = Number(arg('--iters') ?? 1);
  const only = arg('--only')?.split(',');
  const all: Scenario[] = [
    { name: 'tiny', config: TINY, latentFrames: 5, height: 24, width: 32, iters: 3, enabled: true },
    { name: 'batch', config: COGVIDEOX_5B, latentFrames: 3, height: h, width: w, iters, enabled: true }, // 49 frames → 13 latents; one batch = calls [0,1) + [1,3)
    {
      name: 'scene',
      config: COGVIDEOX_5B,
      latentFrames: 13,
      height: h,
      width: w,
      iters,
      enabled: process.argv.includes('--scene'),
    }, // 49 frames, 480×720 → 13×60×90 latents
  ];
  return all.filter((s) => only === undefined || only.includes(s.name));
}

interface Row {
  bench: 'vae';
  scenario: string;
  backend: string;
  device: string;
  machine: string;
  cores: number;
  node: string;
  tfjs: string;
  gitSha: string;
  config: Record<string, unknown>;
  latentShape: number[];
  outputFrames: number;
  outputSize: string;
  decoderCalls: number;
  warmup: number;
  iters: number;
  meanMs: number | null;
  perFrameMs: number | null;
  gflop: number;
  gflops: number | null;
  peakBytes: number | null;
  weightBytes: number;
  numTensorsAfter: number;
  skipped: boolean;
  estimate480x720?: { perFrameS: number; sceneOf49FramesS: number; peakBytes: number; fitsWasmHeap: boolean };
  note?: string;
}

async function runScenario(s: Scenario, info: BackendInfo, measured: Map<string, Row>): Promise<Row> {
  const config: VaeConfig = parseVaeConfig(s.config, `${s.name} config`).config;
  const h = s.height / config.spatialCompression;
  const w = s.width / config.spatialCompression;
  const before = tf.memory().numBytes;
  const vae = new CogVideoXVAE(config, WeightSource.random(1));
  const weightBytes = tf.memory().numBytes - before;
  const z = tf.randomNormal([1, config.latent_channels, s.latentFrames, h, w], 0, 1, 'float32', 2);
  const base: Omit<
    Row,
    | 'meanMs'
    | 'perFrameMs'
    | 'gflop'
    | 'gflops'
    | 'peakBytes'
    | 'outputFrames'
    | 'numTensorsAfter'
    | 'skipped'
    | 'warmup'
    | 'iters'
  > = {
    bench: 'vae',
    scenario: s.name,
    backend: info.name,
    device: info.device,
    machine: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    tfjs: tf.version_core,
    gitSha: gitSha(),
    config: s.config,
    latentShape: z.shape,
    outputSize: `${s.height}x${s.width}`,
    decoderCalls: decodeCallRanges(s.latentFrames).length,
    weightBytes,
  };
  try {
    if (!s.enabled) return skippedRow(s, base, measured.get('batch'));
    // 1. profiled run: FLOPs, peak bytes (and the warmup)
    let frames = 0;
    const prof = await tf.profile(async () => {
      frames = await decodeAll(vae, z);
    });
    // 2. timed runs
    const times: number[] = [];
    for (let i = 0; i < s.iters; i++) {
      const t0 = performance.now();
      await decodeAll(vae, z);
      times.push(performance.now() - t0);
    }
    const meanMs = times.reduce((a, b) => a + b, 0) / times.length;
    const gflop = flopsOf(prof.kernels as never) / 1e9;
    const row: Row = {
      ...base,
      outputFrames: frames,
      warmup: 1,
      iters: s.iters,
      meanMs,
      perFrameMs: meanMs / frames,
      gflop,
      gflops: gflop / (meanMs / 1000),
      peakBytes: prof.peakBytes - before,
      numTensorsAfter: 0,
      skipped: false,
    };
    if (s.name !== 'tiny') row.estimate480x720 = estimate(row);
    return row;
  } finally {
    z.dispose();
    vae.dispose();
  }
}

/** Linear extrapolation to 480×720 (conv FLOPs and activations scale exactly with the pixel count). */
function estimate(r: Row): NonNullable<Row['estimate480x720']> {
  const [hh, ww] = r.outputSize.split('x').map(Number) as [number, number];
  const ratio = (480 * 720) / (hh * ww);
  const perFrameS = (r.perFrameMs! * ratio) / 1000;
  const peakBytes = r.weightBytes + (r.peakBytes! - r.weightBytes) * ratio;
  return { perFrameS, sceneOf49FramesS: perFrameS * 49, peakBytes, fitsWasmHeap: peakBytes < 3.5 * 2 ** 30 };
}

function skippedRow(
  s: Scenario,
  base: Omit<
    Row,
    | 'meanMs'
    | 'perFrameMs'
    | 'gflop'
    | 'gflops'
    | 'peakBytes'
    | 'outputFrames'
    | 'numTensorsAfter'
    | 'skipped'
    | 'warmup'
    | 'iters'
  >,
  batch: Row | undefined,
): Row {
  const frames = 4 * (s.latentFrames - 1) + 1;
  const row: Row = {
    ...base,
    outputFrames: frames,
    warmup: 0,
    iters: 0,
    meanMs: null,
    perFrameMs: null,
    gflop: 0,
    gflops: null,
    peakBytes: null,
    numTensorsAfter: tf.memory().numTensors,
    skipped: true,
    note: 'skipped (pass --scene); estimate from the batch row',
  };
  if (batch?.perFrameMs != null) {
    row.perFrameMs = batch.perFrameMs;
    row.meanMs = batch.perFrameMs * frames;
    row.peakBytes = batch.peakBytes; // streamed: one call's peak, whatever the frame count
    if (batch.estimate480x720 !== undefined) row.estimate480x720 = batch.estimate480x720;
  }
  return row;
}

function gitSha(): string {
  try {
    return execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

const fmtBytes = (b: number | null) =>
  b === null ? '-' : b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
const fmtS = (s: number) =>
  s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`;

function table(rows: Row[]): string {
  const head = [
    'scenario',
    'output',
    'frames',
    'calls',
    'mean',
    'per frame',
    'GFLOP',
    'GFLOP/s',
    'peak act.',
    'weights',
    '480×720 per frame / 49-frame scene / peak',
  ];
  const lines = rows.map((r) => [
    r.scenario + (r.skipped ? ' (est.)' : ''),
    r.outputSize,
    String(r.outputFrames),
    String(r.decoderCalls),
    r.meanMs === null ? '-' : fmtS(r.meanMs / 1000),
    r.perFrameMs === null ? '-' : `${r.perFrameMs.toFixed(1)} ms`,
    r.gflop.toFixed(1),
    r.gflops === null ? '-' : r.gflops.toFixed(1),
    fmtBytes(r.peakBytes === null ? null : r.peakBytes - r.weightBytes),
    fmtBytes(r.weightBytes),
    r.estimate480x720 === undefined
      ? '-'
      : `${fmtS(r.estimate480x720.perFrameS)} / ${fmtS(r.estimate480x720.sceneOf49FramesS)} / ${fmtBytes(r.estimate480x720.peakBytes)}${r.estimate480x720.fitsWasmHeap ? '' : ' (over the wasm heap)'}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [head, ...lines].map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const info = await selectBackend(arg('--backend') ?? 'wasm');
  process.stderr.write(
    `VAE decode benchmark — backend ${info.name}: ${info.device}; machine ${os.cpus()[0]?.model} ×${os.cpus().length} cores\n`,
  );
  const rows: Row[] = [];
  const measured = new Map<string, Row>();
  for (const s of scenarios()) {
    process.stderr.write(`running ${s.name} (${s.latentFrames} latent frames at ${s.height}×${s.width})…\n`);
    const row = await runScenario(s, info, measured);
    row.numTensorsAfter = tf.memory().numTensors;
    measured.set(s.name, row);
    rows.push(row);
  }
  process.stderr.write(table(rows) + '\n');
  process.stderr.write(
    "peak act. = peak tensor bytes during the decode minus the weights; the scene decodes streamed (one call at a time), so its peak equals the batch's.\n",
  );
  for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
}

await main();
shutdownBackends();
