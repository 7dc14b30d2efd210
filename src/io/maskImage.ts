/**
 * The dual attention mask as a picture: rows are queries, columns keys, over the joint sequence
 * `[T0 … T{S-1} ; V0 … V{S-1}]` (labels 0-based, as in `renderMaskAscii`). Light cells attend, dark
 * cells are masked, red lines separate segments. With a conditional target k, rows of conditioning
 * scenes are tinted blue (they are modulated with t_cond) and the target's labels carry `*` in orange.
 *
 * Small layouts get one cell per token (`token`); layouts whose token grid would exceed `maxSize`
 * px at 2 px per token get one cell per segment (`block`). Geometry: see `segmentGrid.ts`.
 */
import type { Color, Image } from './image.js';
import { gridExtent, renderSegmentGrid, type AxisSegment, type GridGeometry } from './segmentGrid.js';
import { maskAllows } from '../scene/masks.js';
import {
  LayoutError,
  layoutTotals,
  numScenes,
  textRange,
  tokenAt,
  validateLayout,
  videoRange,
  type SceneLayout,
} from '../scene/layout.js';

export const MASK_COLORS = {
  background: [255, 255, 255],
  text: [0, 0, 0],
  line: [200, 60, 60],
  allowed: [232, 232, 232],
  masked: [48, 48, 48],
  /** Allowed / masked cells in rows of conditioning scenes (when a target is given). */
  conditionAllowed: [176, 204, 240],
  conditionMasked: [36, 52, 92],
  targetLabel: [220, 120, 0],
  conditionLabel: [40, 90, 200],
} as const satisfies Record<string, Color>;

export type MaskGranularity = 'token' | 'block';

export interface MaskImageOptions {
  /** Conditional-mask target scene (0-based). */
  target?: number;
  /** 'auto' (default): token cells when they fit in `maxSize` at ≥ 2 px, else block cells. */
  granularity?: 'auto' | MaskGranularity;
  /** Cell size in px (default: the largest that fits `maxSize`, at most 16 per token / 64 per block, at least 2). */
  cell?: number;
  /** Upper bound on the grid's side in px (default 2048). */
  maxSize?: number;
  /** Legend text under the grid (default true). */
  legend?: boolean;
}

export interface MaskImage {
  image: Image;
  grid: GridGeometry;
  granularity: MaskGranularity;
  /** The joint-sequence segments along each axis, in drawing order. */
  segments: AxisSegment[];
}

/** The joint sequence's segments (`T<i>`, then `V<i>`; empty text segments skipped), cells per granularity. */
export function maskSegments(layout: SceneLayout, granularity: MaskGranularity, target?: number): AxisSegment[] {
  const S = numScenes(layout);
  const seg = (kind: 'T' | 'V', i: number): AxisSegment | undefined => {
    const r = kind === 'T' ? textRange(layout, i) : videoRange(layout, i);
    if (r.end === r.start) return undefined;
    const cells =
      granularity === 'block'
        ? [r]
        : Array.from({ length: r.end - r.start }, (_, j) => ({ start: r.start + j, end: r.start + j + 1 }));
    const label = `${kind}${i}${i === target ? '*' : ''}`;
    if (target === undefined) return { label, cells };
    return { label, cells, labelColor: i === target ? MASK_COLORS.targetLabel : MASK_COLORS.conditionLabel };
  };
  const out: AxisSegment[] = [];
  for (const kind of ['T', 'V'] as const) {
    for (let i = 0; i < S; i++) {
      const s = seg(kind, i);
      if (s !== undefined) out.push(s);
    }
  }
  return out;
}

function chooseCell(segs: AxisSegment[], maxSize: number, granularity: MaskGranularity): number {
  const largest = granularity === 'token' ? 16 : 64;
  for (let c = largest; c > 2; c--) if (gridExtent(segs, c, 1) <= maxSize) return c;
  return 2;
}

/** Renders the dual mask (and the conditional roles when `target` is given). Deterministic. */
export function renderMaskImage(layout: SceneLayout, opts: MaskImageOptions = {}): MaskImage {
  validateLayout(layout);
  const { target, maxSize = 2048, legend = true } = opts;
  if (target !== undefined && !(Number.isInteger(target) && target >= 0 && target < numScenes(layout))) {
    throw new LayoutError(`target scene ${target} outside [0, ${numScenes(layout)})`);
  }
  let granularity = opts.granularity ?? 'auto';
  if (granularity === 'auto')
    granularity = gridExtent(maskSegments(layout, 'token'), 2, 1) <= maxSize ? 'token' : 'block';
  const segments = maskSegments(layout, granularity, target);
  const cell = opts.cell ?? chooseCell(segments, maxSize, granularity);
  const sceneOfSegment = segments.map((s) => tokenAt(layout, s.cells[0]!.start).scene);

  const color = (q: { start: number }, k: { start: number }, rowSeg: number): Color => {
    const ok = maskAllows(layout, q.start, k.start);
    const conditioning = target !== undefined && sceneOfSegment[rowSeg] !== target;
    if (conditioning) return ok ? MASK_COLORS.conditionAllowed : MASK_COLORS.conditionMasked;
    return ok ? MASK_COLORS.allowed : MASK_COLORS.masked;
  };
  const lines = legend ? legendLines(layout, granularity, target) : [];
  const scale = gridExtent(segments, cell, 1) >= 256 ? 2 : 1;
  const style = {
    cell,
    line: 1,
    background: MASK_COLORS.background,
    lineColor: MASK_COLORS.line,
    textColor: MASK_COLORS.text,
    scale,
  };
  const { image, grid } = renderSegmentGrid(segments, segments, color, style, lines);
  return { image, grid, granularity, segments };
}

function legendLines(layout: SceneLayout, granularity: MaskGranularity, target: number | undefined): string[] {
  const { total } = layoutTotals(layout);
  const unit = granularity === 'token' ? 'one cell per token' : 'one cell per segment';
  const lines = [`rows: queries, columns: keys (${total} tokens, ${unit})`, 'light: attends, dark: masked'];
  if (target !== undefined) lines.push(`* target scene ${target} (t); blue rows: conditioning scenes (t_cond)`);
  return lines;
}
