/** `mask2dit mask`: the PNG's cells follow the dual-mask rule for a known layout; `--ascii` prints it. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { getPixel } from '../../src/io/image.js';
import { MASK_COLORS, renderMaskImage } from '../../src/io/maskImage.js';
import { readPng } from '../../src/io/png.js';
import { uniformLayout } from '../../src/scene/layout.js';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-mask-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The rule itself, written independently of the renderer: token → (scene, kind) in `[T0 T1 T2 ; V0 V1 V2]`. */
function expected(S: number, T: number, V: number, q: number, k: number): boolean {
  const at = (i: number) =>
    i < S * T ? { scene: Math.floor(i / T), text: true } : { scene: Math.floor((i - S * T) / V), text: false };
  const a = at(q);
  const b = at(k);
  if (a.text) return a.scene === b.scene; // text_i sees text_i and video_i
  return b.text ? a.scene === b.scene : true; // video_i sees text_i and all video
}

describe('mask', () => {
  test('PNG: every cell of a 3-scene layout (2 text + 3 video tokens) is light exactly where the dual mask attends', async () => {
    const out = path.join(dir, 'mask.png');
    const r = runCli(['mask', '--scenes', '3', '--text', '2', '--video', '3', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/wrote .*mask\.png .*15 tokens, one cell per token/);
    const img = await readPng(out);
    const { grid, image } = renderMaskImage(uniformLayout(3, 2, 3)); // geometry only: where the cells are
    expect([img.width, img.height]).toEqual([image.width, image.height]);
    const L = 15;
    expect(grid.rowStarts).toHaveLength(L);
    for (let q = 0; q < L; q++) {
      for (let k = 0; k < L; k++) {
        const x = grid.x + grid.colStarts[k]! + Math.floor(grid.cell / 2);
        const y = grid.y + grid.rowStarts[q]! + Math.floor(grid.cell / 2);
        expect(getPixel(img, x, y)).toEqual([...(expected(3, 2, 3, q, k) ? MASK_COLORS.allowed : MASK_COLORS.masked)]);
      }
    }
    // refuses to overwrite without --force
    const again = runCli(['mask', '--scenes', '3', '--text', '2', '--video', '3', '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/mask\.png: already exists/);
  });

  test('--target k tints the conditioning rows; --ascii prints the mask with roles', async () => {
    const out = path.join(dir, 'cond.png');
    const r = runCli([
      'mask',
      '--scenes',
      '2',
      '--text',
      '1',
      '--video',
      '2',
      '--target',
      '1',
      '--out',
      out,
      '--ascii',
    ]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/T0\s+T1\*\s+V0\s+V1\*/);
    const row = (label: string) => lines.find((l) => l.startsWith(label))?.replace(/\s+/g, ' ');
    expect(row('T0:0')).toBe('T0:0 █ · ██ ·· condition (t_cond)'); // text_0 sees text_0 and video_0
    expect(row('V1*:1')).toBe('V1*:1 · █ ██ ██ target (t)'); // video_1 sees text_1 and all video
    expect(lines[lines.length - 1]).toMatch(/\* target scene 1/);
    const img = await readPng(out);
    const { grid } = renderMaskImage(uniformLayout(2, 1, 2), { target: 1 });
    const cell = (q: number, k: number) =>
      getPixel(img, grid.x + grid.colStarts[k]! + 1, grid.y + grid.rowStarts[q]! + 1);
    expect(cell(0, 0)).toEqual([...MASK_COLORS.conditionAllowed]); // T0 → T0, scene 0 conditions
    expect(cell(0, 1)).toEqual([...MASK_COLORS.conditionMasked]); // T0 → T1
    expect(cell(1, 3)).toEqual([...MASK_COLORS.masked]); // T1 → V0: target row, masked
    expect(cell(5, 2)).toEqual([...MASK_COLORS.allowed]); // V1 → V0
  });

  test('bad numbers are one-line errors, exit 2', () => {
    const r = runCli(['mask', '--scenes', '0', '--text', '2', '--video', '3', '--ascii']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--scenes: expected an integer in \[1, 1000\], got "0"/);
    const t = runCli(['mask', '--scenes', '2', '--text', '2', '--video', '3', '--target', '2', '--ascii']);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/--target: expected an integer in \[0, 1\], got "2"/);
  });
});
