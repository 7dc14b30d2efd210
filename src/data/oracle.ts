/**
 * The oracle: reads frames of the synthetic world back into attributes, for the evaluation of
 * generated videos (issue 8). Pure JS; never throws on bad pixels — what it cannot read is 'unknown'.
 *
 * Per scene (T frames of H×W):
 *  1. background  per-channel median of the 2-px border ring over all frames → nearest palette colour
 *  2. character   pixels far from the background (> 60/255): the per-channel median of the most distant
 *                 quarter is the character colour → nearest palette colour other than the background
 *  3. per frame   coverage α = projection of each pixel on the background→character colour segment
 *                 (so blurred or anti-aliased edges count by how much they are character); the mask
 *                 α ≥ ½ keeps its largest 4-connected blob, spurs pruned: area, centroid, the blob's radius from the
 *                 centroid and its convex hull (over pixel corners)
 *  4. shape       rotation-invariant features of the blob, voted over frames:
 *                 fill = area / (π·radius²) (measured on renders: circle 0.82–0.94, square and
 *                 cross 0.57–0.75, triangle 0.43–0.54) and solidity = area / hull area (cross
 *                 0.70–0.82, others ≥ 0.86); thresholds in `classifyShape`
 *  5. motion      from the centroid track (linear fit, robust to one bad frame): a net displacement
 *                 > 15% of the frame → slides (dominant axis); else a vertical excursion around the
 *                 fit > 10% → bounces; else area growth ×1.6 → grows; else the blob changes pose
 *                 (soft IoU with the first frame < 0.8 at some frame) → spins; else stays
 *  6. continuity  the character is found in every frame, its centroid never jumps more than 25% of
 *                 the frame between consecutive frames, and its area never changes by more than 2.5×
 *
 * Thresholds sit between the ground-truth extremes of the world (world.ts: slides ≥ 35% of the frame,
 * hops 24%, growth ×5.4, per-frame steps ≤ 18%); measured accuracy is in test/data/oracle.test.ts.
 */
import { COLOURS, PALETTE, type Colour, type Motion, type Shape } from './vocabulary.js';

// Module-level aliases: under jest's vm context every `Math.x` is a slow global lookup in hot loops.
const { abs, ceil, floor, hypot, max, min, sqrt, PI } = Math;
const { isFinite } = Number;

export type Maybe<T> = T | 'unknown';

/** One frame's character blob (null when no blob was found). */
export interface BlobReading {
  x: number;
  y: number;
  area: number;
  /** area / (π·radius²) */
  fill: number;
  /** area / convex hull area */
  solidity: number;
}

export interface SceneReading {
  background: Maybe<Colour>;
  character: { colour: Maybe<Colour>; shape: Maybe<Shape> };
  motion: Maybe<Motion>;
  /** Found in every frame, no centroid jump, no area jump. */
  continuous: boolean;
  /** Per frame: the blob or null. */
  track: (BlobReading | null)[];
}

export interface ClipReading {
  scenes: SceneReading[];
  /** Majority colour and shape over the scenes. */
  character: { colour: Maybe<Colour>; shape: Maybe<Shape> };
  /** Every scene shows the same known colour and shape. */
  sameCharacter: boolean;
}

/** Frames as the VAE sees them (`[3, T, H, W]` floats in [-1, 1]) or as a video file holds them (T RGB byte frames). */
export type FramesInput =
  { data: Float32Array; T: number; H: number; W: number } | { frames: readonly Uint8Array[]; H: number; W: number };

// Thresholds (0..255 colour units; fractions of min(H, W) for lengths).
const FG_DISTANCE = 60;
const MAX_PALETTE_DISTANCE = 110;
const MIN_AREA_FRACTION = 0.003;
const SLIDE = 0.15;
const HOP = 0.1;
const GROWTH = 1.6;
const SPIN_IOU = 0.8;
const JUMP = 0.25;
const AREA_JUMP = 2.5;
const BORDER = 2;

/** Planar 0..255 RGB, `[3, T, H, W]`. */
interface Planes {
  px: Float32Array;
  T: number;
  H: number;
  W: number;
}

function toPlanes(input: FramesInput): Planes | null {
  const { H, W } = input;
  const plane = H * W;
  if ('data' in input) {
    const { data, T } = input;
    if (!(T > 0 && H > 0 && W > 0) || data.length !== 3 * T * plane) return null;
    const px = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) px[i] = clampByte((data[i]! + 1) * 127.5);
    return { px, T, H, W };
  }
  const T = input.frames.length;
  if (!(T > 0 && H > 0 && W > 0) || input.frames.some((f) => f.length !== plane * 3)) return null;
  const px = new Float32Array(3 * T * plane);
  input.frames.forEach((f, t) => {
    for (let c = 0; c < 3; c++) for (let p = 0; p < plane; p++) px[(c * T + t) * plane + p] = f[3 * p + c]!; // [c, t, :, :]
  });
  return { px, T, H, W };
}

