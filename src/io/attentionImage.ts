/**
 * A heatmap of one head's attention probabilities `[Lq, Lk]` (row = query) with segment boundaries
 * and labels, in the viridis colour map (dark purple = 0, yellow = the maximum).
 *
 * Axes come from a scene layout (joint sequence `T0 … V0 …`, when Lq = Lk = its length) or from
 * explicit segment lists (e.g. the gathered keys `[T_s ; all video]` of scene s). Matrices larger
 * than `maxSize` are averaged over bins of tokens; bins never straddle a segment boundary.
 */
import { Mask2DiTError, ShapeError } from '../errors.js';
import { viridis, type Image } from './image.js';
import { binRange, gridExtent, renderSegmentGrid, type AxisSegment, type GridGeometry } from './segmentGrid.js';
import { layoutTotals, numScenes, textRange, videoRange, type SceneLayout } from '../scene/layout.js';

/** One labelled run of consecutive tokens along an axis. */
export interface SegmentSpec {
  label: string;
  length: number;
}

export interface AttentionImageOptions {
  /** Joint-sequence layout for both axes (requires Lq = Lk = its total length). */
  layout?: SceneLayout;
  /** Explicit row / column segments (lengths must sum to Lq / Lk); default one unlabelled segment. */
  rows?: SegmentSpec[];
  cols?: SegmentSpec[];
  /** 'global' (default): divide by the matrix maximum; 'row': each row by its own maximum. */
  normalize?: 'global' | 'row';
  /** Applied after normalising: 'linear' (default), 'sqrt', or 'log' (log(1+999v)/log(1000)). */
  transform?: 'linear' | 'sqrt' | 'log';
  /** Upper bound on the grid's side in px (default 2048). */
  maxSize?: number;
  /** Extra legend lines (e.g. "block 3, head 0, step 10"). */
  title?: string[];
}

export interface AttentionImage {
  image: Image;
  grid: GridGeometry;
  /** Tokens per cell (1 = one cell per token). */
  bin: number;
  /** Maximum probability (of the binned means) that maps to yellow. */
  max: number;
}

/** The joint sequence's segments (`T<i>` then `V<i>`, empty ones skipped). */
export function layoutSegments(layout: SceneLayout): SegmentSpec[] {
  const S = numScenes(layout);
  const out: SegmentSpec[] = [];
  for (let i = 0; i < S; i++)
    out.push({ label: `T${i}`, length: textRange(layout, i).end - textRange(layout, i).start });
  for (let i = 0; i < S; i++)
    out.push({ label: `V${i}`, length: videoRange(layout, i).end - videoRange(layout, i).start });
  return out.filter((s) => s.length > 0);
}

function axis(specs: SegmentSpec[], bin: number): AxisSegment[] {
  let at = 0;
  return specs.map((s) => {
    const r = { start: at, end: at + s.length };
    at += s.length;
    return { label: s.label, cells: binRange(r, bin) };
  });
}

function checkSpecs(specs: SegmentSpec[], L: number, name: string): void {
  const sum = specs.reduce((n, s) => n + s.length, 0);
  if (specs.some((s) => !Number.isInteger(s.length) || s.length < 1))
    throw new Mask2DiTError('ATTENTION', `${name} segment lengths must be integers >= 1`);
  if (sum !== L)
    throw new ShapeError('attention probabilities', `${name} segments cover ${sum} tokens, the matrix has ${L}`);
}

/** Mean of `probs` over each (row cell × column cell); returns a row-major [rowCells, colCells] array. */
function binnedMeans(
  probs: Float32Array,
  Lk: number,
  rows: AxisSegment[],
  cols: AxisSegment[],
): { means: Float64Array; nr: number; nc: number } {
  const rowCells = rows.flatMap((s) => s.cells);
  const colCells = cols.flatMap((s) => s.cells);
  const colOf = new Int32Array(Lk);
  colCells.forEach((c, j) => colOf.fill(j, c.start, c.end));
  const nc = colCells.length;
  const means = new Float64Array(rowCells.length * nc);
  rowCells.forEach((r, i) => {
    const acc = means.subarray(i * nc, (i + 1) * nc);
    for (let q = r.start; q < r.end; q++) {
      for (let k = 0; k < Lk; k++) {
        const j = colOf[k]!;
        acc[j] = acc[j]! + probs[q * Lk + k]!;
      }
    }
    colCells.forEach((c, j) => (acc[j] = acc[j]! / ((r.end - r.start) * (c.end - c.start))));
  });
  return { means, nr: rowCells.length, nc };
}

