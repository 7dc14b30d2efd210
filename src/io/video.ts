/**
 * Video files through an ffmpeg binary: raw rgb24 frames are streamed to ffmpeg's stdin (never
 * written as thousands of files) and encoded as H.264 / yuv420p mp4; reading decodes back to rgb24
 * on ffmpeg's stdout.
 *
 * The binary is, in order: `$MASK2DIT_FFMPEG`, the one shipped by the npm package
 * `@ffmpeg-installer/ffmpeg`, or `ffmpeg` on PATH; none of them → `FfmpegError` code 'NO_FFMPEG'.
 *
 * Writes are atomic (`AtomicOutput`): ffmpeg writes a temp file next to the target, renamed into
 * place only after ffmpeg exits cleanly. An error in the frame source, an abort signal, ffmpeg
 * failing, or SIGINT/SIGTERM kills ffmpeg and removes the temp file.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Mask2DiTError, ShapeError } from '../errors.js';
import { AtomicOutput, registerCleanup, type AtomicOptions } from './atomic.js';

export type FfmpegErrorCode = 'NO_FFMPEG' | 'FFMPEG' | 'VIDEO' | 'ABORTED';

/** ffmpeg missing or failing, or a video file it cannot read. */
export class FfmpegError extends Mask2DiTError {
  constructor(
    override readonly code: FfmpegErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

// ---------------------------------------------------------------------------------------------
// Finding and running ffmpeg
// ---------------------------------------------------------------------------------------------

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function fromInstaller(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const p = (require('@ffmpeg-installer/ffmpeg') as { path?: unknown }).path;
    return typeof p === 'string' && isExecutable(p) ? p : undefined;
  } catch {
    return undefined; // package or its platform binary not installed
  }
}

function fromPath(): string | undefined {
  const exe = process.platform === 'win32' ? 'ffmpeg.exe' : 'ffmpeg';
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir !== '' && isExecutable(path.join(dir, exe))) return path.join(dir, exe);
  }
  return undefined;
}

let cached: string | undefined;

/** The ffmpeg binary to use (see the module comment for the order); throws 'NO_FFMPEG' if none. */
export function findFfmpeg(): string {
  const env = process.env['MASK2DIT_FFMPEG'];
  if (env !== undefined && env !== '') {
    if (!isExecutable(env)) throw new FfmpegError('NO_FFMPEG', `MASK2DIT_FFMPEG=${env} is not an executable file`);
    return env;
  }
  cached ??= fromInstaller() ?? fromPath();
  if (cached === undefined) {
    throw new FfmpegError(
      'NO_FFMPEG',
      'no ffmpeg found: install the npm package @ffmpeg-installer/ffmpeg, put ffmpeg on PATH, or set MASK2DIT_FFMPEG=/path/to/ffmpeg',
    );
  }
  return cached;
}

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs ffmpeg to completion, collecting stdout and stderr. */
async function runFfmpeg(args: string[], ffmpeg = findFfmpeg()): Promise<RunResult> {
  const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const unregister = registerCleanup(() => child.kill('SIGKILL'));
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const [code] = (await Promise.race([
      once(child, 'close'),
      once(child, 'error').then(([e]) => Promise.reject(e as Error)),
    ])) as [number | null];
    return { code, stdout: Buffer.concat(out), stderr };
  } catch (e) {
    throw new FfmpegError('NO_FFMPEG', `cannot run ${ffmpeg}: ${(e as Error).message}`);
  } finally {
    unregister();
  }
}

