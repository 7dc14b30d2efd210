/**
 * A tiny 8-bit raster: create, fill rectangles, blit, nearest upscale, text in a built-in 5×7
 * bitmap font (scalable by an integer factor) and a viridis-like colour map. Enough for contact
 * sheets, mask pictures and attention heatmaps; all drawing clips to the image and is deterministic.
 */
import { Mask2DiTError, ShapeError } from '../errors.js';

/** Channels per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
export type Channels = 1 | 2 | 3 | 4;

/** Row-major interleaved 8-bit pixels: `data[(y * width + x) * channels + c]`. */
export interface Image {
  width: number;
  height: number;
  channels: Channels;
  data: Uint8Array;
}

/** A colour with one value per channel of the image it is drawn on (gray: [v], RGB: [r, g, b]). */
export type Color = readonly number[];

/** Throws a ShapeError unless the image is well-formed. */
export function checkImage(img: Image, name = 'image'): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new ShapeError(name, `size must be positive integers, got ${width}×${height}`);
  if (![1, 2, 3, 4].includes(channels)) throw new ShapeError(name, `channels must be 1..4, got ${channels}`);
  if (data.length !== width * height * channels)
    throw new ShapeError(
      name,
      `has ${data.length} bytes, expected ${width}×${height}×${channels} = ${width * height * channels}`,
    );
}

/** A new image filled with `fill` (default black / transparent). */
export function createImage(width: number, height: number, channels: Channels = 3, fill?: Color): Image {
  const img: Image = { width, height, channels, data: new Uint8Array(Math.max(0, width * height * channels)) };
  checkImage(img);
  if (fill !== undefined) fillRect(img, 0, 0, width, height, fill);
  return img;
}

/** An RGB image over existing pixels (no copy). */
export function rgbImage(width: number, height: number, data: Uint8Array): Image {
  const img: Image = { width, height, channels: 3, data };
  checkImage(img, 'frame');
  return img;
}

function checkColor(img: Image, color: Color): void {
  if (color.length !== img.channels)
    throw new Mask2DiTError(
      'IMAGE',
      `colour [${color.join(', ')}] has ${color.length} values, the image has ${img.channels} channels`,
    );
}

/** Fills the rectangle `[x, x+w) × [y, y+h)`, clipped to the image. */
export function fillRect(img: Image, x: number, y: number, w: number, h: number, color: Color): void {
  checkColor(img, color);
  const x0 = Math.max(0, Math.floor(x));
  const y0 = Math.max(0, Math.floor(y));
  const x1 = Math.min(img.width, Math.floor(x + w));
  const y1 = Math.min(img.height, Math.floor(y + h));
  if (x1 <= x0 || y1 <= y0) return;
  const C = img.channels;
  const row = new Uint8Array((x1 - x0) * C);
  for (let i = 0; i < x1 - x0; i++) row.set(color, i * C);
  for (let yy = y0; yy < y1; yy++) img.data.set(row, (yy * img.width + x0) * C);
}

/** Sets one pixel (ignored outside the image). */
export function setPixel(img: Image, x: number, y: number, color: Color): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  img.data.set(color, (y * img.width + x) * img.channels);
}

/** The pixel at (x, y) as an array of channel values. */
export function getPixel(img: Image, x: number, y: number): number[] {
  const i = (y * img.width + x) * img.channels;
  return Array.from(img.data.subarray(i, i + img.channels));
}

/** Copies `src` into `dst` with its top-left corner at (x, y), clipped; channel counts must match. */
export function blit(dst: Image, src: Image, x: number, y: number): void {
  if (src.channels !== dst.channels)
    throw new Mask2DiTError('IMAGE', `blit: source has ${src.channels} channels, destination ${dst.channels}`);
  const C = dst.channels;
  const sx0 = Math.max(0, -x);
  const sx1 = Math.min(src.width, dst.width - x);
  if (sx1 <= sx0) return;
  for (let sy = Math.max(0, -y); sy < Math.min(src.height, dst.height - y); sy++) {
    const from = src.data.subarray((sy * src.width + sx0) * C, (sy * src.width + sx1) * C);
    dst.data.set(from, ((sy + y) * dst.width + x + sx0) * C);
  }
}

/** Nearest-neighbour upscale by an integer factor. */
export function upscaleNearest(img: Image, factor: number): Image {
  if (!Number.isInteger(factor) || factor < 1)
    throw new Mask2DiTError('IMAGE', `upscale factor must be an integer >= 1, got ${factor}`);
  if (factor === 1) return { ...img, data: img.data.slice() };
  const { width, height, channels: C } = img;
  const out = createImage(width * factor, height * factor, C);
  const row = new Uint8Array(out.width * C);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const px = img.data.subarray((y * width + x) * C, (y * width + x + 1) * C);
      for (let k = 0; k < factor; k++) row.set(px, (x * factor + k) * C);
    }
    for (let k = 0; k < factor; k++) out.data.set(row, (y * factor + k) * out.width * C);
  }
  return out;
}

