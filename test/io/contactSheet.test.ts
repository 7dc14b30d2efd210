import { describe, expect, it } from '@jest/globals';
import { contactSheet } from '../../src/io/contactSheet.js';
import { getPixel } from '../../src/io/image.js';

const solid = (W: number, H: number, rgb: number[]) => {
  const f = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) f.set(rgb, 3 * i);
  return f;
};

describe('contactSheet', () => {
  it('lays out one row per scene with evenly spaced frames at an integer zoom', () => {
    // scene s, frame t has colour [s * 100, t * 20, 7]
    const scenes = [0, 1].map((s) => ({
      caption: `scene caption ${s}`,
      frames: Array.from({ length: 9 }, (_, t) => solid(16, 16, [s * 100, t * 20, 7])),
    }));
    const img = contactSheet(scenes, { width: 16, height: 16, perScene: 3 });
    // zoom = ceil(128 / 16) = 8 → 128 px thumbnails, 3 per row with 6 px gaps and 8 px margins
    expect(img.width).toBe(8 + 3 * 128 + 2 * 6 + 8);
    const picked = [0, 4, 8];
    picked.forEach((t, j) => {
      const x = 8 + j * (128 + 6);
      expect(getPixel(img, x, 8)).toEqual([0, t * 20, 7]);
      expect(getPixel(img, x + 127, 8 + 127)).toEqual([0, t * 20, 7]);
    });
    // the second row starts below the first row's thumbnails, frame numbers and caption
    const col = Array.from({ length: img.height }, (_, y) => getPixel(img, 8 + 134 + 5, y).join(','));
    expect(col.indexOf('100,80,7')).toBeGreaterThan(8 + 128);
    expect(col.lastIndexOf('100,80,7') - col.indexOf('100,80,7')).toBe(127);
  });

  it('shows every frame of a short scene and refuses no scenes', () => {
    const img = contactSheet([{ frames: [solid(8, 8, [1, 2, 3])] }], { width: 8, height: 8, perScene: 4, zoom: 1 });
    expect(getPixel(img, 8, 8)).toEqual([1, 2, 3]);
    expect(() => contactSheet([], { width: 8, height: 8 })).toThrow('contact sheet: no scenes');
  });
});
