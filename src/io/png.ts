/**
 * PNG encoder and decoder on `node:zlib`: 8-bit gray, gray+alpha, RGB, RGBA (and palette on
 * decode), non-interlaced. Enough to write frames, contact sheets and mask pictures, and to read
 * them back in tests. Spec: https://www.w3.org/TR/png/ (chunks §5, filters §7.3/§9).
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Mask2DiTError } from '../errors.js';
import { writeFileAtomic, type AtomicOptions } from './atomic.js';
import { checkImage, type Channels, type Image } from './image.js';

/** A malformed or unsupported PNG. */
export class PngError extends Mask2DiTError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super('PNG', `${file}: ${detail}`);
  }
}

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** PNG colour type for a channel count (8-bit samples). */
const COLOR_TYPE: Record<Channels, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };

// ---------------------------------------------------------------------------------------------
// CRC-32 (ISO 3309, the one zlib uses), table-driven
// ---------------------------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Filters (§9): each scanline is stored as filter type + residuals against left (a), up (b), up-left (c)
// ---------------------------------------------------------------------------------------------

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Predictor of byte i of a row for filter type f (bpp = bytes per pixel; prev = row above or zeros). */
function predict(f: number, row: Uint8Array, prev: Uint8Array, i: number, bpp: number): number {
  const a = i >= bpp ? row[i - bpp]! : 0;
  const b = prev[i]!;
  const c = i >= bpp ? prev[i - bpp]! : 0;
  switch (f) {
    case 0:
      return 0;
    case 1:
      return a;
    case 2:
      return b;
    case 3:
      return (a + b) >>> 1;
    default:
      return paeth(a, b, c);
  }
}

/** Filters one row with type f into out[1..] (out[0] = f); returns the sum of |signed residual| (the spec's heuristic). */
function filterRow(f: number, row: Uint8Array, prev: Uint8Array, bpp: number, out: Uint8Array): number {
  out[0] = f;
  let cost = 0;
  for (let i = 0; i < row.length; i++) {
    const r = (row[i]! - predict(f, row, prev, i, bpp)) & 0xff;
    out[i + 1] = r;
    cost += r < 128 ? r : 256 - r;
  }
  return cost;
}

// ---------------------------------------------------------------------------------------------
// Encode
// ---------------------------------------------------------------------------------------------

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes an 8-bit image as PNG (per-row adaptive filter, zlib level 9). Deterministic. */
export function encodePng(img: Image): Buffer {
  checkImage(img);
  const { width, height, channels, data } = img;
  const stride = width * channels;
  const raw = new Uint8Array(height * (stride + 1));
  const zero = new Uint8Array(stride);
  const trial = new Uint8Array(stride + 1);
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? data.subarray((y - 1) * stride, y * stride) : zero;
    const dst = raw.subarray(y * (stride + 1), (y + 1) * (stride + 1));
    let best = filterRow(0, row, prev, channels, dst);
    for (let f = 1; f <= 4; f++) {
      const cost = filterRow(f, row, prev, channels, trial);
      if (cost < best) {
        best = cost;
        dst.set(trial);
      }
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[channels];
  // [10] compression 0, [11] filter method 0, [12] interlace 0
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Writes `img` as a PNG file atomically; refuses an existing file unless `force`. */
export async function writePng(file: string, img: Image, opts: AtomicOptions = {}): Promise<void> {
  await writeFileAtomic(file, encodePng(img), opts);
}

/**
 * Writes RGB frames as `frame_00000.png …` into `dir` (created if missing). Refuses existing frame
 * files unless `force`. Returns the written paths.
 */
export async function writePngSequence(
  dir: string,
  frames: Iterable<Uint8Array>,
  size: { width: number; height: number },
  opts: AtomicOptions = {},
): Promise<string[]> {
  await fs.promises.mkdir(dir, { recursive: true });
  const written: string[] = [];
  let i = 0;
  for (const data of frames) {
    const file = path.join(dir, `frame_${String(i++).padStart(5, '0')}.png`);
    await writePng(file, { width: size.width, height: size.height, channels: 3, data }, opts);
    written.push(file);
  }
  return written;
}

// ---------------------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------------------

interface Header {
  width: number;
  height: number;
  colorType: number;
}

function readHeader(d: Uint8Array, file: string): Header {
  if (d.length !== 13) throw new PngError(file, `IHDR has ${d.length} bytes, expected 13`);
  const v = Buffer.from(d.buffer, d.byteOffset, d.length);
  const h = { width: v.readUInt32BE(0), height: v.readUInt32BE(4), colorType: v[9]! };
  if (h.width === 0 || h.height === 0) throw new PngError(file, `empty image ${h.width}×${h.height}`);
  if (v[8] !== 8) throw new PngError(file, `bit depth ${v[8]} unsupported (only 8)`);
  if (![0, 2, 3, 4, 6].includes(h.colorType)) throw new PngError(file, `invalid colour type ${h.colorType}`);
  if (v[10] !== 0 || v[11] !== 0) throw new PngError(file, 'unknown compression or filter method');
  if (v[12] !== 0) throw new PngError(file, 'interlaced PNGs are unsupported');
  return h;
}

/** Undoes the per-row filters in place: `raw` is height × (1 + stride) bytes; returns the pixels. */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number, file: string): Uint8Array {
  const out = new Uint8Array(height * stride);
  const zero = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    if (f > 4) throw new PngError(file, `row ${y}: invalid filter type ${f}`);
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = out.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? out.subarray((y - 1) * stride, y * stride) : zero;
    for (let i = 0; i < stride; i++) row[i] = (src[i]! + predict(f, row, prev, i, bpp)) & 0xff;
  }
  return out;
}

