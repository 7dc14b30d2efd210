/**
 * Seeded Gaussian noise, computed in JavaScript so that it does not depend on the tfjs backend:
 * the same (seed, stream, shape) gives bit-identical Float32 values on cpu, wasm and webgpu, and on
 * any JavaScript engine (the algorithm uses only integer ops, IEEE-754 `+ − × ÷` and `Math.sqrt`,
 * all exactly specified; no `Math.log`/`Math.sin`, whose last bit may differ between engines).
 *
 * Algorithm
 * 1. Uniform bits: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
 *    a counter-based generator: block `i` of a stream is `philox(counter = [i mod 2³², ⌊i/2³²⌋,
 *    stream, 0], key = [seed mod 2³², ⌊seed/2³²⌋])`, 4 × 32 bits. Checked against Random123's
 *    known-answer vectors. Any element can be computed without the ones before it.
 * 2. Uniforms: each block gives two 53-bit uniforms `u = (⌊w₀/2⁵⌋·2²⁶ + ⌊w₁/2⁶⌋) / 2⁵³ ∈ [0, 1)`
 *    (the first from words 0–1, the second from words 2–3).
 * 3. Normals: Box–Muller in float64, `r = √(−2·ln(1 − u₁))`, `z₀ = r·cos(2πu₂)`, `z₁ = r·sin(2πu₂)`,
 *    with our own `ln` (exponent/mantissa split, then `2·atanh` series) and `sin`/`cos` (octant
 *    reduction done exactly on `u₂`, then Taylor series); both accurate to ~1 ulp of float64.
 * 4. Rounding: each normal is rounded to float32 (`Math.fround`). Element `2i` of the output is `z₀`
 *    of block `i`, element `2i + 1` is `z₁`, in row-major order of the requested shape.
 *
 * The seed is an integer in [0, 2⁵³). Streams separate the independent draws of one run (initial
 * latents, conditioning noise, VAE posterior sample, the DPM sampler's per-step noise): see `STREAM`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError } from '../errors.js';

/** Independent draws of one pipeline run; scene- or step-specific streams add an offset. */
export const STREAM = {
  /** Initial latents of the generated scenes. */
  latents: 0,
  /** The t = 0 noise the reference adds to conditioning latents (scene-extension pipeline). */
  conditionNoise: 1,
  /** VAE posterior samples of conditioning videos: `posterior + scene`. */
  posterior: 1 << 16,
  /** Sampler-internal noise (DPM): `sampler + 2·step + draw`. */
  sampler: 1 << 24,
} as const;

const TWO32 = 4294967296;

/** High and low 32 bits of the 64-bit product of two uint32 values. */
function mulhilo(a: number, b: number): [number, number] {
  const lo = Math.imul(a, b) >>> 0;
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  const lh = aL * bH;
  const hl = aH * bL;
  const mid = Math.floor((aL * bL) / 65536) + (lh % 65536) + (hl % 65536); // exact: < 2³⁴
  const hi = aH * bH + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(mid / 65536);
  return [hi >>> 0, lo];
}

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** Philox4x32 with 10 rounds: 4 counter words and 2 key words (uint32) → 4 random words. */
export function philox4x32(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0) as [number, number, number, number];
  let k0 = key[0]! >>> 0;
  let k1 = key[1]! >>> 0;
  for (let round = 0; round < 10; round++) {
    const [hi0, lo0] = mulhilo(PHILOX_M0, c0);
    const [hi1, lo1] = mulhilo(PHILOX_M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + PHILOX_W0) >>> 0;
    k1 = (k1 + PHILOX_W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

// ---- float64 ln, sin, cos from exactly specified operations only --------------------------------

const LN2 = 0.6931471805599453;
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer); // little-endian: u32[1] holds sign, exponent, high mantissa

/** ln(x) for x in (0, 1]: x = m·2^e with m in [√½, √2), ln m = 2·atanh(s), s = (m − 1)/(m + 1). */
export function lnPositive(x: number): number {
  if (!(x > 0)) throw new RangeError(`lnPositive: expected x > 0, got ${x}`);
  f64[0] = x;
  let e = ((u32[1]! >>> 20) & 0x7ff) - 1023;
  if (e === -1023) return lnPositive(x * 2 ** 54) - 54 * LN2; // subnormal input (never from our uniforms)
  u32[1] = (u32[1]! & 0x800fffff) | (1023 << 20); // m in [1, 2)
  let m = f64[0]!;
  if (m > Math.SQRT2) {
    m /= 2;
    e += 1;
  }
  const s = (m - 1) / (m + 1); // |s| ≤ 0.1716
  const s2 = s * s;
  let sum = 0;
  for (let k = 25; k >= 1; k -= 2) sum = sum * s2 + 1 / k; // 1 + s²/3 + s⁴/5 + … (Horner)
  return e * LN2 + 2 * s * sum;
}

function sinSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let k = 1; k <= 11; k++) {
    term *= -x2 / (2 * k * (2 * k + 1));
    sum += term;
  }
  return sum;
}