const TRANSFORMS = {
  linear: (v: number) => v,
  sqrt: (v: number) => Math.sqrt(v),
  log: (v: number) => Math.log1p(999 * v) / Math.log(1000),
};

/** Renders `probs` (`[Lq, Lk]` row-major) as a labelled heatmap. Deterministic. */
export function renderAttentionImage(
  probs: Float32Array,
  Lq: number,
  Lk: number,
  opts: AttentionImageOptions = {},
): AttentionImage {
  if (probs.length !== Lq * Lk)
    throw new ShapeError('attention probabilities', `has ${probs.length} values, expected ${Lq}×${Lk}`);
  const { maxSize = 2048, normalize = 'global', transform = 'linear' } = opts;
  let rowSpecs = opts.rows ?? [{ label: 'q', length: Lq }];
  let colSpecs = opts.cols ?? [{ label: 'k', length: Lk }];
  if (opts.layout !== undefined) {
    const L = layoutTotals(opts.layout).total;
    if (Lq !== L || Lk !== L)
      throw new ShapeError('attention probabilities', `layout has ${L} tokens, the matrix is ${Lq}×${Lk}`);
    rowSpecs = colSpecs = layoutSegments(opts.layout);
  }
  checkSpecs(rowSpecs, Lq, 'row');
  checkSpecs(colSpecs, Lk, 'column');

  // smallest bin whose grid fits, then the largest cell size (≤ 16 px) that still fits
  const fits = (bin: number, cell: number) =>
    Math.max(gridExtent(axis(rowSpecs, bin), cell, 1), gridExtent(axis(colSpecs, bin), cell, 1)) <= maxSize;
  let bin = 1;
  while (!fits(bin, 1)) bin++;
  let cell = 16;
  while (cell > 1 && !fits(bin, cell)) cell--;

  const rows = axis(rowSpecs, bin);
  const cols = axis(colSpecs, bin);
  const { means, nr, nc } = binnedMeans(probs, Lk, rows, cols);
  const rowMax = Array.from({ length: nr }, (_, i) => Math.max(0, ...means.subarray(i * nc, (i + 1) * nc)));
  const max = Math.max(0, ...rowMax);
  const f = TRANSFORMS[transform];
  const rowIndex = new Map<number, number>(); // query cell start → row cell index
  rows.flatMap((s) => s.cells).forEach((c, i) => rowIndex.set(c.start, i));
  const colIndex = new Map<number, number>();
  cols.flatMap((s) => s.cells).forEach((c, j) => colIndex.set(c.start, j));
  const color = (q: { start: number }, k: { start: number }) => {
    const i = rowIndex.get(q.start)!;
    const denom = normalize === 'row' ? rowMax[i]! : max;
    return viridis(denom > 0 ? f(Math.max(0, means[i * nc + colIndex.get(k.start)!]!) / denom) : 0);
  };
  const unit = bin === 1 ? 'one cell per token' : `mean over ${bin}-token bins`;
  const legend = [
    ...(opts.title ?? []),
    `${Lq}x${Lk} attention, ${unit}, ${transform} scale`,
    `purple = 0, yellow = ${normalize === 'row' ? 'row max' : `max ${max.toPrecision(3)}`}`,
  ];
  const extent = Math.max(gridExtent(rows, cell, 1), gridExtent(cols, cell, 1));
  const style = {
    cell,
    line: 1,
    background: [255, 255, 255],
    lineColor: [200, 60, 60],
    textColor: [0, 0, 0],
    scale: extent >= 256 ? 2 : 1,
  };
  const { image, grid } = renderSegmentGrid(rows, cols, color, style, legend);
  return { image, grid, bin, max };
}
