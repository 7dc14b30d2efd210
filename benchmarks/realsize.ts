/**
 * The real-size run: a pipeline folder with the official Mask²DiT release's layout and sizes (made by
 * `scripts/make-synthetic-pipeline.ts`, random bf16 weights: CogVideoX-5B transformer, T5-v1.1-XXL
 * encoder, CogVideoX VAE) through every phase a text-to-video run has, on this machine:
 *
 *   load       loadModelFolder (offload chosen automatically: blocks stay in the checkpoint when the
 *              backend cannot hold them)
 *   encode     T5 on 3 scene prompts + the negative prompt (226 ids each, the reference's unmasked call)
 *   step       one denoising step of the Mask²DiT pipeline over 3 scenes (--frames, --height × --width;
 *              --guidance 1: one transformer forward, > 1: two)
 *   decode     the VAE on one latent frame at 480×720 (tiled when the frame does not fit)
 *
 *   node --expose-gc --import tsx benchmarks/realsize.ts --model /path/to/folder [--backend wasm]
 *        [--frames 1] [--height 480] [--width 720] [--guidance 1] [--decode-size 480x720] [--offload auto]
 *
 * Per phase: seconds, peak RSS of the process so far (getrusage maxrss), RSS and JS external memory after
 * the phase, tf.memory().numBytes after it and its high-water mark during it (sampled between kernels by
 * the engine's own counters), and on wasm the heap's size (it grows, never shrinks: its size at the end is
 * the phase's high-water mark) against the budget. A table on stdout, then one JSON line per phase.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../src/backend/index.js';
import { memoryLimits } from '../src/backend/memoryBudget.js';
import { loadModelFolder } from '../src/model/modelFolder.js';
import { parseOffloadMode } from '../src/model/offload.js';
import { Mask2DiTPipeline, decodeScenes } from '../src/model/pipeline.js';
import { PromptEncoder } from '../src/text/promptEncoder.js';
import { arg, machine, mib, report, type Row } from './lib.js';

const PROMPTS = [
  'Actor1 (brown hair tied back, wearing a green hiking vest, holding a camera) stands at the edge of the clearing, framing a shot of the misty forest.',
  'Actor2 (wearing a beige hat, blue flannel shirt, sitting on a log) watches Actor1 with a smile, appreciating the tranquility of the early morning.',
  'Actor1 lowers the camera and shares a quiet laugh with Actor2 as they both take in the serene beauty of the forest.',
];
const NEGATIVE =
  'The video is not of a high quality, it has a low resolution. Watermark present in each frame. The background is solid. Strange body and strange trajectory. Distortion. ';

/** The wasm heap's current size in bytes (undefined on other backends). */
function wasmHeapBytes(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength;
}

interface Sample {
  peakTensorBytes: number;
}

/** Run one phase and measure it. */
async function phase<T>(name: string, rows: Row[], fn: () => Promise<T>): Promise<T> {
  (globalThis as { gc?: () => void }).gc?.();
  const heap0 = wasmHeapBytes();
  const s: Sample = { peakTensorBytes: tf.memory().numBytes };
  const timer = setInterval(() => (s.peakTensorBytes = Math.max(s.peakTensorBytes, tf.memory().numBytes)), 50); // between awaits only
  const t0 = performance.now();
  let result: T;
  try {
    result = await fn();
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - t0) / 1000;
  const mem = process.memoryUsage();
  const heap1 = wasmHeapBytes();
  rows.push({
    phase: name,
    backend: tf.getBackend(),
    seconds: Number(seconds.toFixed(1)),
    peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    rss_mib: Math.round(mem.rss / 2 ** 20),
    external_mib: Math.round((mem.external + mem.arrayBuffers) / 2 ** 20),
    tensor_mib: Math.round(tf.memory().numBytes / 2 ** 20),
    tensor_peak_mib: Math.round(Math.max(s.peakTensorBytes, tf.memory().numBytes) / 2 ** 20),
    wasm_heap_mib: heap1 !== undefined ? Math.round(heap1 / 2 ** 20) : null,
    wasm_heap_grew_mib: heap0 !== undefined && heap1 !== undefined ? Math.round((heap1 - heap0) / 2 ** 20) : null,
  });
  process.stderr.write(`${name}: ${seconds.toFixed(1)} s\n`);
  return result!;
}