/** Decodes a PNG (8-bit, non-interlaced; palette images are expanded to RGB or RGBA). */
export function decodePng(bytes: Uint8Array, file = 'PNG'): Image {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length < 8 || !SIGNATURE.every((b, i) => buf[i] === b)) throw new PngError(file, 'not a PNG (bad signature)');
  let header: Header | undefined;
  let palette: Uint8Array | undefined;
  let alpha: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let pos = 8;
  for (;;) {
    if (pos + 12 > buf.length) throw new PngError(file, 'truncated (no IEND chunk)');
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (pos + 12 + len > buf.length) throw new PngError(file, `chunk ${type} truncated`);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(buf.subarray(pos + 4, pos + 8 + len)) !== buf.readUInt32BE(pos + 8 + len))
      throw new PngError(file, `chunk ${type}: CRC mismatch`);
    pos += 12 + len;
    if (type === 'IHDR') header = readHeader(data, file);
    else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') alpha = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    else if ((type.charCodeAt(0) & 0x20) === 0) throw new PngError(file, `unknown critical chunk ${type}`);
  }
  if (header === undefined) throw new PngError(file, 'missing IHDR');
  const { width, height, colorType } = header;
  const bpp = colorType === 0 || colorType === 3 ? 1 : colorType === 4 ? 2 : colorType === 2 ? 3 : 4;
  let raw: Uint8Array;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat));
  } catch (e) {
    throw new PngError(file, `bad image data: ${(e as Error).message}`);
  }
  if (raw.length !== height * (width * bpp + 1))
    throw new PngError(file, `image data has ${raw.length} bytes, expected ${height * (width * bpp + 1)}`);
  const pixels = unfilter(raw, height, width * bpp, bpp, file);
  if (colorType !== 3) return { width, height, channels: bpp as Channels, data: pixels };
  return expandPalette(pixels, width, height, palette, alpha, file);
}

function expandPalette(
  idx: Uint8Array,
  width: number,
  height: number,
  palette: Uint8Array | undefined,
  alpha: Uint8Array | undefined,
  file: string,
): Image {
  if (palette === undefined || palette.length % 3 !== 0)
    throw new PngError(file, 'palette image without a valid PLTE chunk');
  const channels: Channels = alpha === undefined ? 3 : 4;
  const data = new Uint8Array(idx.length * channels);
  for (let i = 0; i < idx.length; i++) {
    const p = idx[i]!;
    if (3 * p + 2 >= palette.length)
      throw new PngError(file, `palette index ${p} outside the ${palette.length / 3}-entry palette`);
    for (let c = 0; c < 3; c++) data[i * channels + c] = palette[3 * p + c]!;
    if (alpha !== undefined) data[i * channels + 3] = p < alpha.length ? alpha[p]! : 255;
  }
  return { width, height, channels, data };
}

/** Reads and decodes a PNG file. */
export async function readPng(file: string): Promise<Image> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw new PngError(file, `cannot read: ${(e as Error).message}`);
  }
  return decodePng(bytes, file);
}
