import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { ShapeError } from '../../src/errors.js';
import { pendingCleanups } from '../../src/io/atomic.js';
import {
  chwToFrames,
  findFfmpeg,
  framesToTensor,
  probeVideo,
  readVideoFrames,
  tensorToFrames,
  toByte,
  writeMp4,
} from '../../src/io/video.js';
import { childPids, isAlive, runScript, src, waitFor } from './childProcess.js';

let tmp: string;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'video-test-'));
  await tf.setBackend('cpu');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d);
  return d;
}

/** A smooth test pattern (gradients plus a moving square), the kind of content H.264 keeps well. */
function frame(W: number, H: number, t: number): Uint8Array {
  const f = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      const inSquare = Math.abs(x - (8 + 3 * t)) < 6 && Math.abs(y - H / 2) < 6;
      f[i] = inSquare ? 230 : Math.round((x / W) * 200);
      f[i + 1] = inSquare ? 40 : Math.round((y / H) * 200);
      f[i + 2] = 60 + 10 * t;
    }
  }
  return f;
}

const meanAbsError = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;

describe('ffmpeg', () => {
  it('is found (the @ffmpeg-installer binary unless MASK2DIT_FFMPEG is set)', () => {
    expect(fs.existsSync(findFfmpeg())).toBe(true);
  });

  it('MASK2DIT_FFMPEG pointing nowhere is a NO_FFMPEG error', () => {
    const saved = process.env['MASK2DIT_FFMPEG'];
    process.env['MASK2DIT_FFMPEG'] = '/nonexistent/ffmpeg';
    try {
      expect(() => findFfmpeg()).toThrow(
        expect.objectContaining({
          code: 'NO_FFMPEG',
          message: 'MASK2DIT_FFMPEG=/nonexistent/ffmpeg is not an executable file',
        }),
      );
    } finally {
      if (saved === undefined) delete process.env['MASK2DIT_FFMPEG'];
      else process.env['MASK2DIT_FFMPEG'] = saved;
    }
  });
});

