/**
 * Mask²DiT's two masks, as data.
 *
 * Mask 1, the symmetric binary attention mask (`attn_msk_version` 2), over the joint sequence
 * `[text_0 .. text_{S-1} ; video_0 .. video_{S-1}]`:
 *   - a text query of scene i attends to text_i and video_i;
 *   - a video query of scene i attends to text_i and to the video of ALL scenes;
 *   - nothing else. The mask is symmetric; with one scene it is all ones.
 * It is described block-wise (`maskBlocks`: per query range, the key ranges it attends), never as an
 * L×L structure; `denseMask` exists for tests and printing and refuses large layouts.
 *
 * Mask 2, the segment-level conditional mask (scene extension, `clip_idx = k`): scene k is the target
 * segment (denoised, modulated with timestep t); every other scene is a clean conditioning segment
 * (modulated with the conditioning timestep); `renderMaskAscii(layout, { target })` prints the roles, and
 * `scenePlan` (plan.ts) gives the target's token and frame ranges.
 *
 * Reference: Tianhao-Qi/Mask2DiT `videox_fun/models/cogvideox_transformer3d.py`, `CogVideoXAttnProcessor2_2`
 * (gathers per-scene keys: text queries of scene s see `[text_s ; video_s]`, video queries `[text_s ; all video]`).
 */
import { Mask2DiTError } from '../errors.js';
import {
  allVideoRange,
  layoutTotals,
  LayoutError,
  numScenes,
  rangeLength,
  textRange,
  tokenAt,
  validateLayout,
  videoRange,
  type SceneLayout,
  type TokenKind,
  type TokenRange,
} from './layout.js';

/** A request to materialise a mask larger than the caller's limit. */
export class MaskTooLargeError extends Mask2DiTError {
  constructor(
    readonly tokens: number,
    readonly maxTokens: number,
  ) {
    super(
      'MASK_TOO_LARGE',
      `dense mask of ${tokens}×${tokens} tokens refused (limit ${maxTokens} tokens); use maskBlocks() instead`,
    );
  }
}

/** One query segment and the key ranges it attends (sorted, non-overlapping, non-empty, adjacent ones merged). */
export interface MaskBlock {
  scene: number;
  kind: TokenKind;
  /** Query rows in the joint sequence. */
  query: TokenRange;
  /** Key columns in the joint sequence. */
  keys: TokenRange[];
}

/** Drop empty ranges and merge touching ones (input sorted by start). */
function compact(ranges: TokenRange[]): TokenRange[] {
  const out: TokenRange[] = [];
  for (const r of ranges) {
    if (rangeLength(r) === 0) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.end === r.start) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}

/**
 * The mask block-wise, in joint-sequence order of the query rows: `T0 .. T{S-1}, V0 .. V{S-1}`
 * (scenes without text tokens have no text block).
 */
export function maskBlocks(layout: SceneLayout): MaskBlock[] {
  validateLayout(layout);
  const S = numScenes(layout);
  const blocks: MaskBlock[] = [];
  for (let i = 0; i < S; i++) {
    const query = textRange(layout, i);
    if (rangeLength(query) > 0)
      blocks.push({ scene: i, kind: 'text', query, keys: compact([query, videoRange(layout, i)]) });
  }
  for (let i = 0; i < S; i++) {
    blocks.push({
      scene: i,
      kind: 'video',
      query: videoRange(layout, i),
      keys: compact([textRange(layout, i), allVideoRange(layout)]),
    });
  }
  return blocks;
}

/** Whether query position q may attend to key position k (joint-sequence indices). */
export function maskAllows(layout: SceneLayout, q: number, k: number): boolean {
  const tq = tokenAt(layout, q);
  const tk = tokenAt(layout, k);
  if (tq.kind === 'video' && tk.kind === 'video') return true; // video ↔ video across all scenes
  return tq.scene === tk.scene; // everything involving text stays inside its scene
}