const clampByte = (v: number) => (isFinite(v) ? min(255, max(0, v)) : 127.5);

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const dist = (a: readonly number[], b: readonly number[]) => hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);

/** The palette colour nearest to `rgb` (0..255), or 'unknown' when none is within `MAX_PALETTE_DISTANCE`. */
export function nearestColour(rgb: readonly number[], exclude?: Maybe<Colour>): Maybe<Colour> {
  if (!rgb.every(isFinite)) return 'unknown';
  let best: Maybe<Colour> = 'unknown';
  let bestD = MAX_PALETTE_DISTANCE;
  for (const c of COLOURS) {
    const d = dist(rgb, PALETTE[c]);
    if (c !== exclude && d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

/** Per-channel median of the border ring of every frame. */
function borderColour({ px, T, H, W }: Planes): number[] {
  const plane = H * W;
  const b = min(BORDER, floor(min(H, W) / 4));
  return [0, 1, 2].map((c) => {
    const vals: number[] = [];
    for (let t = 0; t < T; t++) {
      const base = (c * T + t) * plane;
      for (let y = 0; y < H; y++) {
        const edgeRow = y < b || y >= H - b;
        for (let x = 0; x < W; x++) if (edgeRow || x < b || x >= W - b) vals.push(px[base + y * W + x]!);
      }
    }
    return median(vals);
  });
}

/** Median colour of the most distinct quarter of the pixels far from the background; null if too few. */
function characterColour({ px, T, H, W }: Planes, bg: number[], minPixels: number): number[] | null {
  const plane = H * W;
  const [br, bgG, bb] = [bg[0]!, bg[1]!, bg[2]!];
  const far: number[] = []; // t·plane + i
  const d = new Float32Array(T * plane);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < plane; i++) {
      const k = t * plane + i;
      d[k] = hypot(px[k]! - br, px[T * plane + k]! - bgG, px[2 * T * plane + k]! - bb);
      if (d[k]! > FG_DISTANCE) far.push(k);
    }
  }
  if (far.length < minPixels) return null;
  far.sort((a, b) => d[b]! - d[a]!);
  const core = far.slice(0, max(1, far.length >> 2));
  return [0, 1, 2].map((c) => median(core.map((k) => px[c * T * plane + k]!)));
}

/** Coverage of frame t by the character colour: projection on the bg→fg segment, 0 far off the segment. */
function coverageMap({ px, T, H, W }: Planes, t: number, bg: number[], fg: number[]): Float32Array {
  const plane = H * W;
  const [b0, b1, b2] = [bg[0]!, bg[1]!, bg[2]!];
  const [d0, d1, d2] = [fg[0]! - b0, fg[1]! - b1, fg[2]! - b2];
  const len2 = d0 * d0 + d1 * d1 + d2 * d2;
  const maxOff = max(FG_DISTANCE, 0.6 * sqrt(len2));
  const out = new Float32Array(plane);
  if (len2 < 1) return out;
  const [r0, r1, r2] = [t * plane, (T + t) * plane, (2 * T + t) * plane]; // [c, t, :, :]
  for (let i = 0; i < plane; i++) {
    const [x0, x1, x2] = [px[r0 + i]! - b0, px[r1 + i]! - b1, px[r2 + i]! - b2];
    const a = (x0 * d0 + x1 * d1 + x2 * d2) / len2;
    const off = hypot(x0 - a * d0, x1 - a * d1, x2 - a * d2);
    out[i] = off > maxOff ? 0 : min(1, max(0, a));
  }
  return out;
}

/** Pixel indices of the largest 4-connected component of `alpha ≥ ½`. */
function largestBlob(alpha: Float32Array, H: number, W: number): number[] {
  const seen = new Uint8Array(H * W);
  let best: number[] = [];
  const stack: number[] = [];
  for (let start = 0; start < H * W; start++) {
    if (seen[start] || alpha[start]! < 0.5) continue;
    const comp: number[] = [];
    seen[start] = 1;
    stack.push(start);
    while (stack.length > 0) {
      const p = stack.pop()!;
      comp.push(p);
      const x = p % W;
      const visit = (q: number) => {
        if (!seen[q] && alpha[q]! >= 0.5) {
          seen[q] = 1;
          stack.push(q);
        }
      };
      if (x > 0) visit(p - 1);
      if (x < W - 1) visit(p + 1);
      if (p >= W) visit(p - W);
      if (p < (H - 1) * W) visit(p + W);
    }
    if (comp.length > best.length) best = comp;
  }
  return best;
}

/** Area of the convex hull of points (Andrew's monotone chain + shoelace). */
export function hullArea(points: [number, number][]): number {
  const pts = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return 0;
  const cross = (o: [number, number], a: [number, number], b: [number, number]) =>
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const half = (list: [number, number][]) => {
    const h: [number, number][] = [];
    for (const p of list) {
      while (h.length >= 2 && cross(h[h.length - 2]!, h[h.length - 1]!, p) <= 0) h.pop();
      h.push(p);
    }
    h.pop();
    return h;
  };
  const hull = [...half(pts), ...half([...pts].reverse())];
  let a = 0;
  for (let i = 0; i < hull.length; i++) {
    const [p, q] = [hull[i]!, hull[(i + 1) % hull.length]!];
    a += p[0] * q[1] - q[0] * p[1];
  }
  return abs(a) / 2;
}

/** The blob without its spurs: pixels with at most one 4-neighbour in the blob are dropped (twice). */
function prune(blob: number[], W: number, H: number): number[] {
  let cur = blob;
  for (let pass = 0; pass < 2; pass++) {
    const inBlob = new Uint8Array(W * H);
    for (const p of cur) inBlob[p] = 1;
    const kept = cur.filter((p) => {
      const x = p % W;
      const n =
        (x > 0 ? inBlob[p - 1]! : 0) +
        (x < W - 1 ? inBlob[p + 1]! : 0) +
        (p >= W ? inBlob[p - W]! : 0) +
        (p < (H - 1) * W ? inBlob[p + W]! : 0);
      return n >= 2;
    });
    if (kept.length === cur.length || kept.length === 0) break;
    cur = kept;
  }
  return cur;
}

/** Area, centroid and shape features of one blob (pixel indices). */
function describeBlob(blob: number[], W: number): BlobReading {
  let [sx, sy] = [0, 0];
  for (const p of blob) [sx, sy] = [sx + (p % W) + 0.5, sy + ((p / W) | 0) + 0.5];
  const [x, y] = [sx / blob.length, sy / blob.length];
  let r2 = 0;
  const corners = new Map<number, [number, number]>();
  for (const p of blob) {
    const [px, py] = [p % W, (p / W) | 0];
    r2 = max(r2, (px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2);
    for (const [cx, cy] of [
      [px, py],
      [px + 1, py],
      [px, py + 1],
      [px + 1, py + 1],
    ] as const)
      corners.set(cy * (W + 1) + cx, [cx, cy]);
  }
  const radius = sqrt(r2) + 0.5; // pixel centres sit half a pixel inside the outline
  const area = blob.length;
  return { x, y, area, fill: area / (PI * radius * radius), solidity: area / max(1, hullArea([...corners.values()])) };
}

/** Shape from one blob's rotation-invariant features. */
export function classifyShape(b: Pick<BlobReading, 'fill' | 'solidity'>): Shape {
  if (b.fill < 0.565) return 'triangle';
  if (b.solidity < 0.855) return 'cross';
  return b.fill > 0.78 ? 'circle' : 'square';
}

/** The most frequent value, or 'unknown' when there is none. */
function majority<T extends string>(values: Maybe<T>[]): Maybe<T> {
  const counts = new Map<Maybe<T>, number>();
  for (const v of values) if (v !== 'unknown') counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: Maybe<T> = 'unknown';
  let n = 0;
  for (const [v, k] of counts) if (k > n) [best, n] = [v, k];
  return best;
}

/** Least-squares slope of v over frame index t. */
function slope(ts: number[], vs: number[]): number {
  const n = ts.length;
  const [mt, mv] = [ts.reduce((a, b) => a + b, 0) / n, vs.reduce((a, b) => a + b, 0) / n];
  let [num, den] = [0, 0];
  for (let i = 0; i < n; i++) [num, den] = [num + (ts[i]! - mt) * (vs[i]! - mv), den + (ts[i]! - mt) ** 2];
  return den === 0 ? 0 : num / den;
}

/** Soft IoU of two coverage maps. */
function softIoU(a: Float32Array, b: Float32Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += min(a[i]!, b[i]!);
    union += max(a[i]!, b[i]!);
  }
  return union === 0 ? 1 : inter / union;
}

/** Motion from the track (blob per frame) and the per-frame blob coverage maps. */
function classifyMotion(track: (BlobReading | null)[], masks: (Float32Array | null)[], side: number): Maybe<Motion> {
  const found = track.flatMap((b, t) => (b === null ? [] : [{ b, t }]));
  const T = track.length;
  if (found.length < max(2, ceil(T / 2))) return 'unknown';
  const ts = found.map((f) => f.t);
  const span = T - 1;
  const dx =
    slope(
      ts,
      found.map((f) => f.b.x),
    ) * span;
  const dy =
    slope(
      ts,
      found.map((f) => f.b.y),
    ) * span;
  if (hypot(dx, dy) > SLIDE * side) {
    if (abs(dx) >= abs(dy)) return dx < 0 ? 'slides left' : 'slides right';
    return dy < 0 ? 'slides up' : 'slides down';
  }
  const ys = found.map((f) => f.b.y - (dy / span) * f.t);
  if (max(...ys) - min(...ys) > HOP * side) return 'bounces';
  const areas = found.map((f) => f.b.area);
  const growth = median(areas.slice(-2)) / max(1, median(areas.slice(0, 2)));
  if (growth > GROWTH) return 'grows';
  if (growth < 1 / GROWTH) return 'unknown'; // shrinking is not in the grammar
  const first = masks[found[0]!.t]!;
  const minIoU = min(...found.map((f) => softIoU(first, masks[f.t]!)));
  return minIoU < SPIN_IOU ? 'spins' : 'stays';
}

function isContinuous(track: (BlobReading | null)[], side: number): boolean {
  if (track.some((b) => b === null)) return false;
  for (let t = 1; t < track.length; t++) {
    const [a, b] = [track[t - 1]!, track[t]!];
    if (hypot(b.x - a.x, b.y - a.y) > JUMP * side) return false;
    const r = b.area / a.area;
    if (r > AREA_JUMP || r < 1 / AREA_JUMP) return false;
  }
  return true;
}

const UNREADABLE: SceneReading = {
  background: 'unknown',
  character: { colour: 'unknown', shape: 'unknown' },
  motion: 'unknown',
  continuous: false,
  track: [],
};

/** Read one scene's frames back into attributes. Never throws: unreadable parts are 'unknown'. */
export function readScene(input: FramesInput): SceneReading {
  const planes = toPlanes(input);
  if (planes === null) return UNREADABLE;
  const { T, H, W } = planes;
  const side = min(H, W);
  const bgRgb = borderColour(planes);
  const background = nearestColour(bgRgb);
  const minArea = max(4, MIN_AREA_FRACTION * H * W);
  const fgRgb = characterColour(planes, bgRgb, minArea);
  if (fgRgb === null) return { ...UNREADABLE, background, track: Array<null>(T).fill(null) };
  const colour = nearestColour(fgRgb, background);

  const track: (BlobReading | null)[] = [];
  const masks: (Float32Array | null)[] = [];
  for (let t = 0; t < T; t++) {
    const alpha = coverageMap(planes, t, bgRgb, fgRgb);
    const blob = prune(largestBlob(alpha, H, W), W, H);
    if (blob.length < minArea) {
      track.push(null);
      masks.push(null);
      continue;
    }
    const mask = new Float32Array(H * W);
    for (const p of blob) mask[p] = 1;
    track.push(describeBlob(blob, W));
    masks.push(mask);
  }
  const shape = majority<Shape>(track.map((b) => (b === null ? 'unknown' : classifyShape(b))));
  return {
    background,
    character: { colour, shape },
    motion: classifyMotion(track, masks, side),
    continuous: isContinuous(track, side),
    track,
  };
}

/** Read every scene of a clip and whether the character stays the same across them. */
export function readClip(scenes: FramesInput[]): ClipReading {
  const read = scenes.map(readScene);
  const colour = majority(read.map((r) => r.character.colour));
  const shape = majority(read.map((r) => r.character.shape));
  const sameCharacter =
    read.length > 0 &&
    colour !== 'unknown' &&
    shape !== 'unknown' &&
    read.every((r) => r.character.colour === colour && r.character.shape === shape);
  return { scenes: read, character: { colour, shape }, sameCharacter };
}

/** Which attributes of a reading match the expected ones (evaluation helper). */
export function compareScene(
  reading: SceneReading,
  expected: { background: Colour; motion: Motion; character?: { colour: Colour; shape: Shape } },
): { background: boolean; motion: boolean; colour: boolean | undefined; shape: boolean | undefined } {
  return {
    background: reading.background === expected.background,
    motion: reading.motion === expected.motion,
    colour: expected.character === undefined ? undefined : reading.character.colour === expected.character.colour,
    shape: expected.character === undefined ? undefined : reading.character.shape === expected.character.shape,
  };
}
