import { describe, expect, it } from '@jest/globals';
import { getPixel, type Image } from '../../src/io/image.js';
import { MASK_COLORS, renderMaskImage } from '../../src/io/maskImage.js';
import { crc32, decodePng, encodePng } from '../../src/io/png.js';
import { denseMask, maskAllows } from '../../src/scene/masks.js';
import { layoutTotals, uniformLayout, type SceneLayout } from '../../src/scene/layout.js';

/** Every pixel of the w×h rectangle at (x, y) has colour `c`. */
function rectIs(img: Image, x: number, y: number, w: number, h: number, c: readonly number[]): boolean {
  for (let yy = y; yy < y + h; yy++)
    for (let xx = x; xx < x + w; xx++) if (getPixel(img, xx, yy).some((v, i) => v !== c[i])) return false;
  return true;
}

// Two scenes: T0 = 2 text tokens, T1 = 1, V0 = 3 video tokens, V1 = 2 → joint sequence of 8 tokens.
const layout: SceneLayout = { text: [2, 1], video: [3, 2] };

describe('renderMaskImage, token granularity (known layout, exact pixels)', () => {
  const { image, grid, granularity } = renderMaskImage(layout, { cell: 4, legend: false });

  it('has the documented geometry', () => {
    expect(granularity).toBe('token');
    // x = PAD 4 + widest row label ("T0" = 11 px) + PAD 4; y = PAD + 2 staggered label rows × (7 + PAD)
    expect([grid.x, grid.y]).toEqual([19, 26]);
    // segment lines at 0, 9, 14, 27, 36; cells 4 px after each line
    expect(grid.colLines).toEqual([0, 9, 14, 27, 36]);
    expect(grid.colStarts).toEqual([1, 5, 10, 15, 19, 23, 28, 32]);
    expect(grid.rowStarts).toEqual(grid.colStarts);
    expect([image.width, image.height]).toEqual([19 + 37 + 4, 26 + 37 + 4]);
  });

  it('draws every (query, key) cell light when the mask allows it and dark when not', () => {
    const L = layoutTotals(layout).total;
    const m = denseMask(layout);
    for (let q = 0; q < L; q++) {
      for (let k = 0; k < L; k++) {
        const c = m[q * L + k] ? MASK_COLORS.allowed : MASK_COLORS.masked;
        expect(rectIs(image, grid.x + grid.colStarts[k]!, grid.y + grid.rowStarts[q]!, 4, 4, c)).toBe(true);
      }
    }
    // spot checks by hand: text T0 → key V1 masked; video V1 → key V0 allowed; T1 → T1 allowed
    expect(getPixel(image, 19 + 28, 26 + 1)).toEqual([...MASK_COLORS.masked]);
    expect(getPixel(image, 19 + 15, 26 + 32)).toEqual([...MASK_COLORS.allowed]);
    expect(getPixel(image, 19 + 10, 26 + 10)).toEqual([...MASK_COLORS.allowed]);
  });

  it('draws scene boundary lines between segments', () => {
    for (const l of grid.colLines) expect(rectIs(image, grid.x + l, grid.y, 1, 37, MASK_COLORS.line)).toBe(true);
    for (const l of grid.rowLines) expect(rectIs(image, grid.x, grid.y + l, 37, 1, MASK_COLORS.line)).toBe(true);
  });

  it('labels the axes T0 T1 V0 V1', () => {
    // row label "T0" at x = 4, centred on T0's 8 px rows: y = 26 + 1 + 0; the T's top bar is 5 px wide
    expect(rectIs(image, 4, 27, 5, 1, MASK_COLORS.text)).toBe(true);
    // column label "T0" centred over its 8 px: x = 19 + 1 + floor((8 - 11) / 2) = 18, first label row y = 4
    expect(rectIs(image, 18, 4, 5, 1, MASK_COLORS.text)).toBe(true);
    // "T1" is too wide for its 4 px column, so column labels alternate rows: T1 sits on the second row (y = 15)
    expect(rectIs(image, 19 + 10 + Math.floor((4 - 11) / 2), 15, 5, 1, MASK_COLORS.text)).toBe(true);
  });

  it('is deterministic (pixel digest)', () => {
    const again = renderMaskImage(layout, { cell: 4, legend: false }).image;
    expect(again.data).toEqual(image.data);
    expect(decodePng(encodePng(image))).toEqual(image);
    // Update only on an intended change of the picture.
    expect(crc32(image.data).toString(16)).toMatchInlineSnapshot(`"7f23f42b"`);
  });
});

describe('renderMaskImage with a conditional target', () => {
  it('tints the rows of conditioning scenes and marks the target', () => {
    const { image, grid, segments } = renderMaskImage(layout, { cell: 4, target: 1, legend: false });
    expect(segments.map((s) => s.label)).toEqual(['T0', 'T1*', 'V0', 'V1*']);
    const L = layoutTotals(layout).total;
    const scene = [0, 0, 1, 0, 0, 0, 1, 1]; // scene of each joint token
    for (let q = 0; q < L; q++) {
      for (let k = 0; k < L; k++) {
        const ok = maskAllows(layout, q, k);
        const cond = scene[q] !== 1;
        const c = cond
          ? ok
            ? MASK_COLORS.conditionAllowed
            : MASK_COLORS.conditionMasked
          : ok
            ? MASK_COLORS.allowed
            : MASK_COLORS.masked;
        expect(getPixel(image, grid.x + grid.colStarts[k]!, grid.y + grid.rowStarts[q]!)).toEqual([...c]);
      }
    }
  });

  it('rejects a target outside the layout', () => {
    expect(() => renderMaskImage(layout, { target: 2 })).toThrow('target scene 2 outside [0, 2)');
  });
});

describe('renderMaskImage at scale', () => {
  it('switches to one cell per segment for the reference layout and stays under 2048 px', () => {
    const big = uniformLayout(3, 226, 13 * 30 * 45); // 3 scenes of CogVideoX-2B size
    const { image, grid, granularity, segments } = renderMaskImage(big);
    expect(granularity).toBe('block');
    expect(grid.colStarts).toHaveLength(6);
    expect(Math.max(image.width, image.height)).toBeLessThanOrEqual(2048 + 400);
    segments.forEach((r, i) =>
      segments.forEach((c, j) => {
        const ok = maskAllows(big, r.cells[0]!.start, c.cells[0]!.start);
        expect(getPixel(image, grid.x + grid.colStarts[j]! + 1, grid.y + grid.rowStarts[i]! + 1)).toEqual([
          ...(ok ? MASK_COLORS.allowed : MASK_COLORS.masked),
        ]);
      }),
    );
  });

  it('uses token cells of at least 2 px while they fit', () => {
    const r = renderMaskImage(uniformLayout(2, 8, 200));
    expect(r.granularity).toBe('token');
    expect(r.grid.cell).toBeGreaterThanOrEqual(2);
    expect(r.grid.colLines.at(-1)! + 1).toBeLessThanOrEqual(2048);
  });
});
