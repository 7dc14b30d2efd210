/**
 * The contact sheet: what a person looks at first. One row per scene with a few evenly spaced
 * frames (first and last included), each labelled with its frame number within the film, and the
 * scene's caption underneath the row.
 */
import { Mask2DiTError } from '../errors.js';
import {
  blit,
  createImage,
  drawText,
  LINE_HEIGHT,
  rgbImage,
  upscaleNearest,
  wrapText,
  type Color,
  type Image,
} from './image.js';

export interface SheetScene {
  /** rgb24 frames of this scene, `width*height*3` bytes each. */
  frames: readonly Uint8Array[];
  caption?: string;
}

export interface ContactSheetOptions {
  /** Frame size in pixels. */
  width: number;
  height: number;
  /** Frames shown per scene (default 4; fewer if a scene is shorter). */
  perScene?: number;
  /** Integer upscale of each thumbnail (default: so that the longer side is ≥ 128 px, at most 8×). */
  zoom?: number;
  background?: Color;
  textColor?: Color;
}

const PAD = 8;
const GAP = 6;

/** `k` indices spread evenly over `0 … n-1`, first and last included (all of them if n ≤ k). */
export function pickFrames(n: number, k: number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  if (k === 1) return [0];
  return Array.from({ length: k }, (_, i) => Math.round((i * (n - 1)) / (k - 1)));
}

/** Renders the contact sheet as an RGB image. */
export function contactSheet(scenes: readonly SheetScene[], opts: ContactSheetOptions): Image {
  const { width: W, height: H, perScene = 4, background = [24, 24, 24], textColor = [235, 235, 235] } = opts;
  if (scenes.length === 0) throw new Mask2DiTError('IMAGE', 'contact sheet: no scenes');
  if (!Number.isInteger(perScene) || perScene < 1)
    throw new Mask2DiTError('IMAGE', `contact sheet: perScene must be an integer >= 1, got ${perScene}`);
  const zoom = opts.zoom ?? Math.min(8, Math.max(1, Math.ceil(128 / Math.max(W, H))));
  const tw = W * zoom;
  const th = H * zoom;
  const cols = Math.min(perScene, Math.max(...scenes.map((s) => s.frames.length)));
  const sheetW = Math.max(2 * PAD + cols * tw + (cols - 1) * GAP, 160);
  const scale = sheetW >= 480 ? 2 : 1;
  const lineH = LINE_HEIGHT * scale;
  const captions = scenes.map((s, i) =>
    wrapText(`scene ${i + 1}: ${s.caption ?? ''}`.trimEnd(), sheetW - 2 * PAD, scale),
  );
  const rowH = captions.map((c) => th + lineH + GAP + c.length * lineH + PAD); // thumbnails, frame numbers, caption
  const img = createImage(sheetW, PAD + rowH.reduce((a, b) => a + b, 0), 3, background);

  let y = PAD;
  let first = 0; // index of this scene's first frame within the film
  scenes.forEach((scene, i) => {
    pickFrames(scene.frames.length, cols).forEach((f, j) => {
      const x = PAD + j * (tw + GAP);
      blit(img, upscaleNearest(rgbImage(W, H, scene.frames[f]!), zoom), x, y);
      drawText(img, `#${first + f}`, x, y + th + 2 * scale, textColor, scale);
    });
    captions[i]!.forEach((line, l) => drawText(img, line, PAD, y + th + lineH + GAP + l * lineH, textColor, scale));
    y += rowH[i]!;
    first += scene.frames.length;
  });
  return img;
}
