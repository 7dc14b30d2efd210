/**
 * A look at the synthetic world: a contact sheet of clips (one row per scene, one column per frame,
 * the caption above each row). `worldDemo('world.png', [1, 2, 3])` writes one.
 */
import { blit, createImage, drawText, rgbImage, LINE_HEIGHT, type Image } from '../io/image.js';
import { writePng } from '../io/png.js';
import { toUint8Frames } from './render.js';
import { sampleClip, type WorldOptions } from './world.js';

/** Contact sheet of the clips `seeds`: a caption line then the scene's frames, per scene. */
export function worldContactSheet(seeds: readonly number[], opts: WorldOptions = {}): Image {
  const clips = seeds.map((s) => sampleClip(s, opts));
  const first = clips[0];
  if (first === undefined) return createImage(1, 1);
  const { framesPerScene: T, width: W, height: H } = first;
  const gap = 2;
  const rowH = LINE_HEIGHT + 2 + H + gap;
  const rows = clips.flatMap((c) =>
    c.scenes.map((s, i) => ({ text: `#${c.seed}.${i} ${s.caption}`, frames: toUint8Frames(s.frames, T, H, W) })),
  );
  const sheet = createImage(T * (W + gap), rows.length * rowH, 3, [24, 24, 24]);
  rows.forEach((r, k) => {
    drawText(sheet, r.text, 1, k * rowH + 1, [230, 230, 230]);
    r.frames.forEach((f, t) => blit(sheet, rgbImage(W, H, f), t * (W + gap), k * rowH + LINE_HEIGHT + 2));
  });
  return sheet;
}

/** Write the contact sheet of clips `seeds` as a PNG (atomically; `force` overwrites). */
export async function worldDemo(
  file: string,
  seeds: readonly number[] = [1, 2, 3],
  opts: WorldOptions & { force?: boolean } = {},
): Promise<void> {
  const { force, ...world } = opts;
  await writePng(file, worldContactSheet(seeds, world), { force: force ?? false });
}