/** The dense mask as a row-major `Uint8Array` `[L, L]` (row = query, 1 = attends); refuses above `maxTokens`. */
export function denseMask(layout: SceneLayout, maxTokens = 4096): Uint8Array {
  const L = layoutTotals(layout).total;
  if (L > maxTokens) throw new MaskTooLargeError(L, maxTokens);
  const m = new Uint8Array(L * L);
  for (const b of maskBlocks(layout)) {
    for (let q = b.query.start; q < b.query.end; q++) {
      for (const r of b.keys) m.fill(1, q * L + r.start, q * L + r.end);
    }
  }
  return m;
}

function checkTarget(layout: SceneLayout, target: number): void {
  const S = numScenes(layout);
  if (!Number.isInteger(target) || target < 0 || target >= S)
    throw new LayoutError(`target scene ${target} outside [0, ${S})`);
}

export interface RenderOptions {
  /** 'block' (one cell per segment, default) or 'token' (one cell per token). */
  granularity?: 'block' | 'token';
  /** Target scene of the conditional mask: rows get a role column, the target's labels a `*`. */
  target?: number;
  /** Token-granularity limit (default 256 tokens). */
  maxTokens?: number;
}

const ON = '█';
const OFF = '·';

/** One segment of the joint sequence, for printing. */
interface Segment {
  label: string;
  range: TokenRange;
  scene: number;
}

function segments(layout: SceneLayout, target: number | undefined): Segment[] {
  const S = numScenes(layout);
  const mark = (i: number) => (i === target ? '*' : '');
  const segs: Segment[] = [];
  for (let i = 0; i < S; i++) segs.push({ label: `T${i}${mark(i)}`, range: textRange(layout, i), scene: i });
  for (let i = 0; i < S; i++) segs.push({ label: `V${i}${mark(i)}`, range: videoRange(layout, i), scene: i });
  return segs.filter((s) => rangeLength(s.range) > 0);
}

/**
 * The mask as text: rows are queries, columns keys, `█` attends and `·` masked; segments are labelled
 * `T<i>` / `V<i>`. With `target`, the target's labels carry `*` and every row ends with its role.
 */
export function renderMaskAscii(layout: SceneLayout, opts: RenderOptions = {}): string {
  validateLayout(layout);
  const { granularity = 'block', target, maxTokens = 256 } = opts;
  if (target !== undefined) checkTarget(layout, target);
  const segs = segments(layout, target);
  const role = (s: Segment) =>
    target === undefined ? '' : s.scene === target ? '  target (t)' : '  condition (t_cond)';
  const allows = (q: number, k: number) => maskAllows(layout, q, k);
  const w = Math.max(...segs.map((s) => s.label.length)) + 1;
  const lines: string[] = [];
  if (granularity === 'block') {
    lines.push(' '.repeat(w) + segs.map((s) => s.label.padStart(w)).join(''));
    for (const r of segs) {
      const cells = segs.map((c) => (allows(r.range.start, c.range.start) ? ON : OFF).padStart(w)).join('');
      lines.push(r.label.padEnd(w) + cells + role(r));
    }
  } else {
    const L = layoutTotals(layout).total;
    if (L > maxTokens) throw new MaskTooLargeError(L, maxTokens);
    const rw = w + String(L).length + 1;
    const gw = segs.map((s) => Math.max(rangeLength(s.range), s.label.length)); // column-group widths
    lines.push(' '.repeat(rw) + segs.map((s, g) => s.label.padEnd(gw[g]!)).join(' '));
    for (const r of segs) {
      for (let q = r.range.start; q < r.range.end; q++) {
        const group = (c: Segment, g: number) =>
          Array.from({ length: rangeLength(c.range) }, (_, j) => (allows(q, c.range.start + j) ? ON : OFF))
            .join('')
            .padEnd(gw[g]!);
        lines.push(`${r.label}:${q - r.range.start}`.padEnd(rw) + segs.map(group).join(' ') + role(r));
      }
    }
  }
  if (target !== undefined)
    lines.push(`* target scene ${target}: denoised with timestep t; other scenes are clean conditioning (t_cond)`);
  return lines.map((l) => l.trimEnd()).join('\n');
}
