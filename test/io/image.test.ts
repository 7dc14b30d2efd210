import { describe, expect, it } from '@jest/globals';
import {
  blit,
  createImage,
  drawText,
  fillRect,
  getPixel,
  textWidth,
  toRgb,
  upscaleNearest,
  viridis,
  wrapText,
} from '../../src/io/image.js';
import { pickFrames } from '../../src/io/contactSheet.js';

/** The image's ink as rows of '#' / '.', for reading glyphs in assertions. */
function ink(img: ReturnType<typeof createImage>): string[] {
  return Array.from({ length: img.height }, (_, y) =>
    Array.from({ length: img.width }, (_, x) => (img.data[(y * img.width + x) * img.channels] ? '#' : '.')).join(''),
  );
}

describe('raster helpers', () => {
  it('fillRect clips to the image', () => {
    const img = createImage(4, 3, 1);
    fillRect(img, -1, 1, 3, 5, [9]);
    expect(ink(img)).toEqual(['....', '##..', '##..']);
  });

  it('blit clips and upscaleNearest repeats pixels', () => {
    const src = createImage(2, 1, 1);
    src.data.set([1, 2]);
    const up = upscaleNearest(src, 2);
    expect([...up.data]).toEqual([1, 1, 2, 2, 1, 1, 2, 2]);
    const dst = createImage(3, 2, 1);
    blit(dst, up, 1, 1);
    expect([...dst.data]).toEqual([0, 0, 0, 0, 1, 1]);
  });

  it('toRgb expands gray', () => {
    const g = createImage(1, 1, 1, [7]);
    expect([...toRgb(g).data]).toEqual([7, 7, 7]);
  });

  it('refuses a colour with the wrong number of channels', () => {
    expect(() => fillRect(createImage(1, 1, 3), 0, 0, 1, 1, [1])).toThrow(
      'colour [1] has 1 values, the image has 3 channels',
    );
  });
});

describe('bitmap font', () => {
  it('draws "A" and "g" at scale 1 with exact pixels', () => {
    const img = createImage(11, 7, 1);
    drawText(img, 'Ag', 0, 0, [255]);
    // prettier-ignore
    expect(ink(img)).toEqual([
      '.###.......',
      '#...#..####',
      '#...#.#...#',
      '#...#.#...#',
      '#####..####',
      '#...#.....#',
      '#...#..###.',
    ]);
  });

  it('scales by an integer factor', () => {
    const img = createImage(10, 14, 1);
    drawText(img, '.', 0, 0, [1], 2);
    expect(ink(img).slice(10)).toEqual(['..####....', '..####....', '..####....', '..####....']);
    expect(textWidth('ab', 2)).toBe(22);
  });

  it('renders unknown characters as "?"', () => {
    const a = createImage(5, 7, 1);
    const b = createImage(5, 7, 1);
    drawText(a, 'é', 0, 0, [1]);
    drawText(b, '?', 0, 0, [1]);
    expect(a.data).toEqual(b.data);
  });

  it('wraps at spaces and cuts long words', () => {
    expect(wrapText('a red triangle slides left', 6 * 10 - 1)).toEqual(['a red', 'triangle', 'slides', 'left']);
    expect(wrapText('abcdefghijkl', 6 * 5 - 1)).toEqual(['abcde', 'fghij', 'kl']);
  });
});

describe('viridis', () => {
  it('maps 0, 1 and out-of-range values to the ends', () => {
    expect(viridis(0)).toEqual([68, 1, 84]);
    expect(viridis(1)).toEqual([253, 231, 37]);
    expect(viridis(-3)).toEqual(viridis(0));
    expect(viridis(7)).toEqual(viridis(1));
    expect(viridis(Number.NaN)).toEqual(viridis(0));
  });
});

describe('pickFrames', () => {
  it('spreads evenly and includes both ends', () => {
    expect(pickFrames(9, 4)).toEqual([0, 3, 5, 8]);
    expect(pickFrames(3, 4)).toEqual([0, 1, 2]);
    expect(pickFrames(49, 1)).toEqual([0]);
  });
});

describe('getPixel', () => {
  it('reads back what fillRect wrote', () => {
    const img = createImage(3, 3, 3, [1, 2, 3]);
    fillRect(img, 1, 1, 1, 1, [9, 8, 7]);
    expect(getPixel(img, 1, 1)).toEqual([9, 8, 7]);
    expect(getPixel(img, 0, 2)).toEqual([1, 2, 3]);
  });
});
