/**
 * Half-precision conversions between IEEE float16 / bfloat16 bit patterns (Uint16Array) and float32
 * (Float32Array). Decoding is exact; encoding rounds to nearest, ties to even, turns overflow into
 * ±inf and keeps NaN a NaN (with as much of its payload as fits). Everything works on bit patterns
 * through integer views, so NaN payloads and signs are never disturbed by a trip through a JS number.
 *
 * Assumes a little-endian host, like the rest of src/io (every platform Node ships for is one).
 */

let f16Table: Uint32Array | undefined;

/** float16 bits → float32 bits for all 65536 patterns, built once on first use. */
function f16ToF32Table(): Uint32Array {
  if (f16Table !== undefined) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    let bits: number;
    if (exp === 0x1f) {
      bits = sign | 0x7f800000 | (mant << 13); // inf, or NaN with its payload
    } else if (exp !== 0) {
      bits = sign | ((exp + 112) << 23) | (mant << 13); // normal: rebias 15 → 127
    } else if (mant === 0) {
      bits = sign; // ±0
    } else {
      // subnormal: value = mant · 2^-24; normalise so the leading 1 lands on bit 10
      let e = 113; // exponent (biased) of 2^-14
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      bits = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
    t[h] = bits >>> 0;
  }
  f16Table = t;
  return t;
}

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function asFloat32(src: Float32Array | ArrayLike<number>): Float32Array {
  return src instanceof Float32Array ? src : Float32Array.from(src);
}

/** float16 bit patterns → float32, exactly (subnormals, ±0, ±inf, NaN payloads included). */
export function f16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length !== src.length)
    throw new RangeError(`f16ToF32: output length ${out.length} != input length ${src.length}`);
  const table = f16ToF32Table();
  const o = u32View(out);
  for (let i = 0; i < src.length; i++) o[i] = table[src[i]!]!;
  return out;
}

/** bfloat16 bit patterns → float32, exactly (a bfloat16 is the top half of a float32). */
export function bf16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length !== src.length)
    throw new RangeError(`bf16ToF32: output length ${out.length} != input length ${src.length}`);
  const o = u32View(out);
  for (let i = 0; i < src.length; i++) o[i] = src[i]! << 16;
  return out;
}

/** One float32 bit pattern → float16 bits, round to nearest even. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) {
    if (abs === 0x7f800000) return sign | 0x7c00;
    const payload = (abs >>> 13) & 0x3ff;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload); // NaN stays NaN
  }
  // 0x477ff000 = 65520, halfway between 65504 (max, odd mantissa) and 65536: ties-to-even gives inf
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) {
    // normal float16: rebias the exponent (127 → 15), drop 13 mantissa bits with rounding; a carry
    // out of the mantissa correctly bumps the exponent
    const v = abs - 0x38000000;
    return sign | ((v + 0xfff + ((v >>> 13) & 1)) >>> 13);
  }
  if (abs <= 0x33000000) return sign; // ≤ 2^-25: rounds to ±0 (2^-25 itself is a tie, 0 is even)
  // subnormal float16: mantissa = round(|x| · 2^24) with ties to even; |x| · 2^24 < 1024
  const e = abs >>> 23; // 102..112
  const m = (abs & 0x7fffff) | 0x800000; // value = m · 2^(e - 150)
  const shift = 126 - e; // value · 2^24 = m >> shift (shift in 14..24)
  const q = m >>> shift;
  const rem = m - (q << shift);
  const half = 1 << (shift - 1);
  const r = rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
  return sign | r; // r may be 0x400: the smallest normal, which is the right encoding
}

/** One float32 bit pattern → bfloat16 bits, round to nearest even. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) {
    const h = x >>> 16;
    return (h & 0x7f) === 0 ? h | 0x40 : h; // NaN stays NaN (the payload's top bits survive)
  }
  return ((x >>> 0) + 0x7fff + ((x >>> 16) & 1)) >>> 16; // overflow past the max rounds to ±inf
}

/** float32 → float16 bit patterns, round to nearest even, overflow → ±inf, NaN → NaN. */
export function f32ToF16(
  src: Float32Array | ArrayLike<number>,
  out: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  if (out.length !== src.length)
    throw new RangeError(`f32ToF16: output length ${out.length} != input length ${src.length}`);
  const bits = u32View(asFloat32(src));
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

/** float32 → bfloat16 bit patterns, round to nearest even, overflow → ±inf, NaN → NaN. */
export function f32ToBf16(
  src: Float32Array | ArrayLike<number>,
  out: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  if (out.length !== src.length)
    throw new RangeError(`f32ToBf16: output length ${out.length} != input length ${src.length}`);
  const bits = u32View(asFloat32(src));
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]!);
  return out;
}
