/**
 * Training randomness, reproducible from (seed, step) alone: every draw of step k uses its own
 * Philox streams, so a resumed run draws exactly what the uninterrupted run drew at that step.
 * Gaussians come from the sampler's backend-independent generator (src/sampler/noise.ts).
 */
import { gaussianArray, philox4x32 } from '../sampler/noise.js';

const TWO32 = 4294967296;
/** Streams per step: uniforms, gaussians, and spare. */
const PER_STEP = 4;

/** Uniforms in [0, 1) for (seed, stream). */
export function uniformArray(count: number, seed: number, stream: number): Float64Array {
  const key = [seed % TWO32, Math.floor(seed / TWO32)];
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const [w0, w1, w2, w3] = philox4x32([i / 2, 0, stream, 1], key); // counter word 3 = 1: disjoint from the Gaussian blocks
    out[i] = ((w0 >>> 5) * 67108864 + (w1 >>> 6)) / 9007199254740992;
    if (i + 1 < count) out[i + 1] = ((w2 >>> 5) * 67108864 + (w3 >>> 6)) / 9007199254740992;
  }
  return out;
}

/** The random draws of one training step. */
export class StepRng {
  private uniformsUsed = 0;
  private gaussiansUsed = 0;
  constructor(
    readonly seed: number,
    readonly step: number,
  ) {}

  /** `n` uniforms in [0, 1), continuing this step's uniform stream. */
  uniforms(n: number): Float64Array {
    const all = uniformArray(this.uniformsUsed + n, this.seed, this.step * PER_STEP);
    const out = all.subarray(this.uniformsUsed);
    this.uniformsUsed += n;
    return out;
  }

  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.min(hi - lo - 1, Math.floor(this.uniforms(1)[0]! * (hi - lo)));
  }

  /** `n` float32 N(0, 1) values, continuing this step's Gaussian stream. */
  gaussians(n: number): Float32Array {
    const start = this.gaussiansUsed + (this.gaussiansUsed % 2); // the generator works in pairs
    this.gaussiansUsed = start + n;
    return gaussianArray(n, this.seed, this.step * PER_STEP + 1, start);
  }
}