function cosSeries(x: number): number {
  const x2 = x * x;
  let term = 1;
  let sum = 1;
  for (let k = 1; k <= 11; k++) {
    term *= -x2 / ((2 * k - 1) * (2 * k));
    sum += term;
  }
  return sum;
}

/** [cos(2πu), sin(2πu)] for u in [0, 1): the octant of u is split off exactly (u·8 is exact). */
export function cosSin2Pi(u: number): [number, number] {
  const v = u * 8;
  const octant = Math.floor(v);
  const frac = v - octant; // exact
  // angle within the octant, in [0, π/4]; odd octants measure from the far end
  const a = (octant % 2 === 0 ? frac : 1 - frac) * (Math.PI / 4);
  const c = cosSeries(a);
  const s = sinSeries(a);
  switch (octant) {
    case 0:
      return [c, s];
    case 1:
      return [s, c];
    case 2:
      return [-s, c];
    case 3:
      return [-c, s];
    case 4:
      return [-c, -s];
    case 5:
      return [-s, -c];
    case 6:
      return [s, -c];
    default:
      return [c, -s];
  }
}

// ---- the generator --------------------------------------------------------------------------------

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new Mask2DiTError('SEED', `seed must be an integer in [0, 2^53), got ${seed}`);
  }
}

/** `count` float32 N(0, 1) values of (seed, stream), starting at element `offset` (even). */
export function gaussianArray(count: number, seed: number, stream = 0, offset = 0): Float32Array {
  checkSeed(seed);
  if (!Number.isInteger(stream) || stream < 0 || stream >= TWO32)
    throw new Mask2DiTError('SEED', `stream must be a uint32, got ${stream}`);
  if (!Number.isInteger(offset) || offset < 0 || offset % 2 !== 0)
    throw new Mask2DiTError('SEED', `offset must be an even non-negative integer, got ${offset}`);
  const key = [seed % TWO32, Math.floor(seed / TWO32)];
  const out = new Float32Array(count);
  const firstBlock = offset / 2;
  for (let i = 0; i < count; i += 2) {
    const block = firstBlock + i / 2;
    const [w0, w1, w2, w3] = philox4x32([block % TWO32, Math.floor(block / TWO32), stream, 0], key);
    const u1 = ((w0 >>> 5) * 67108864 + (w1 >>> 6)) / 9007199254740992; // [0, 1)
    const u2 = ((w2 >>> 5) * 67108864 + (w3 >>> 6)) / 9007199254740992;
    const r = Math.sqrt(-2 * lnPositive(1 - u1)); // 1 − u1 in (0, 1]
    const [c, s] = cosSin2Pi(u2);
    out[i] = Math.fround(r * c);
    if (i + 1 < count) out[i + 1] = Math.fround(r * s);
  }
  return out;
}

/** A float32 tensor of N(0, 1) noise; identical on every backend for the same (shape, seed, stream). */
export function gaussianNoise(shape: number[], seed: number, stream = 0): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(gaussianArray(n, seed, stream), shape, 'float32');
}
