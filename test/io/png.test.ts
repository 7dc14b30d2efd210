import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { crc32, decodePng, encodePng, PngError, readPng, writePng, writePngSequence } from '../../src/io/png.js';
import { findFfmpeg, readVideoFrames } from '../../src/io/video.js';
import type { Channels, Image } from '../../src/io/image.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'png-test-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const image = (width: number, height: number, channels: Channels, f: (i: number) => number): Image => ({
  width,
  height,
  channels,
  data: Uint8Array.from({ length: width * height * channels }, (_, i) => f(i) & 0xff),
});

describe('crc32', () => {
  it('matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('encodePng / decodePng', () => {
  it('round-trips exact pixels for every channel count', () => {
    for (const c of [1, 2, 3, 4] as const) {
      const img = image(7, 5, c, (i) => i * 37 + (i >> 3));
      const back = decodePng(encodePng(img));
      expect(back).toEqual(img);
    }
  });

  it('round-trips random images (all five filter types get used)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 9 }),
        fc.constantFrom<Channels>(1, 2, 3, 4),
        fc.uint8Array({ minLength: 324, maxLength: 324 }),
        (w, h, c, bytes) => {
          const img = { width: w, height: h, channels: c, data: bytes.slice(0, w * h * c) };
          expect(decodePng(encodePng(img))).toEqual(img);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('writes the header an independent decoder expects: IHDR fields, then IDAT, then IEND', () => {
    const png = encodePng(image(3, 2, 3, (i) => i));
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.toString('latin1', 12, 16)).toBe('IHDR');
    expect(png.readUInt32BE(16)).toBe(3);
    expect(png.readUInt32BE(20)).toBe(2);
    expect([png[24], png[25], png[26], png[27], png[28]]).toEqual([8, 2, 0, 0, 0]);
    expect(png.toString('latin1', png.length - 8, png.length - 4)).toBe('IEND');
  });

  it('is decoded to the same pixels by ffmpeg, and decodes what ffmpeg encodes', async () => {
    const img = image(13, 6, 3, (i) => (i * 29) ^ (i >> 2));
    const ours = path.join(tmp, 'ours.png');
    await writePng(ours, img);
    const viaFfmpeg = await readVideoFrames(ours);
    expect([viaFfmpeg.width, viaFfmpeg.height, viaFfmpeg.frames.length]).toEqual([13, 6, 1]);
    expect(Buffer.from(viaFfmpeg.frames[0]!).equals(Buffer.from(img.data))).toBe(true);

    for (const [fmt, c] of [
      ['rgb24', 3],
      ['rgba', 4],
      ['gray', 1],
    ] as const) {
      const src = image(13, 6, c, (i) => (i * 53) ^ (i >> 1));
      const theirs = path.join(tmp, `theirs-${fmt}.png`);
      const args = [
        '-hide_banner',
        '-loglevel',
        'error',
        '-f',
        'rawvideo',
        '-pix_fmt',
        fmt,
        '-s',
        '13x6',
        '-i',
        'pipe:0',
        '-frames:v',
        '1',
        '-pred',
        'mixed',
        '-pix_fmt',
        fmt,
        theirs,
      ];
      const r = spawnSync(findFfmpeg(), args, { input: src.data });
      expect(r.status).toBe(0);
      expect(await readPng(theirs)).toEqual(src);
    }
  });

  it('expands palette images (with tRNS alpha)', () => {
    const chunk = (type: string, data: Uint8Array) => {
      const b = Buffer.alloc(12 + data.length);
      b.writeUInt32BE(data.length, 0);
      b.write(type, 4, 'latin1');
      b.set(data, 8);
      b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
      return b;
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(2, 0);
    ihdr.writeUInt32BE(1, 4);
    ihdr[8] = 8;
    ihdr[9] = 3;
    const png = Buffer.concat([
      encodePng(image(1, 1, 1, () => 0)).subarray(0, 8),
      chunk('IHDR', ihdr),
      chunk('PLTE', Uint8Array.of(10, 20, 30, 40, 50, 60)),
      chunk('tRNS', Uint8Array.of(128)),
      chunk('IDAT', zlib.deflateSync(Uint8Array.of(0, 1, 0))),
      chunk('IEND', new Uint8Array(0)),
    ]);
    expect(decodePng(png)).toEqual({
      width: 2,
      height: 1,
      channels: 4,
      data: Uint8Array.of(40, 50, 60, 255, 10, 20, 30, 128),
    });
  });

  it('rejects corrupt files with a PngError naming the problem', () => {
    const good = encodePng(image(2, 2, 3, (i) => i));
    expect(() => decodePng(Buffer.from('not a png at all'), 'x.png')).toThrow('x.png: not a PNG (bad signature)');
    const badCrc = Buffer.from(good);
    badCrc[20] = badCrc[20]! ^ 1; // inside IHDR data
    expect(() => decodePng(badCrc, 'x.png')).toThrow('x.png: chunk IHDR: CRC mismatch');
    expect(() => decodePng(good.subarray(0, good.length - 12), 'x.png')).toThrow(PngError);
  });

  it('rejects malformed images when encoding', () => {
    expect(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) })).toThrow(
      'has 11 bytes, expected 2×2×3 = 12',
    );
  });
});

describe('writePng / readPng / writePngSequence', () => {
  it('writes atomically and refuses to overwrite without force', async () => {
    const f = path.join(tmp, 'a.png');
    const a = image(4, 4, 3, (i) => i);
    const b = image(4, 4, 3, (i) => 255 - i);
    await writePng(f, a);
    await expect(writePng(f, b)).rejects.toMatchObject({ code: 'EXISTS' });
    expect(await readPng(f)).toEqual(a);
    await writePng(f, b, { force: true });
    expect(await readPng(f)).toEqual(b);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('writes numbered frames', async () => {
    const dir = path.join(tmp, 'frames');
    const frames = [0, 1, 2].map((t) => image(3, 2, 3, (i) => i + t).data);
    const files = await writePngSequence(dir, frames, { width: 3, height: 2 });
    expect(files.map((f) => path.basename(f))).toEqual(['frame_00000.png', 'frame_00001.png', 'frame_00002.png']);
    expect((await readPng(files[2]!)).data).toEqual(frames[2]);
  });

  it('reports a missing file', async () => {
    await expect(readPng(path.join(tmp, 'nope.png'))).rejects.toMatchObject({ code: 'PNG' });
  });
});
