/** Benchmark plumbing shared by `src/bench` and the scripts in `benchmarks/`: timing, peak memory, machine. */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';

/** `<cpu model> x<cores>, <RAM> GiB, Node <version>`. */
export const machine = (): string =>
  `${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;

/** Median wall time (ms) of `reps` runs of `fn` after `warmup` runs; `fn` must finish its GPU/worker work (await data). */
export async function timeIt(
  fn: () => Promise<void>,
  reps: number,
  warmup = 1,
): Promise<{ medianMs: number; allMs: number[] }> {
  for (let i = 0; i < warmup; i++) await fn();
  const all: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    all.push(performance.now() - t0);
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)]!, allMs: all };
}

/** Peak bytes of live tensors while `fn` runs, above what was live before (tf.profile). */
export async function peakTensorBytes(fn: () => Promise<void>): Promise<number> {
  const before = tf.memory().numBytes;
  const info = await tf.profile(async () => {
    await fn();
  });
  return Math.max(0, info.peakBytes - before);
}

/** A profiled run's kernels (for FLOP counting). */
type ProfiledKernels = tf.TensorContainer[] &
  { name: string; inputShapes: (number[] | null)[]; outputShapes: number[][] }[];

/** One profiled run: wall time, peak bytes above the start, and the kernels (for FLOP counting). */
export async function profiledRun(
  fn: () => Promise<void>,
): Promise<{ ms: number; peakBytes: number; kernels: ProfiledKernels }> {
  const before = tf.memory().numBytes;
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    await fn();
  });
  const ms = performance.now() - t0;
  return { ms, peakBytes: Math.max(0, info.peakBytes - before), kernels: info.kernels as never };
}

/** FLOPs of the convolution and matMul kernels of a profile: `2·out·kh·kw·Cin` per conv2d, `2·out·K` per matMul. */
export function profiledFlops(
  kernels: { name: string; inputShapes: (number[] | null)[]; outputShapes: number[][] }[],
): number {
  let f = 0;
  for (const k of kernels) {
    const out = k.outputShapes[0]?.reduce((a, b) => a * b, 1) ?? 0;
    if (k.name === 'Conv2D' || k.name === 'FusedConv2D') {
      const [kh, kw, cin] = k.inputShapes[1] as number[];
      f += 2 * out * kh! * kw! * cin!;
    } else if (k.name === 'BatchMatMul' || k.name === '_FusedMatMul') {
      const a = k.inputShapes[0] as number[];
      f += 2 * out * a[a.length - 1]!;
    }
  }
  return f;
}
