/** The loss curve as a PNG: raw losses in grey, a running mean in blue, log-scaled y axis, labelled. */
import { createImage, drawText, fillRect, type Image } from '../io/image.js';
import { writePng } from '../io/png.js';

export function lossCurveImage(losses: number[], title: string, width = 640, height = 320): Image {
  const img = createImage(width, height, 3, [255, 255, 255]);
  const [l, r, t, b] = [56, 12, 22, 28];
  const pw = width - l - r;
  const ph = height - t - b;
  fillRect(img, l, t + ph, pw, 1, [0, 0, 0]);
  fillRect(img, l, t, 1, ph, [0, 0, 0]);
  drawText(img, title, l, 6, [0, 0, 0]);
  const finite = losses.filter((v) => Number.isFinite(v) && v > 0);
  if (finite.length === 0) return img;
  const lo = Math.log10(Math.min(...finite));
  const hi = Math.log10(Math.max(...finite));
  const span = Math.max(hi - lo, 1e-6);
  const x = (i: number) => l + Math.round((i / Math.max(1, losses.length - 1)) * (pw - 1));
  const y = (v: number) => t + Math.round((1 - (Math.log10(v) - lo) / span) * (ph - 1));
  const plot = (vals: number[], color: number[]) =>
    vals.forEach((v, i) => Number.isFinite(v) && v > 0 && fillRect(img, x(i), y(v), 2, 2, color));
  plot(losses, [190, 190, 190]);
  const k = Math.max(1, Math.round(losses.length / 50));
  plot(
    losses.map((_, i) => losses.slice(Math.max(0, i - k + 1), i + 1).reduce((a, c) => a + c, 0) / Math.min(k, i + 1)),
    [30, 80, 200],
  );
  drawText(img, (10 ** hi).toPrecision(3), 2, t, [0, 0, 0]);
  drawText(img, (10 ** lo).toPrecision(3), 2, t + ph - 7, [0, 0, 0]);
  drawText(img, `step ${losses.length}`, width - r - 60, height - 12, [0, 0, 0]);
  return img;
}

export async function writeLossCurve(file: string, losses: number[], title: string): Promise<void> {
  await writePng(file, lossCurveImage(losses, title), { force: true });
}
