/**
 * The Mask²DiT masks as data: the dense mask equals the reference's (fixture `mask2dit_attention_mask`)
 * exactly; rendering, roles, size guards and layout validation.
 */
import { describe, expect, it } from '@jest/globals';
import { denseMask, maskAllows, maskBlocks, MaskTooLargeError, renderMaskAscii } from '../../src/scene/masks.js';
import { segmentRoles, tokenRole, tokenRoles } from '../helpers/sceneRoles.js';
import {
  LayoutError,
  layoutTotals,
  tokenAt,
  uniformLayout,
  validateLayout,
  type SceneLayout,
} from '../../src/scene/layout.js';
import { get, loadFixture } from '../helpers/fixtures.js';

describe('denseMask vs the reference (attn_msk_version 2)', () => {
  it.each([
    ['mask', 3, 3, 4],
    ['mask.mask2dit_multiscene', 3, 6, 48],
  ])('%s: %i scenes × (%i text, %i video) equal exactly', async (name, S, T, V) => {
    const io = await loadFixture('mask2dit_attention_mask');
    const ref = get(io, name);
    const L = S * (T + V);
    expect(ref.shape).toEqual([L, L]);
    const m = denseMask(uniformLayout(S, T, V));
    const mismatches: string[] = [];
    for (let i = 0; i < L * L; i++) if (m[i] !== ref.data[i]) mismatches.push(`[${Math.floor(i / L)}, ${i % L}]`);
    expect(mismatches).toEqual([]);
  });
});

describe('maskBlocks', () => {
  it('describes 3 × (3 text, 4 video) as six query blocks with gathered key ranges', () => {
    const b = maskBlocks(uniformLayout(3, 3, 4)).map(
      (x) =>
        `${x.kind[0]}${x.scene} [${x.query.start},${x.query.end}) <- ${x.keys.map((r) => `[${r.start},${r.end})`).join(' ')}`,
    );
    expect(b).toEqual([
      't0 [0,3) <- [0,3) [9,13)',
      't1 [3,6) <- [3,6) [13,17)',
      't2 [6,9) <- [6,9) [17,21)',
      'v0 [9,13) <- [0,3) [9,21)',
      'v1 [13,17) <- [3,6) [9,21)',
      'v2 [17,21) <- [6,21)', // text_2 touches video_0: merged into one slice
    ]);
  });

  it('one scene: one text and one video block, both over the whole (merged) sequence', () => {
    const b = maskBlocks({ text: [2], video: [5] });
    expect(b.map((x) => x.keys)).toEqual([[{ start: 0, end: 7 }], [{ start: 0, end: 7 }]]);
  });

  it('a scene without text has no text block', () => {
    expect(maskBlocks({ text: [0, 2], video: [1, 1] }).map((x) => `${x.kind}${x.scene}`)).toEqual([
      'text1',
      'video0',
      'video1',
    ]);
  });
});

describe('renderMaskAscii', () => {
  const l = uniformLayout(3, 3, 4);

  it('block granularity', () => {
    expect(renderMaskAscii(l)).toBe(
      [
        '    T0 T1 T2 V0 V1 V2',
        'T0   █  ·  ·  █  ·  ·',
        'T1   ·  █  ·  ·  █  ·',
        'T2   ·  ·  █  ·  ·  █',
        'V0   █  ·  ·  █  █  █',
        'V1   ·  █  ·  █  █  █',
        'V2   ·  ·  █  █  █  █',
      ].join('\n'),
    );
  });

  it('block granularity with a conditional target marks target vs conditioning segments', () => {
    const lines = renderMaskAscii(l, { target: 2 }).split('\n');
    expect(lines[0]).toBe('      T0  T1 T2*  V0  V1 V2*');
    expect(lines[3]).toBe('T2*    ·   ·   █   ·   ·   █  target (t)');
    expect(lines[4]).toBe('V0     █   ·   ·   █   █   █  condition (t_cond)');
    expect(lines[7]).toMatch(/^\* target scene 2/);
  });

  it('token granularity: one row per token, cells agree with the dense mask', () => {
    const small: SceneLayout = { text: [1, 2], video: [2, 3] };
    const lines = renderMaskAscii(small, { granularity: 'token' }).split('\n');
    expect(lines[0]).toBe('     T0 T1 V0 V1');
    expect(lines[1]).toBe('T0:0 █  ·· ██ ···');
    expect(lines[4]).toBe('V0:0 █  ·· ██ ███');
    const L = layoutTotals(small).total;
    const m = denseMask(small);
    lines.slice(1).forEach((line, q) => {
      const cells = line.slice(5).replace(/ /g, '');
      expect(cells).toBe(Array.from({ length: L }, (_, k) => (m[q * L + k] ? '█' : '·')).join(''));
    });
  });

  it('refuses token granularity above maxTokens', () => {
    expect(() => renderMaskAscii(uniformLayout(3, 6, 100), { granularity: 'token' })).toThrow(MaskTooLargeError); // 318 > 256
    expect(() => renderMaskAscii(uniformLayout(3, 6, 48), { granularity: 'token', maxTokens: 161 })).toThrow(/162×162/);
    expect(renderMaskAscii(uniformLayout(3, 6, 48), { granularity: 'token', maxTokens: 200 }).split('\n')).toHaveLength(
      163,
    );
  });
});

