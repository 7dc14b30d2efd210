/**
 * Roles under Mask²DiT's segment-level conditional mask (scene extension, `clip_idx = k`), per scene
 * and per token: scene k is the target (denoised, timestep t), every other scene a clean conditioning
 * segment (conditioning timestep). Only the tests use these; the model gets the target's ranges from
 * `scenePlan` (src/scene/plan.ts).
 */
import {
  LayoutError,
  numScenes,
  tokenAt,
  validateLayout,
  type SceneLayout,
  type TokenKind,
} from '../../src/scene/layout.js';

/** Role of a segment under the conditional mask: the target is denoised, the others condition it. */
export type SegmentRole = 'target' | 'condition';

function checkTarget(layout: SceneLayout, target: number): void {
  const S = numScenes(layout);
  if (!Number.isInteger(target) || target < 0 || target >= S)
    throw new LayoutError(`target scene ${target} outside [0, ${S})`);
}

/** Per scene: 'target' for scene `target` (timestep t), 'condition' for every other (conditioning timestep). */
export function segmentRoles(layout: SceneLayout, target: number): SegmentRole[] {
  validateLayout(layout);
  checkTarget(layout, target);
  return layout.video.map((_, i) => (i === target ? 'target' : 'condition'));
}

/** Role of joint-sequence token `pos` (text and video of one scene share the scene's role). */
export function tokenRole(layout: SceneLayout, target: number, pos: number): SegmentRole {
  checkTarget(layout, target);
  return tokenAt(layout, pos).scene === target ? 'target' : 'condition';
}

/** Role of every token, in joint-sequence order (`stream` picks only the text or video stream's tokens). */
export function tokenRoles(layout: SceneLayout, target: number, stream?: TokenKind): SegmentRole[] {
  const roles = segmentRoles(layout, target);
  const expand = (lengths: number[]) => lengths.flatMap((n, i) => new Array<SegmentRole>(n).fill(roles[i]!));
  if (stream === 'text') return expand(layout.text);
  if (stream === 'video') return expand(layout.video);
  return [...expand(layout.text), ...expand(layout.video)];
}
