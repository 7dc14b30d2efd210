/**
 * Properties of the Mask²DiT attention mask on random layouts (1–5 scenes, per-scene text 0–6 and
 * video 1–8 tokens): symmetry, block description == dense mask == the rule, one scene = all ones.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { denseMask, maskAllows, maskBlocks } from '../../src/scene/masks.js';
import { segmentRoles, tokenRoles } from '../helpers/sceneRoles.js';
import {
  layoutTotals,
  textRange,
  tokenAt,
  videoRange,
  textStreamRange,
  videoStreamRange,
  type SceneLayout,
} from '../../src/scene/layout.js';

const SEED = 20240611;
const RUNS = 200;

/** Random layouts with per-scene lengths. */
const layoutArb = (maxScenes = 5, maxText = 6, maxVideo = 8): fc.Arbitrary<SceneLayout> =>
  fc.integer({ min: 1, max: maxScenes }).chain((S) =>
    fc.record({
      text: fc.array(fc.integer({ min: 0, max: maxText }), { minLength: S, maxLength: S }),
      video: fc.array(fc.integer({ min: 1, max: maxVideo }), { minLength: S, maxLength: S }),
    }),
  );

const opts = { seed: SEED, numRuns: RUNS };

describe('mask properties', () => {
  it('is symmetric: dense == transpose', () => {
    fc.assert(
      fc.property(layoutArb(), (l) => {
        const L = layoutTotals(l).total;
        const m = denseMask(l);
        for (let q = 0; q < L; q++) for (let k = 0; k < L; k++) if (m[q * L + k] !== m[k * L + q]) return false;
        return true;
      }),
      opts,
    );
  });

  it('follows the rule: text_i ↔ {text_i, video_i}; video_i ↔ {text_i, all video}', () => {
    fc.assert(
      fc.property(layoutArb(), (l) => {
        const L = layoutTotals(l).total;
        const m = denseMask(l);
        for (let q = 0; q < L; q++) {
          for (let k = 0; k < L; k++) {
            const a = tokenAt(l, q);
            const b = tokenAt(l, k);
            const expected = a.scene === b.scene || (a.kind === 'video' && b.kind === 'video');
            if ((m[q * L + k] === 1) !== expected || maskAllows(l, q, k) !== expected) return false;
          }
        }
        return true;
      }),
      opts,
    );
  });

  it('maskBlocks covers exactly the dense mask, each query row once, key ranges sorted and disjoint', () => {
    fc.assert(
      fc.property(layoutArb(), (l) => {
        const L = layoutTotals(l).total;
        const fromBlocks = new Uint8Array(L * L);
        const rowSeen = new Uint8Array(L);
        let prevStart = -1;
        for (const b of maskBlocks(l)) {
          expect(b.query.start).toBeGreaterThan(prevStart); // blocks in query order
          prevStart = b.query.start;
          b.keys.forEach((r, i) => {
            expect(r.end).toBeGreaterThan(r.start);
            if (i > 0) expect(r.start).toBeGreaterThan(b.keys[i - 1]!.end); // disjoint, not touching (merged)
          });
          for (let q = b.query.start; q < b.query.end; q++) {
            rowSeen[q]!++;
            for (const r of b.keys) for (let k = r.start; k < r.end; k++) fromBlocks[q * L + k]!++;
          }
        }
        expect(Array.from(rowSeen).every((c) => c === 1)).toBe(true);
        expect(Buffer.from(fromBlocks).equals(Buffer.from(denseMask(l)))).toBe(true);
      }),
      opts,
    );
  });

  it('one scene → all ones', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 1, max: 12 }), (t, v) => {
        const m = denseMask({ text: [t], video: [v] });
        return m.length === (t + v) ** 2 && m.every((x) => x === 1);
      }),
      opts,
    );
  });

  it('token counts sum: totals, ranges tile the joint sequence, roles count per stream', () => {
    fc.assert(
      fc.property(layoutArb(), fc.nat(), (l, tRaw) => {
        const S = l.video.length;
        const { textTotal, videoTotal, total } = layoutTotals(l);
        expect(textTotal).toBe(l.text.reduce((a, b) => a + b, 0));
        expect(videoTotal).toBe(l.video.reduce((a, b) => a + b, 0));
        expect(total).toBe(textTotal + videoTotal);
        let at = 0;
        for (let i = 0; i < S; i++) {
          expect(textRange(l, i)).toEqual({ start: at, end: at + l.text[i]! });
          expect(textStreamRange(l, i)).toEqual(textRange(l, i));
          at += l.text[i]!;
        }
        for (let i = 0; i < S; i++) {
          expect(videoRange(l, i)).toEqual({ start: at, end: at + l.video[i]! });
          const s = videoStreamRange(l, i);
          expect(s.start + textTotal).toBe(at);
          at += l.video[i]!;
        }
        expect(at).toBe(total);
        const target = tRaw % S;
        const roles = tokenRoles(l, target);
        expect(roles.length).toBe(total);
        expect(roles.filter((r) => r === 'target').length).toBe(l.text[target]! + l.video[target]!);
        expect(tokenRoles(l, target, 'video').length).toBe(videoTotal);
        expect(segmentRoles(l, target).filter((r) => r === 'target')).toEqual(['target']);
      }),
      opts,
    );
  });
});
