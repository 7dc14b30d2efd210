/**
 * A labelled grid picture of a query × key matrix over Mask²DiT's joint sequence, shared by the
 * mask picture and the attention heatmap.
 *
 * Each axis is a list of segments (`T0 … V0 …`); each segment is a list of cells, each cell a token
 * range (one token, a bin of tokens, or the whole segment). Geometry, all in pixels:
 *
 *   - `PAD` = 4 around everything; axis labels in the 5×7 font at `scale` (1, or 2 for grids ≥ 256 px);
 *   - the grid's top-left corner is `(x, y)` with `x = PAD + widest row label + PAD` and
 *     `y = PAD + labelRows · (7·scale + PAD)` (`labelRows` = 2 when column labels would overlap:
 *     even segments on the first row, odd ones on the second);
 *   - a `line`-px boundary line (default 1) before the first segment, between segments and after the
 *     last; cells are `cell` × `cell` px; so cell j of the axis starts at
 *     `x + line·(segment index + 1) + cell·j`;
 *   - legend lines (optional) below the grid, one per line of text.
 */
import { createImage, drawText, fillRect, LINE_HEIGHT, textWidth, type Color, type Image } from './image.js';
import type { TokenRange } from '../scene/layout.js';

export const PAD = 4;

export interface AxisSegment {
  label: string;
  /** Label colour (default: the style's text colour). */
  labelColor?: Color;
  /** Token ranges of this segment's cells, in order. */
  cells: TokenRange[];
}

export interface GridStyle {
  cell: number;
  line: number;
  background: Color;
  lineColor: Color;
  textColor: Color;
  /** Text scale for labels and legend (integer ≥ 1). */
  scale: number;
}

/** Where things are, so callers and tests can find a cell's pixels. */
export interface GridGeometry {
  x: number;
  y: number;
  cell: number;
  line: number;
  /** Pixel offset (from x / y) of each cell along the column / row axis, in order. */
  colStarts: number[];
  rowStarts: number[];
  /** Pixel offset (from x / y) of each boundary line along the column / row axis. */
  colLines: number[];
  rowLines: number[];
  width: number;
  height: number;
}

/** Cell offsets and boundary-line offsets along one axis. */
function axisOffsets(
  segs: readonly AxisSegment[],
  cell: number,
  line: number,
): { starts: number[]; lines: number[]; extent: number } {
  const starts: number[] = [];
  const lines: number[] = [];
  let at = 0;
  for (const s of segs) {
    lines.push(at);
    at += line;
    for (let j = 0; j < s.cells.length; j++, at += cell) starts.push(at);
  }
  lines.push(at);
  return { starts, lines, extent: at + line };
}

/** The grid's total side lengths for given segments and cell size (for choosing a cell size). */
export function gridExtent(segs: readonly AxisSegment[], cell: number, line: number): number {
  return axisOffsets(segs, cell, line).extent;
}

/**
 * Draws the grid: `color(rowCell, colCell, rowSegment, colSegment)` gives each cell's colour
 * (token ranges of the query cell and the key cell, and their segment indices).
 */
export function renderSegmentGrid(
  rows: readonly AxisSegment[],
  cols: readonly AxisSegment[],
  color: (q: TokenRange, k: TokenRange, rowSeg: number, colSeg: number) => Color,
  style: GridStyle,
  legend: readonly string[] = [],
): { image: Image; grid: GridGeometry } {
  const { cell, line, scale } = style;
  const ca = axisOffsets(cols, cell, line);
  const ra = axisOffsets(rows, cell, line);
  const labelH = 7 * scale;
  const rowLabelW = Math.max(0, ...rows.map((s) => textWidth(s.label, scale)));
  const centre = (a: { starts: number[] }, segs: readonly AxisSegment[], g: number) => {
    const first = segs.slice(0, g).reduce((n, s) => n + s.cells.length, 0);
    const n = segs[g]!.cells.length;
    return { start: a.starts[first]!, len: n * cell };
  };
  const overlap = cols.some((s, g) => textWidth(s.label, scale) > centre(ca, cols, g).len);
  const labelRows = overlap ? 2 : 1;
  const x = PAD + rowLabelW + PAD;
  const y = PAD + labelRows * (labelH + PAD);
  const legendH = legend.length * LINE_HEIGHT * scale;
  const width = Math.max(x + ca.extent + PAD, PAD + Math.max(0, ...legend.map((l) => textWidth(l, scale))) + PAD);
  const height = y + ra.extent + PAD + (legend.length > 0 ? legendH + PAD : 0);
  const img = createImage(width, height, 3, style.background);

  // boundary lines
  for (const lx of ca.lines) fillRect(img, x + lx, y, line, ra.extent, style.lineColor);
  for (const ly of ra.lines) fillRect(img, x, y + ly, ca.extent, line, style.lineColor);
  // cells
  let r = 0;
  rows.forEach((rs, rg) => {
    for (const q of rs.cells) {
      let c = 0;
      cols.forEach((cs, cg) => {
        for (const k of cs.cells)
          fillRect(img, x + ca.starts[c++]!, y + ra.starts[r]!, cell, cell, color(q, k, rg, cg));
      });
      r++;
    }
  });
  // labels
  cols.forEach((s, g) => {
    const { start, len } = centre(ca, cols, g);
    const lx = x + start + Math.floor((len - textWidth(s.label, scale)) / 2);
    drawText(img, s.label, lx, PAD + (g % labelRows) * (labelH + PAD), s.labelColor ?? style.textColor, scale);
  });
  rows.forEach((s, g) => {
    const { start, len } = centre(ra, rows, g);
    drawText(
      img,
      s.label,
      x - PAD - textWidth(s.label, scale),
      y + start + Math.floor((len - labelH) / 2),
      s.labelColor ?? style.textColor,
      scale,
    );
  });
  legend.forEach((l, i) =>
    drawText(img, l, PAD, y + ra.extent + PAD + i * LINE_HEIGHT * scale, style.textColor, scale),
  );

  const grid = {
    x,
    y,
    cell,
    line,
    colStarts: ca.starts,
    rowStarts: ra.starts,
    colLines: ca.lines,
    rowLines: ra.lines,
    width,
    height,
  };
  return { image: img, grid };
}

/** Splits `r` into consecutive cells of `bin` tokens (the last one may be shorter). */
export function binRange(r: TokenRange, bin: number): TokenRange[] {
  const out: TokenRange[] = [];
  for (let s = r.start; s < r.end; s += bin) out.push({ start: s, end: Math.min(r.end, s + bin) });
  return out;
}
