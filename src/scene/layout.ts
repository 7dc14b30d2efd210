/**
 * The token layout of N scenes in Mask²DiT's joint sequence, and their latent frames.
 *
 * The joint sequence is `[text_0 .. text_{S-1} ; video_0 .. video_{S-1}]`: all text segments first,
 * then all video segments, each in scene order. Scenes may have different text and video lengths
 * (the reference uses equal ones: `max_text_seq_length` text tokens and `F·(H/p)·(W/p)` video tokens).
 *
 * Ranges are half-open `[start, end)`. "Joint" ranges index the joint sequence; "stream" ranges
 * index the text stream `[B, Lt, D]` or the video stream `[B, Lv, D]` alone. Frame ranges index the
 * latent frames `[B, F, C, h, w]`: scene s owns frames `[s·F/S, (s+1)·F/S)` (`sceneFrameRange`).
 *
 * This module (with masks.ts and plan.ts) is plain data about scenes: no tensors, no layers, no models.
 */
import { Mask2DiTError } from '../errors.js';

/** Per-scene token counts: `text[i]` text tokens and `video[i]` video tokens for scene i. */
export interface SceneLayout {
  text: number[];
  video: number[];
}

/** A half-open token range `[start, end)`. */
export interface TokenRange {
  start: number;
  end: number;
}

/** A half-open range of latent frames `[start, end)` (the same representation as a token range). */
export type FrameRange = TokenRange;

/** Which stream a token belongs to. */
export type TokenKind = 'text' | 'video';

/** An invalid scene layout (or a position / scene index outside it). */
export class LayoutError extends Mask2DiTError {
  constructor(detail: string) {
    super('LAYOUT', `scene layout: ${detail}`);
  }
}

/** A layout of `numScenes` scenes with equal text and video lengths (the reference's layout). */
export function uniformLayout(numScenes: number, textPerScene: number, videoPerScene: number): SceneLayout {
  const layout = {
    text: new Array<number>(numScenes).fill(textPerScene),
    video: new Array<number>(numScenes).fill(videoPerScene),
  };
  validateLayout(layout);
  return layout;
}

/** Throws a LayoutError unless the layout has ≥1 scene, integer lengths ≥ 0 and ≥1 video token per scene. */
export function validateLayout(l: SceneLayout): void {
  if (!Array.isArray(l.text) || !Array.isArray(l.video))
    throw new LayoutError('expected { text: number[], video: number[] }');
  if (l.text.length !== l.video.length)
    throw new LayoutError(`text has ${l.text.length} scenes but video has ${l.video.length}`);
  if (l.video.length < 1) throw new LayoutError('expected at least one scene, got 0');
  l.text.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 0) throw new LayoutError(`text[${i}] must be an integer >= 0, got ${n}`);
  });
  l.video.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 1)
      throw new LayoutError(`video[${i}] must be an integer >= 1 (every scene needs a video token), got ${n}`);
  });
}

/** Number of scenes. */
export function numScenes(l: SceneLayout): number {
  return l.video.length;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** Token totals: text stream length, video stream length and joint length. */
export function layoutTotals(l: SceneLayout): { textTotal: number; videoTotal: number; total: number } {
  const textTotal = sum(l.text);
  const videoTotal = sum(l.video);
  return { textTotal, videoTotal, total: textTotal + videoTotal };
}

function checkScene(l: SceneLayout, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= numScenes(l))
    throw new LayoutError(`scene index ${i} outside [0, ${numScenes(l)})`);
}

/** Range of scene i's tokens within one stream (`lengths` = `l.text` or `l.video`). */
function streamRange(lengths: readonly number[], i: number): TokenRange {
  const start = sum(lengths.slice(0, i));
  return { start, end: start + lengths[i]! };
}

/** Scene i's text tokens within the text stream. */
export function textStreamRange(l: SceneLayout, i: number): TokenRange {
  checkScene(l, i);
  return streamRange(l.text, i);
}

/** Scene i's video tokens within the video stream. */
export function videoStreamRange(l: SceneLayout, i: number): TokenRange {
  checkScene(l, i);
  return streamRange(l.video, i);
}

/** Scene i's text tokens within the joint sequence (same as the text-stream range: text comes first). */
export function textRange(l: SceneLayout, i: number): TokenRange {
  return textStreamRange(l, i);
}

/** Scene i's video tokens within the joint sequence (the video-stream range shifted by the text total). */
export function videoRange(l: SceneLayout, i: number): TokenRange {
  const r = videoStreamRange(l, i);
  const off = layoutTotals(l).textTotal;
  return { start: r.start + off, end: r.end + off };
}

/** All video tokens (every scene) within the joint sequence. */
export function allVideoRange(l: SceneLayout): TokenRange {
  const { textTotal, total } = layoutTotals(l);
  return { start: textTotal, end: total };
}

/** Scene and stream of joint-sequence position `pos`. */
export function tokenAt(l: SceneLayout, pos: number): { scene: number; kind: TokenKind } {
  const { textTotal, total } = layoutTotals(l);
  if (!Number.isInteger(pos) || pos < 0 || pos >= total)
    throw new LayoutError(`token position ${pos} outside [0, ${total})`);
  const kind: TokenKind = pos < textTotal ? 'text' : 'video';
  const lengths = kind === 'text' ? l.text : l.video;
  let rest = kind === 'text' ? pos : pos - textTotal;
  let scene = 0;
  while (rest >= lengths[scene]!) rest -= lengths[scene++]!;
  return { scene, kind };
}

/** Number of tokens in a range. */
export function rangeLength(r: TokenRange): number {
  return r.end - r.start;
}

/**
 * Latent frames of scene `s` when `frames` latent frames split evenly into `scenes` scenes:
 * `[s·F/S, (s+1)·F/S)`. Throws a LayoutError unless `frames` is a multiple of `scenes` and `s` a scene.
 */
export function sceneFrameRange(frames: number, scenes: number, s: number): FrameRange {
  if (!Number.isInteger(scenes) || scenes < 1) throw new LayoutError(`expected at least one scene, got ${scenes}`);
  if (!Number.isInteger(frames) || frames < 0 || frames % scenes !== 0)
    throw new LayoutError(`${frames} latent frames cannot be split evenly into ${scenes} scenes`);
  if (!Number.isInteger(s) || s < 0 || s >= scenes) throw new LayoutError(`scene index ${s} outside [0, ${scenes})`);
  const f = frames / scenes;
  return { start: s * f, end: (s + 1) * f };
}