/** Gray / gray+alpha / RGBA → RGB (alpha dropped). */
export function toRgb(img: Image): Image {
  if (img.channels === 3) return img;
  const out = createImage(img.width, img.height, 3);
  for (let i = 0; i < img.width * img.height; i++) {
    const s = i * img.channels;
    const gray = img.channels <= 2;
    out.data[3 * i] = img.data[s]!;
    out.data[3 * i + 1] = img.data[gray ? s : s + 1]!;
    out.data[3 * i + 2] = img.data[gray ? s : s + 2]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 5×7 bitmap font, printable ASCII 32..126. Each glyph is 7 rows of 5 bits as 2 hex digits,
// bit 4 (0x10) = leftmost column. Glyph cell: 5×7 ink, advance 6, line height 9 (scaled).
// ---------------------------------------------------------------------------------------------

// prettier-ignore
const FONT = [
  '00000000000000', '04040404040004', '0a0a0a00000000', '0a0a1f0a1f0a0a', '040f140e051e04', '18190204081303', '0c12140815120d', '0c040800000000',
  '02040808080402', '08040202020408', '0004150e150400', '0004041f040400', '000000000c0408', '0000001f000000', '00000000000c0c', '00010204081000',
  '0e11131519110e', '040c040404040e', '0e11010204081f', '1f02040201110e', '02060a121f0202', '1f101e0101110e', '0608101e11110e', '1f010204080808',
  '0e11110e11110e', '0e11110f01020c', '000c0c000c0c00', '000c0c000c0408', '02040810080402', '00001f001f0000', '08040201020408', '0e110102040004',
  '0e11010d15150e', '0e1111111f1111', '1e11111e11111e', '0e11101010110e', '1c12111111121c', '1f10101e10101f', '1f10101e101010', '0e11101711110f',
  '1111111f111111', '0e04040404040e', '0702020202120c', '11121418141211', '1010101010101f', '111b1515111111', '11111915131111', '0e11111111110e',
  '1e11111e101010', '0e11111115120d', '1e11111e141211', '0f10100e01011e', '1f040404040404', '1111111111110e', '11111111110a04', '1111111515150a',
  '11110a040a1111', '1111110a040404', '1f01020408101f', '0e08080808080e', '00100804020100', '0e02020202020e', '040a1100000000', '0000000000001f',
  '08040200000000', '00000e010f110f', '1010161911111e', '00000e1010110e', '01010d1311110f', '00000e111f100e', '0609081c080808', '000f11110f010e',
  '10101619111111', '04000c0404040e', '0200060202120c', '10101214181412', '0c04040404040e', '00001a15151111', '00001619111111', '00000e1111110e',
  '00001e111e1010', '00000d130f0101', '00001619101010', '00000e100e011e', '08081c08080906', '0000111111130d', '00001111110a04', '0000111115150a',
  '0000110a040a11', '000011110f010e', '00001f0204081f', '02040408040402', '04040404040404', '08040402040408', '00000815020000',
];

/** Horizontal advance of one glyph at scale 1 (5 px ink + 1 px gap). */
export const GLYPH_ADVANCE = 6;
/** Glyph ink height at scale 1. */
export const GLYPH_HEIGHT = 7;
/** Line height at scale 1 (7 px ink + 2 px gap). */
export const LINE_HEIGHT = 9;

function glyphRows(ch: string): number[] {
  const code = ch.charCodeAt(0);
  const hex = FONT[code >= 32 && code <= 126 ? code - 32 : '?'.charCodeAt(0) - 32]!;
  return Array.from({ length: 7 }, (_, r) => parseInt(hex.slice(2 * r, 2 * r + 2), 16));
}

/** Width in pixels of `text` drawn at `scale` (no trailing gap). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

/** Draws one line of text with its top-left ink corner at (x, y); non-ASCII characters render as '?'. */
export function drawText(img: Image, text: string, x: number, y: number, color: Color, scale = 1): void {
  if (!Number.isInteger(scale) || scale < 1)
    throw new Mask2DiTError('IMAGE', `text scale must be an integer >= 1, got ${scale}`);
  let cx = x;
  for (const ch of text) {
    const rows = glyphRows(ch);
    for (let r = 0; r < 7; r++) {
      for (let c = 0; c < 5; c++) {
        if (rows[r]! & (0x10 >> c)) fillRect(img, cx + c * scale, y + r * scale, scale, scale, color);
      }
    }
    cx += GLYPH_ADVANCE * scale;
  }
}

/** Splits `text` into lines of at most `maxWidth` pixels at `scale`, breaking at spaces (long words are cut). */
export function wrapText(text: string, maxWidth: number, scale = 1): string[] {
  const perLine = Math.max(1, Math.floor((maxWidth / scale + 1) / GLYPH_ADVANCE));
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter((w) => w !== '')) {
    while (word.length > perLine) {
      if (line !== '') lines.push(line);
      lines.push(word.slice(0, perLine));
      word = word.slice(perLine);
      line = '';
    }
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= perLine) line += ' ' + word;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Colour map: viridis sampled at 9 points, linear in between (perceptually ordered, colour-blind safe)
// ---------------------------------------------------------------------------------------------

// prettier-ignore
const VIRIDIS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];

/** Maps v ∈ [0, 1] (clamped; NaN → 0) to an RGB colour of the viridis map. */
export function viridis(v: number): [number, number, number] {
  const t = Number.isNaN(v) ? 0 : Math.min(1, Math.max(0, v)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const f = t - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + f * (b[c]! - a[c]!))) as [number, number, number];
}
