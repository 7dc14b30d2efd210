import { describe, expect, it } from '@jest/globals';
import { renderAttentionImage } from '../../src/io/attentionImage.js';
import { getPixel, viridis } from '../../src/io/image.js';

describe('renderAttentionImage', () => {
  it('colours each token cell by its probability over the global maximum, with layout boundaries', () => {
    // layout: T0 = 1 token, V0 = 2 tokens → 3 × 3 matrix
    const p = Float32Array.from([0.5, 0.25, 0.25, 0, 1, 0, 0.2, 0.3, 0.5]);
    const { image, grid, bin, max } = renderAttentionImage(p, 3, 3, { layout: { text: [1], video: [2] } });
    expect(bin).toBe(1);
    expect(max).toBe(1);
    expect(grid.cell).toBe(16);
    expect(grid.colLines).toEqual([0, 17, 50]);
    for (let q = 0; q < 3; q++) {
      for (let k = 0; k < 3; k++) {
        expect(getPixel(image, grid.x + grid.colStarts[k]! + 8, grid.y + grid.rowStarts[q]! + 8)).toEqual(
          viridis(p[q * 3 + k]!),
        );
      }
    }
    expect(getPixel(image, grid.x + 17, grid.y + 5)).toEqual([200, 60, 60]); // boundary T0 | V0
  });

  it('normalises per row and applies a sqrt transform when asked', () => {
    const p = Float32Array.from([0.1, 0.4, 0.5, 0.5]);
    const { image, grid } = renderAttentionImage(p, 2, 2, { normalize: 'row', transform: 'sqrt' });
    expect(getPixel(image, grid.x + grid.colStarts[0]!, grid.y + grid.rowStarts[0]!)).toEqual(
      viridis(Math.sqrt(0.1 / 0.4)),
    );
    expect(getPixel(image, grid.x + grid.colStarts[1]!, grid.y + grid.rowStarts[1]!)).toEqual(viridis(1));
  });

  it('averages bins that never straddle a segment boundary when the matrix is too large', () => {
    const L = 300;
    const p = new Float32Array(L * L);
    for (let q = 0; q < L; q++) for (let k = 0; k < L; k++) p[q * L + k] = k < 100 ? 1 : 0;
    const r = renderAttentionImage(p, L, L, {
      rows: [
        { label: 'A', length: 100 },
        { label: 'B', length: 200 },
      ],
      cols: [
        { label: 'A', length: 100 },
        { label: 'B', length: 200 },
      ],
      maxSize: 128,
    });
    expect(r.bin).toBeGreaterThan(1);
    expect(r.grid.colLines.at(-1)! + 1).toBeLessThanOrEqual(128);
    // every column cell of segment A is max (yellow), of segment B zero (purple): no bin mixes them
    const nA = Math.ceil(100 / r.bin);
    r.grid.colStarts.forEach((c, j) =>
      expect(getPixel(r.image, r.grid.x + c, r.grid.y + r.grid.rowStarts[0]!)).toEqual(
        j < nA ? viridis(1) : viridis(0),
      ),
    );
  });

  it('names shape mismatches', () => {
    expect(() => renderAttentionImage(new Float32Array(5), 2, 3)).toThrow('has 5 values, expected 2×3');
    expect(() => renderAttentionImage(new Float32Array(9), 3, 3, { layout: { text: [1], video: [1] } })).toThrow(
      'layout has 2 tokens, the matrix is 3×3',
    );
    expect(() => renderAttentionImage(new Float32Array(4), 2, 2, { rows: [{ label: 'a', length: 3 }] })).toThrow(
      'row segments cover 3 tokens, the matrix has 2',
    );
  });
});