describe('size guard and layout validation', () => {
  it('denseMask refuses layouts above maxTokens with a typed error', () => {
    const big = uniformLayout(4, 226, 1350); // 6304 tokens
    expect(() => denseMask(big)).toThrow(MaskTooLargeError);
    expect(() => denseMask(uniformLayout(3, 3, 4), 20)).toThrow(/21×21 tokens refused \(limit 20/);
    expect(denseMask(uniformLayout(3, 3, 4), 21)).toHaveLength(441);
  });

  it.each([
    [{ text: [], video: [] }, /at least one scene/],
    [{ text: [1], video: [1, 2] }, /text has 1 scenes but video has 2/],
    [{ text: [-1], video: [2] }, /text\[0\] must be an integer >= 0/],
    [{ text: [1.5], video: [2] }, /text\[0\]/],
    [{ text: [1, 1], video: [2, 0] }, /video\[1\] must be an integer >= 1/],
  ])('validateLayout(%j) throws LayoutError', (layout, message) => {
    expect(() => validateLayout(layout)).toThrow(LayoutError);
    expect(() => validateLayout(layout)).toThrow(message);
  });

  it('uniformLayout validates, position and scene lookups are range-checked', () => {
    expect(() => uniformLayout(0, 3, 4)).toThrow(LayoutError);
    const l = uniformLayout(2, 1, 2);
    expect(tokenAt(l, 0)).toEqual({ scene: 0, kind: 'text' });
    expect(tokenAt(l, 4)).toEqual({ scene: 1, kind: 'video' });
    expect(() => tokenAt(l, 6)).toThrow(LayoutError);
    expect(() => segmentRoles(l, 2)).toThrow(LayoutError);
  });
});

describe('single entries and roles', () => {
  const l = uniformLayout(3, 3, 4); // text 0..8, video 9..20

  it('maskAllows', () => {
    expect(maskAllows(l, 0, 2)).toBe(true); // text_0 → text_0
    expect(maskAllows(l, 0, 3)).toBe(false); // text_0 → text_1
    expect(maskAllows(l, 0, 9)).toBe(true); // text_0 → video_0
    expect(maskAllows(l, 0, 13)).toBe(false); // text_0 → video_1
    expect(maskAllows(l, 13, 20)).toBe(true); // video_1 → video_2
    expect(maskAllows(l, 13, 0)).toBe(false); // video_1 → text_0
    expect(maskAllows(l, 13, 4)).toBe(true); // video_1 → text_1
  });

  it('segment and token roles for target scene 1', () => {
    expect(segmentRoles(l, 1)).toEqual(['condition', 'target', 'condition']);
    expect(tokenRole(l, 1, 4)).toBe('target');
    expect(tokenRole(l, 1, 9)).toBe('condition');
    expect(tokenRole(l, 1, 14)).toBe('target');
    const roles = tokenRoles(l, 1);
    expect(roles.map((r) => (r === 'target' ? 'x' : '.')).join('')).toBe('...xxx.......xxxx....');
    expect(tokenRoles(l, 1, 'text')).toEqual([
      'condition',
      'condition',
      'condition',
      'target',
      'target',
      'target',
      'condition',
      'condition',
      'condition',
    ]);
  });
});
