/**
 * A scene plan: what a forward needs to know about its scenes, as one value built once per forward
 * (`Mask2DiTTransformer.plan`) and passed down — the token layout, each scene's latent frames, the
 * target segment of scene extension (`clip_idx`) and the attention's chunking.
 *
 * Every range is the half-open `{ start, end }` of layout.ts: the target's text tokens index the text
 * stream, its video tokens the video stream, its frames the latent frames.
 */
import {
  LayoutError,
  numScenes,
  sceneFrameRange,
  textStreamRange,
  validateLayout,
  videoStreamRange,
  type FrameRange,
  type SceneLayout,
  type TokenRange,
} from './layout.js';

/** The target segment of the conditional mask: denoised (timestep t) while the other scenes condition it. */
export interface TargetSegment {
  /** The target scene (`clip_idx`). */
  scene: number;
  /** Its tokens in the text stream `[B, Lt, D]`. */
  text: TokenRange;
  /** Its tokens in the video stream `[B, Lv, D]`. */
  video: TokenRange;
  /** Its latent frames (absent when the plan was built without a frame count). */
  frames?: FrameRange;
}

export interface ScenePlan {
  /** Per-scene token counts of the joint sequence. */
  layout: SceneLayout;
  /** Per scene, its latent frames `[s·F/S, (s+1)·F/S)` (empty when built without a frame count). */
  frames: FrameRange[];
  /** Scene extension: the target segment (absent: every scene is denoised together). */
  target?: TargetSegment;
  /** Query rows per score block of the masked attention (absent: the attention's default). */
  chunkSize?: number;
}

export interface ScenePlanOptions {
  /** Latent frames of all scenes together (a multiple of the scene count). */
  frames?: number;
  /** Target scene (`clip_idx`). */
  target?: number;
  /** Attention query chunk size. */
  chunkSize?: number;
}

/** Build the plan of `layout`; throws a LayoutError for a bad layout, frame count or target scene. */
export function scenePlan(layout: SceneLayout, opts: ScenePlanOptions = {}): ScenePlan {
  validateLayout(layout);
  const S = numScenes(layout);
  const F = opts.frames;
  const frames = F === undefined ? [] : Array.from({ length: S }, (_, s) => sceneFrameRange(F, S, s));
  const plan: ScenePlan = { layout, frames };
  if (opts.target !== undefined) {
    const t = opts.target;
    if (!Number.isInteger(t) || t < 0 || t >= S) throw new LayoutError(`target scene ${t} outside [0, ${S})`);
    plan.target = {
      scene: t,
      text: textStreamRange(layout, t),
      video: videoStreamRange(layout, t),
      ...(F !== undefined ? { frames: frames[t]! } : {}),
    };
  }
  if (opts.chunkSize !== undefined) plan.chunkSize = opts.chunkSize;
  return plan;
}