/** The last few meaningful lines of ffmpeg's stderr, for error messages. */
function tail(stderr: string, lines = 3): string {
  return stderr.trim().split('\n').slice(-lines).join(' | ');
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/** File extensions of what `writeMp4` writes (always an mp4 container, whatever the name; its temp name ends otherwise). */
export const VIDEO_EXTENSIONS: readonly string[] = ['.mp4'];

export interface Mp4Options extends AtomicOptions {
  width: number;
  height: number;
  /** Frames per second (default 8). */
  fps?: number;
  /** x264 constant rate factor, 0 (lossless) … 51 (default 18: visually near-lossless). */
  crf?: number;
  /** Aborting kills ffmpeg, removes the temp file and rejects with code 'ABORTED'. */
  signal?: AbortSignal;
  /** ffmpeg binary (default `findFfmpeg()`). */
  ffmpeg?: string;
}

export interface Mp4Result {
  frames: number;
  /** Encoded size: odd input sizes are padded (black, right/bottom) to even, as yuv420p requires. */
  width: number;
  height: number;
}

function encodeArgs(o: Mp4Options, fps: number, out: { width: number; height: number }, file: string): string[] {
  const pad =
    out.width !== o.width || out.height !== o.height ? ['-vf', `pad=${out.width}:${out.height}:0:0:black`] : [];
  // prettier-ignore
  return [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${o.width}x${o.height}`, '-framerate', String(fps), '-i', 'pipe:0',
    ...pad,
    '-c:v', 'libx264', '-preset', 'medium', '-crf', String(o.crf ?? 18), '-pix_fmt', 'yuv420p',
    '-movflags', '+faststart', '-f', 'mp4', file,
  ];
}

function checkWriteOptions(file: string, o: Mp4Options): number {
  const fps = o.fps ?? 8;
  const positiveInt = (n: number) => Number.isInteger(n) && n > 0;
  if (!positiveInt(o.width) || !positiveInt(o.height))
    throw new ShapeError(file, `video size must be positive integers, got ${o.width}×${o.height}`);
  if (!(fps > 0 && fps <= 1000)) throw new Mask2DiTError('VIDEO', `${file}: fps must be in (0, 1000], got ${fps}`);
  if (o.crf !== undefined && !(Number.isInteger(o.crf) && o.crf >= 0 && o.crf <= 51))
    throw new Mask2DiTError('VIDEO', `${file}: crf must be an integer in [0, 51], got ${o.crf}`);
  return fps;
}

/**
 * Encodes RGB frames (`width*height*3` bytes each, row-major rgb24) into an H.264 mp4 at `file`.
 * Frames are streamed to ffmpeg with backpressure; a frame must not be mutated after it is yielded.
 * Refuses an existing `file` unless `force`.
 */
export async function writeMp4(
  file: string,
  frames: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: Mp4Options,
): Promise<Mp4Result> {
  const fps = checkWriteOptions(file, opts);
  if (opts.signal?.aborted) throw new FfmpegError('ABORTED', `${file}: aborted before writing`);
  const ffmpeg = opts.ffmpeg ?? findFfmpeg();
  const size = { width: opts.width + (opts.width % 2), height: opts.height + (opts.height % 2) };
  const frameBytes = opts.width * opts.height * 3;
  const out = AtomicOutput.open(file, opts);
  const child = spawn(ffmpeg, encodeArgs(opts, fps, size, out.tempPath), { stdio: ['pipe', 'ignore', 'pipe'] });
  const unregister = registerCleanup(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  child.stdin.on('error', () => undefined); // EPIPE when ffmpeg dies: reported through 'close' below

  // `closed` settles when ffmpeg is gone (or never started); `failed` rejects if that happens while we still write.
  const closed = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('close', (code) => resolve({ code }));
    child.once('error', (error) => resolve({ code: null, error }));
  });
  const failed = closed.then(({ code, error }) => Promise.reject(ffmpegFailure(file, ffmpeg, code, error, stderr)));
  failed.catch(() => undefined);
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new FfmpegError('ABORTED', `${file}: aborted; no output written`));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);

  let n = 0;
  try {
    for await (const frame of frames) {
      if (opts.signal?.aborted) throw new FfmpegError('ABORTED', `${file}: aborted; no output written`);
      if (frame.length !== frameBytes)
        throw new ShapeError(
          `${file} frame ${n}`,
          `has ${frame.length} bytes, expected ${opts.width}×${opts.height}×3 = ${frameBytes}`,
        );
      if (!child.stdin.write(frame))
        await Promise.race([new Promise((resolve) => child.stdin.once('drain', resolve)), failed, aborted]);
      n++;
    }
    if (n === 0) throw new Mask2DiTError('VIDEO', `${file}: no frames to write`);
    child.stdin.end();
    const { code, error } = await Promise.race([closed, aborted]);
    if (code !== 0) throw ffmpegFailure(file, ffmpeg, code, error, stderr);
    await out.commit();
    return { frames: n, ...size };
  } catch (e) {
    child.kill('SIGKILL');
    await closed;
    await out.abort();
    throw e;
  } finally {
    unregister();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

function ffmpegFailure(
  file: string,
  ffmpeg: string,
  code: number | null,
  error: Error | undefined,
  stderr: string,
): FfmpegError {
  if (error !== undefined) return new FfmpegError('NO_FFMPEG', `cannot run ${ffmpeg}: ${error.message}`);
  return new FfmpegError(
    'FFMPEG',
    `${file}: ffmpeg exited with code ${code}${stderr.trim() === '' ? '' : `: ${tail(stderr)}`}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

export interface VideoInfo {
  width: number;
  height: number;
  /** Number of video frames (packets of the first video stream). */
  frames: number;
  /** Frame rate as ffmpeg reports it (NaN if unknown). */
  fps: number;
}

function checkReadable(file: string): void {
  if (!fs.existsSync(file)) throw new FfmpegError('VIDEO', `${file}: no such file`);
}

/** Width, height and fps of the first video stream, from ffmpeg's stream description on stderr. */
function parseStreamHeader(file: string, stderr: string): { width: number; height: number; fps: number } {
  const line = stderr.split('\n').find((l) => /Stream #\d+:\d+.*: Video:/.test(l));
  if (line === undefined) {
    const reason = /Invalid data found|could not find codec|moov atom not found/i.test(stderr)
      ? 'not a readable video'
      : 'no video stream';
    throw new FfmpegError('VIDEO', `${file}: ${reason}${stderr.trim() === '' ? '' : ` (${tail(stderr, 1)})`}`);
  }
  const size = /, (\d{1,5})x(\d{1,5})[ ,]/.exec(line);
  if (size === null) throw new FfmpegError('VIDEO', `${file}: cannot read the frame size from "${line.trim()}"`);
  const fps = /, ([\d.]+) fps/.exec(line);
  return { width: Number(size[1]), height: Number(size[2]), fps: fps === null ? NaN : Number(fps[1]) };
}

/** ffmpeg's input arguments for reading the first video stream of `file`. */
const firstVideoStream = (file: string) => ['-hide_banner', '-nostdin', '-i', file, '-map', '0:v:0'];

/** Frame count, size and fps of the first video stream (counts packets without decoding). */
export async function probeVideo(file: string): Promise<VideoInfo> {
  checkReadable(file);
  const r = await runFfmpeg([
    ...firstVideoStream(file),
    '-c',
    'copy',
    '-f',
    'null',
    '-progress',
    'pipe:1',
    '-nostats',
    '-',
  ]);
  const header = parseStreamHeader(file, r.stderr);
  if (r.code !== 0) throw new FfmpegError('VIDEO', `${file}: ffmpeg could not read it: ${tail(r.stderr)}`);
  const counts = [...r.stdout.toString().matchAll(/^frame=(\d+)$/gm)];
  const last = counts[counts.length - 1];
  if (last === undefined) throw new FfmpegError('VIDEO', `${file}: ffmpeg reported no frame count`);
  return { ...header, frames: Number(last[1]) };
}

export interface DecodedVideo {
  width: number;
  height: number;
  fps: number;
  /** One rgb24 frame (`width*height*3` bytes, row-major) per video frame. */
  frames: Uint8Array[];
}

/** Decodes every frame of the first video stream to rgb24 (at most `maxFrames` if given). */
export async function readVideoFrames(file: string, opts: { maxFrames?: number } = {}): Promise<DecodedVideo> {
  checkReadable(file);
  const limit = opts.maxFrames === undefined ? [] : ['-frames:v', String(opts.maxFrames)];
  const r = await runFfmpeg([
    ...firstVideoStream(file),
    ...limit,
    '-vsync',
    '0',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    'pipe:1',
  ]);
  const { width, height, fps } = parseStreamHeader(file, r.stderr);
  if (r.code !== 0) throw new FfmpegError('VIDEO', `${file}: ffmpeg could not decode it: ${tail(r.stderr)}`);
  const bytes = width * height * 3;
  if (r.stdout.length % bytes !== 0)
    throw new FfmpegError(
      'VIDEO',
      `${file}: decoded ${r.stdout.length} bytes, not a whole number of ${width}×${height} rgb24 frames`,
    );
  const frames = Array.from(
    { length: r.stdout.length / bytes },
    (_, i) => new Uint8Array(r.stdout.subarray(i * bytes, (i + 1) * bytes)),
  );
  return { width, height, fps, frames };
}

// ---------------------------------------------------------------------------------------------
// Tensors ↔ frames
// ---------------------------------------------------------------------------------------------

/** Pixel value in [-1, 1] → byte: clip, (x+1)/2·255, round half up. */
export function toByte(x: number): number {
  const v = (Math.min(1, Math.max(-1, Number.isNaN(x) ? 0 : x)) + 1) * 127.5;
  return Math.floor(v + 0.5);
}

/** `[3, T, H, W]` channel-first floats in [-1, 1] (row-major) → T rgb24 frames. */
export function chwToFrames(data: Float32Array, T: number, H: number, W: number): Uint8Array[] {
  if (data.length !== 3 * T * H * W)
    throw new ShapeError('video', `has ${data.length} values, expected 3×${T}×${H}×${W}`);
  const plane = H * W;
  return Array.from({ length: T }, (_, t) => {
    const frame = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const base = (c * T + t) * plane; // [c, t, :, :]
      for (let p = 0; p < plane; p++) frame[3 * p + c] = toByte(data[base + p]!);
    }
    return frame;
  });
}

/** A decoded video tensor `[1, 3, T, H, W]` (or `[3, T, H, W]`) in [-1, 1] → T rgb24 frames. Does not dispose `video`. */
export async function tensorToFrames(
  video: tf.Tensor,
): Promise<{ width: number; height: number; frames: Uint8Array[] }> {
  const s = video.shape;
  const [C, T, H, W] = s.length === 5 && s[0] === 1 ? s.slice(1) : s.length === 4 ? s : [];
  if (C !== 3 || T === undefined || H === undefined || W === undefined)
    throw new ShapeError('video', `expected [1, 3, T, H, W] or [3, T, H, W], got [${s.join(', ')}]`);
  const data = (await video.data()) as Float32Array;
  return { width: W, height: H, frames: chwToFrames(data, T, H, W) };
}

/** rgb24 frames → a video tensor `[1, 3, T, H, W]` in [-1, 1] (x/255·2 − 1), e.g. to encode a film for `extend`. */
export function framesToTensor(frames: readonly Uint8Array[], width: number, height: number): tf.Tensor {
  const plane = width * height;
  const T = frames.length;
  const out = new Float32Array(3 * T * plane);
  frames.forEach((f, t) => {
    if (f.length !== plane * 3)
      throw new ShapeError(`frame ${t}`, `has ${f.length} bytes, expected ${width}×${height}×3`);
    for (let c = 0; c < 3; c++) {
      const base = (c * T + t) * plane; // [c, t, :, :]
      for (let p = 0; p < plane; p++) out[base + p] = (f[3 * p + c]! / 255) * 2 - 1;
    }
  });
  return tf.tensor(out, [1, 3, T, height, width]); // [B, C, T, H, W]
}