describe('writeMp4 / probeVideo / readVideoFrames', () => {
  it('writes an H.264 mp4 whose frame count and size read back, and whose pixels are close', async () => {
    const d = dir('roundtrip');
    const f = path.join(d, 'film.mp4');
    const frames = Array.from({ length: 9 }, (_, t) => frame(64, 48, t));
    async function* source() {
      for (const fr of frames) yield fr;
    }
    expect(await writeMp4(f, source(), { width: 64, height: 48, fps: 8 })).toEqual({
      frames: 9,
      width: 64,
      height: 48,
    });
    expect(await probeVideo(f)).toEqual({ width: 64, height: 48, frames: 9, fps: 8 });
    const back = await readVideoFrames(f);
    expect([back.width, back.height, back.frames.length]).toEqual([64, 48, 9]);
    for (let t = 0; t < 9; t++) expect(meanAbsError(back.frames[t]!, frames[t]!)).toBeLessThan(3);
    expect((await readVideoFrames(f, { maxFrames: 4 })).frames).toHaveLength(4);
    expect(fs.readdirSync(d)).toEqual(['film.mp4']);
    expect(pendingCleanups()).toBe(0);
  });

  it('pads odd sizes to even (yuv420p) and says so in the result', async () => {
    const f = path.join(dir('odd'), 'odd.mp4');
    const r = await writeMp4(f, [frame(33, 21, 0), frame(33, 21, 1)], { width: 33, height: 21 });
    expect(r).toEqual({ frames: 2, width: 34, height: 22 });
    expect(await probeVideo(f)).toMatchObject({ width: 34, height: 22, frames: 2 });
  });

  it('streams many large frames with backpressure', async () => {
    const f = path.join(dir('many'), 'many.mp4');
    let produced = 0;
    function* source() {
      for (let t = 0; t < 40; t++, produced++) yield frame(320, 240, t % 20);
    }
    expect(await writeMp4(f, source(), { width: 320, height: 240, fps: 24 })).toMatchObject({ frames: 40 });
    expect(produced).toBe(40);
    expect(await probeVideo(f)).toMatchObject({ frames: 40, fps: 24 });
  });

  it('leaves nothing behind when the frame source throws mid-stream, and kills ffmpeg', async () => {
    const d = dir('throws');
    async function* source() {
      for (let t = 0; t < 3; t++) yield frame(64, 64, t);
      throw new Error('decoder exploded');
    }
    await expect(writeMp4(path.join(d, 'film.mp4'), source(), { width: 64, height: 64 })).rejects.toThrow(
      'decoder exploded',
    );
    expect(fs.readdirSync(d)).toEqual([]);
    expect(childPids(process.pid, 'ffmpeg').filter(isAlive)).toEqual([]);
    expect(pendingCleanups()).toBe(0);
  });

  it('refuses an existing output without force and leaves it untouched; force overwrites', async () => {
    const d = dir('exists');
    const f = path.join(d, 'film.mp4');
    fs.writeFileSync(f, 'precious');
    await expect(writeMp4(f, [frame(16, 16, 0)], { width: 16, height: 16 })).rejects.toMatchObject({ code: 'EXISTS' });
    expect(fs.readFileSync(f, 'utf8')).toBe('precious');
    expect(fs.readdirSync(d)).toEqual(['film.mp4']);
    await writeMp4(f, [frame(16, 16, 0)], { width: 16, height: 16, force: true });
    expect(await probeVideo(f)).toMatchObject({ frames: 1, width: 16, height: 16 });
  });

  it('rejects a frame of the wrong size with a ShapeError and leaves nothing behind', async () => {
    const d = dir('badframe');
    const err = await writeMp4(path.join(d, 'x.mp4'), [frame(16, 16, 0), new Uint8Array(10)], {
      width: 16,
      height: 16,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as Error).message).toBe(`${path.join(d, 'x.mp4')} frame 1: has 10 bytes, expected 16×16×3 = 768`);
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('rejects zero frames and leaves nothing behind', async () => {
    const d = dir('empty');
    await expect(writeMp4(path.join(d, 'x.mp4'), [], { width: 16, height: 16 })).rejects.toMatchObject({
      code: 'VIDEO',
    });
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('aborts on an AbortSignal mid-stream and leaves nothing behind', async () => {
    const d = dir('abort');
    const ac = new AbortController();
    async function* source() {
      for (let t = 0; ; t++) {
        if (t === 3) ac.abort();
        yield frame(32, 32, t % 5);
      }
    }
    await expect(
      writeMp4(path.join(d, 'x.mp4'), source(), { width: 32, height: 32, signal: ac.signal }),
    ).rejects.toMatchObject({ code: 'ABORTED' });
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('reports bad options before ffmpeg runs, and ffmpeg failures as typed errors', async () => {
    const d = dir('ffmpegfail');
    const one = () => [frame(16, 16, 0)];
    const out = path.join(d, 'x.mp4');
    await expect(writeMp4(out, one(), { width: 16, height: 16, fps: 0 })).rejects.toThrow(
      'fps must be in (0, 1000], got 0',
    );
    await expect(
      writeMp4(path.join(d, 'missing-dir', 'x.mp4'), one(), { width: 16, height: 16 }),
    ).rejects.toMatchObject({ code: 'IO' });
    await expect(writeMp4(out, one(), { width: 16, height: 16, ffmpeg: '/bin/false' })).rejects.toMatchObject({
      code: 'FFMPEG',
      message: `${out}: ffmpeg exited with code 1`,
    });
    await expect(
      writeMp4(out, one(), { width: 16, height: 16, ffmpeg: path.join(d, 'no-ffmpeg') }),
    ).rejects.toMatchObject({ code: 'NO_FFMPEG' });
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('names missing and unreadable inputs', async () => {
    const d = dir('probe');
    await expect(probeVideo(path.join(d, 'nope.mp4'))).rejects.toMatchObject({
      code: 'VIDEO',
      message: `${path.join(d, 'nope.mp4')}: no such file`,
    });
    const junk = path.join(d, 'junk.mp4');
    fs.writeFileSync(junk, 'this is not a video');
    await expect(probeVideo(junk)).rejects.toMatchObject({ code: 'VIDEO' });
    await expect(readVideoFrames(junk)).rejects.toMatchObject({ code: 'VIDEO' });
  });

  it('a SIGINT mid-stream kills ffmpeg and leaves no partial mp4', async () => {
    const d = dir('sigint');
    const code = `
      import { writeMp4 } from ${src('io/video.ts')};
      async function* frames() {
        for (let t = 0; ; t++) {
          yield new Uint8Array(64 * 64 * 3).fill(t * 10);
          if (t === 4) { console.log('ready'); await new Promise((r) => setTimeout(r, 20000)); return; }
        }
      }
      await writeMp4(process.argv[2], frames(), { width: 64, height: 64 });
    `;
    const child = runScript(tmp, 'sigint-video', code, [path.join(d, 'film.mp4')]);
    let ffmpegPids: number[] = [];
    try {
      await child.ready;
      await waitFor(() => fs.readdirSync(d).length === 1); // ffmpeg has created the temp file
      ffmpegPids = childPids(child.proc.pid!, 'ffmpeg');
      expect(ffmpegPids).toHaveLength(1);
      child.proc.kill('SIGINT');
    } finally {
      setTimeout(() => child.proc.kill('SIGKILL'), 10000).unref(); // never leave it running
    }
    const r = await child.exited;
    expect(r.signal).toBe('SIGINT');
    await waitFor(() => !ffmpegPids.some(isAlive), 5000);
    expect(fs.readdirSync(d)).toEqual([]);
  });
});

describe('tensors ↔ frames', () => {
  it('maps [-1, 1] to bytes: clip, (x+1)/2·255, round half up', () => {
    expect([-2, -1, 0, 1, 2, Number.NaN].map(toByte)).toEqual([0, 0, 128, 255, 255, 128]);
    expect(toByte(-0.5)).toBe(64); // 63.75
    expect(toByte(0.5)).toBe(191); // 191.25
  });

  it('tensorToFrames reads [1, 3, T, H, W] channel-first into interleaved RGB frames', async () => {
    // T = 2, H = 1, W = 2: value = channel code + time/10 + x/100, so every byte is traceable
    const data = new Float32Array(3 * 2 * 1 * 2);
    for (let c = 0; c < 3; c++)
      for (let t = 0; t < 2; t++)
        for (let x = 0; x < 2; x++) data[(c * 2 + t) * 2 + x] = -1 + 0.5 * c + 0.2 * t + 0.1 * x;
    const v = tf.tensor(data, [1, 3, 2, 1, 2]);
    const { width, height, frames } = await tensorToFrames(v);
    v.dispose();
    expect([width, height]).toEqual([2, 1]);
    const expected = (t: number) => [0, 1].flatMap((x) => [0, 1, 2].map((c) => toByte(data[(c * 2 + t) * 2 + x]!)));
    expect([...frames[0]!]).toEqual(expected(0));
    expect([...frames[1]!]).toEqual(expected(1));
    expect(chwToFrames(data, 2, 1, 2)).toEqual(frames);
  });

  it('framesToTensor inverts tensorToFrames exactly on bytes', async () => {
    const frames = [frame(8, 4, 0), frame(8, 4, 1), frame(8, 4, 2)];
    const t = framesToTensor(frames, 8, 4);
    expect(t.shape).toEqual([1, 3, 3, 4, 8]);
    const back = await tensorToFrames(t);
    t.dispose();
    expect(back.frames).toEqual(frames);
  });

  it('rejects other shapes', async () => {
    const v = tf.zeros([2, 3, 1, 2, 2]);
    await expect(tensorToFrames(v)).rejects.toThrow('expected [1, 3, T, H, W] or [3, T, H, W], got [2, 3, 1, 2, 2]');
    v.dispose();
  });
});