async function main(): Promise<void> {
  const dir = arg('--model');
  if (dir === undefined) throw new Error('--model DIR is required (make one with scripts/make-synthetic-pipeline.ts)');
  const backend = await selectBackend(arg('--backend'));
  const frames = Number(arg('--frames') ?? 1);
  const height = Number(arg('--height') ?? 480);
  const width = Number(arg('--width') ?? 720);
  const guidance = Number(arg('--guidance') ?? 1);
  const [dh, dw] = (arg('--decode-size') ?? '480x720').split('x').map(Number) as [number, number];
  const offload = parseOffloadMode(arg('--offload') ?? 'auto');
  const rows: Row[] = [];
  const limits = memoryLimits();
  process.stderr.write(
    `real-size run: ${dir} on ${backend.name} (${backend.device}), budget ${limits.totalBytes !== undefined ? mib(limits.totalBytes) : 'none'}; ${machine()}\n`,
  );

  const model = await phase('load', rows, () => loadModelFolder(dir, { offload }));
  try {
    for (const n of model.notes) process.stderr.write(`note: ${n}\n`);
    if (model.tokenizer === undefined || model.textEncoder === undefined)
      throw new Error(`${dir}: no tokenizer/text encoder: ${model.notes.join(' ')}`);
    const pe = new PromptEncoder(model.tokenizer, model.textEncoder);
    const [prompts, negative] = await phase('encode 3 prompts + negative', rows, async () => {
      const all = pe.encode([...PROMPTS, NEGATIVE]); // [4, T, D]
      const parts = tf.split(all, [3, 1], 0); // [3, T, D], [1, T, D]
      all.dispose();
      await parts[0]!.data();
      return parts as [tf.Tensor, tf.Tensor];
    });
    const pipe = new Mask2DiTPipeline({
      transformer: model.transformer,
      vae: model.vae,
      scheduler: model.schedulerConfig,
    });
    const result = await phase(
      `1 step, 3 scenes × ${frames} frames at ${height}×${width}, guidance ${guidance}`,
      rows,
      async () => {
        const r = await pipe.generate({
          prompts,
          ...(guidance > 1 ? { negative } : {}),
          scenes: 3,
          frames,
          height,
          width,
          steps: 1,
          guidanceScale: guidance,
          output: 'latent',
          sampler: model.samplerName,
        });
        await r.latents.data();
        return r;
      },
    );
    tf.dispose([prompts, negative, result.latents]);
    const C = model.transformer.config.in_channels;
    const video = await phase(`decode 1 latent frame at ${dh}×${dw}`, rows, async () => {
      const z = tf.randomNormal([1, 1, C, dh / 8, dw / 8], 0, 1, 'float32', 7); // [1, F, C, h, w]
      const v = await decodeScenes(model.vae, z, 1);
      z.dispose();
      await v.data();
      return v;
    });
    video.dispose();
  } finally {
    model.dispose();
  }
  const columns = [
    'phase',
    'backend',
    'seconds',
    'peak_rss_mib',
    'rss_mib',
    'external_mib',
    'tensor_mib',
    'tensor_peak_mib',
    'wasm_heap_mib',
    'wasm_heap_grew_mib',
  ];
  report(
    `real-size Mask²DiT pipeline (${dir}) on ${backend.name}, ${machine()}, ${(os.freemem() / 2 ** 30).toFixed(1)} GiB free at the end`,
    rows,
    columns,
  );
  shutdownBackends();
}

await main();
