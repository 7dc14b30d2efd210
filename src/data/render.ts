/**
 * The renderer of the synthetic world: pure JS, no tfjs. A scene is a plain background with the
 * character drawn at `poseAt(path, t / (T − 1))` in every frame, anti-aliased by 4×4 supersampling
 * (coverage-weighted blend of character and background colour).
 *
 * Shapes in the character's own frame (unit size, y down, centred on the centroid):
 *   circle    u² + v² ≤ 0.5²
 *   square    |u|, |v| ≤ 0.45
 *   triangle  side 1.15, apex up: √3·|u| − R ≤ v ≤ R/2 with R = 1.15/√3 (circumradius)
 *   cross     two bars 1 × 0.36 crossing at the centre
 * The largest circumradius (triangle, 0.664) is `BOUNDING_RADIUS` in world.ts.
 */
import type { ClipSpec, Pose, ScenePath, SceneSpec } from './world.js';
import { PALETTE, type Shape } from './vocabulary.js';

// Module-level aliases: under jest's vm context every `Math.x` is a slow global lookup in hot loops.
const { abs, ceil, cos, floor, max, min, sin, sqrt } = Math;
const SQRT3 = sqrt(3);

const SUPERSAMPLE = 4;
const TRI_R = 1.15 / SQRT3;
const CROSS_HALF_WIDTH = 0.18;

/** The pose at time u ∈ [0, 1]: linear between start and end; bounces add |sin| hops (y up = −). */
export function poseAt(path: ScenePath, u: number): Pose {
  const lerp = (a: number, b: number) => a + (b - a) * u;
  const { start: s, end: e } = path;
  const lift = path.hop * abs(sin(Math.PI * path.hops * u));
  return { x: lerp(s.x, e.x), y: lerp(s.y, e.y) - lift, scale: lerp(s.scale, e.scale), angle: lerp(s.angle, e.angle) };
}

/** Whether the point (u, v) of the unit-size shape's frame is inside the shape. */
export function insideShape(shape: Shape, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 0.25;
    case 'square':
      return abs(u) <= 0.45 && abs(v) <= 0.45;
    case 'triangle':
      return v <= TRI_R / 2 && v >= SQRT3 * abs(u) - TRI_R;
    case 'cross': {
      const au = abs(u);
      const av = abs(v);
      return (au <= 0.5 && av <= CROSS_HALF_WIDTH) || (au <= CROSS_HALF_WIDTH && av <= 0.5);
    }
  }
}

/**
 * Coverage in [0, 1] of each pixel of an H×W frame by the shape at `pose` (size in px), written into
 * `out` (length H·W, row-major). Only the pixels near the character are sampled.
 */
export function coverage(
  shape: Shape,
  size: number,
  pose: Pose,
  W: number,
  H: number,
  out: Float32Array = new Float32Array(W * H),
): Float32Array {
  out.fill(0);
  const s = size * pose.scale;
  const reach = 0.72 * s + 1;
  const [ca, sa] = [cos(pose.angle), sin(pose.angle)];
  const n = SUPERSAMPLE;
  for (let py = max(0, floor(pose.y - reach)); py < min(H, ceil(pose.y + reach)); py++) {
    for (let px = max(0, floor(pose.x - reach)); px < min(W, ceil(pose.x + reach)); px++) {
      let hits = 0;
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < n; i++) {
          const dx = px + (i + 0.5) / n - pose.x;
          const dy = py + (j + 0.5) / n - pose.y;
          // rotate the sample by −angle into the shape's frame, then unit size
          if (insideShape(shape, (ca * dx + sa * dy) / s, (-sa * dx + ca * dy) / s)) hits++;
        }
      }
      out[py * W + px] = hits / (n * n);
    }
  }
  return out;
}

/** Scene `scene` of `clip` as `[3, T, H, W]` RGB floats in [-1, 1]. */
export function renderScene(
  clip: Pick<ClipSpec, 'character' | 'framesPerScene' | 'width' | 'height'>,
  scene: Pick<SceneSpec, 'attributes' | 'path'>,
): Float32Array {
  const { framesPerScene: T, width: W, height: H, character } = clip;
  const plane = H * W;
  const out = new Float32Array(3 * T * plane);
  const fg = PALETTE[character.colour].map((v) => (v / 255) * 2 - 1);
  const bg = PALETTE[scene.attributes.background].map((v) => (v / 255) * 2 - 1);
  const cov = new Float32Array(plane);
  for (let t = 0; t < T; t++) {
    coverage(character.shape, character.size, poseAt(scene.path, t / (T - 1)), W, H, cov);
    for (let c = 0; c < 3; c++) {
      const base = (c * T + t) * plane; // [c, t, :, :]
      const [f, b] = [fg[c]!, bg[c]!];
      for (let p = 0; p < plane; p++) out[base + p] = b + (f - b) * cov[p]!;
    }
  }
  return out;
}

/** `[3, T, H, W]` floats in [-1, 1] → T interleaved RGB byte frames (H·W·3 each), for PNG/mp4 writers. */
export function toUint8Frames(frames: Float32Array, T: number, H: number, W: number): Uint8Array[] {
  const plane = H * W;
  return Array.from({ length: T }, (_, t) => {
    const rgb = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const base = (c * T + t) * plane; // [c, t, :, :]
      for (let p = 0; p < plane; p++) {
        const x = frames[base + p]!;
        rgb[3 * p + c] = floor((min(1, max(-1, Number.isNaN(x) ? 0 : x)) + 1) * 127.5 + 0.5);
      }
    }
    return rgb;
  });
}
