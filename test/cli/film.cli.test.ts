/**
 * `generate`, `extend` and `attention` as a user runs them (the real CLI through tsx) on the shipped
 * default model with 1–2 steps: the files they write, the documented errors (exit 2), `--force`, the
 * model a latents file records (portable), and Ctrl-C / SIGTERM (exit 130 / 143, nothing left behind).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { readLatentsFile } from '../../src/io/latentsFile.js';
import { readPng } from '../../src/io/png.js';
import { probeVideo } from '../../src/io/video.js';
import { runCli } from '../helpers/cli.js';

const MAIN = path.resolve('src/cli/main.ts');
let dir: string;
/** 2 scenes × 5 frames of 64×64: the quickest valid film for the default model. */
let small: string;

beforeAll(async () => {
  await selectBackend('cpu');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-film-'));
  small = path.join(dir, 'small.json');
  const scenes = [
    { prompt: 'a red circle bounces on a blue background', frames: 5 },
    { prompt: 'it spins on a green background', frames: 5, caption: 'spins' },
  ];
  fs.writeFileSync(
    small,
    JSON.stringify({
      scenes,
      width: 64,
      height: 64,
      negative_prompt: '',
      defaults: { steps: 2, guidance: 6, seed: 7, fps: 8 },
    }),
  );
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true }); // no shutdownBackends(): cpu only, and later files share the engine
});

const sub = (name: string) => {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  return d;
};
const errorLine = (stderr: string) => stderr.trim().split('\n');

describe('generate and extend', () => {
  test('generate (README command, 2 steps) writes the mp4, the contact sheet and the latents file; extend adds one scene', async () => {
    const out = path.join(dir, 'film'); // created by generate, as `--out out/film.mp4` in the README
    const film = path.join(out, 'film.mp4');
    const r = runCli(['generate', '--scenes', 'examples/three-scenes.json', '--out', film, '--steps', '2', '--json'], {
      timeoutMs: 120_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { scenes: number; frames: number; files: string[] };
    expect(report).toMatchObject({ scenes: 3, frames: 27 });
    expect(fs.readdirSync(out).sort()).toEqual(['film.latents.safetensors', 'film.mp4', 'film.sheet.png']);
    const info = await probeVideo(film);
    expect(info).toMatchObject({ frames: 3 * 9, width: 64, height: 64, fps: 8 });
    const sheet = await readPng(path.join(out, 'film.sheet.png'));
    expect(sheet.width).toBeGreaterThan(64 * 2);
    expect(sheet.height).toBeGreaterThan(3 * 64); // one row per scene
    const gen = await readLatentsFile(path.join(out, 'film.latents.safetensors'));
    expect(gen.latents.shape).toEqual([1, 3 * 5, 16, 8, 8]); // [1, S·f, C, h, w]: 9 frames → 5 latent frames (2× in time)
    expect(gen.promptEmbeds.shape).toEqual([3, 16, 128]);
    expect(gen.meta.scenes.map((s) => s.frames)).toEqual([9, 9, 9]);
    expect(gen.meta).toMatchObject({ steps: 2, guidance: 6, seed: 42, sampler: 'flow-euler', width: 64, height: 64 });

    // extend: the latents file next to the mp4 is found; output = all four scenes
    const film2 = path.join(out, 'film2.mp4');
    const e = runCli(
      ['extend', '--from', film, '--prompt', 'it grows on a red background', '--out', film2, '--steps', '1'],
      { timeoutMs: 120_000 },
    );
    expect(e.stderr).toBe('');
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/wrote .*film2\.mp4.*4 scenes, 36 frames/);
    expect((await probeVideo(film2)).frames).toBe(4 * 9);
    expect(fs.existsSync(path.join(out, 'film2.sheet.png'))).toBe(true);
    const ext = await readLatentsFile(path.join(out, 'film2.latents.safetensors'));
    expect(ext.latents.shape).toEqual([1, 4 * 5, 16, 8, 8]);
    expect(ext.meta.scenes.map((s) => s.prompt)).toEqual([
      ...gen.meta.scenes.map((s) => s.prompt),
      'it grows on a red background',
    ]);
    // the previous scenes are carried over exactly
    const prevPart = tf.slice(ext.latents, [0, 0], [-1, 3 * 5]); // the 3 scenes' 5 latent frames each
    expect(Array.from(await prevPart.data())).toEqual(Array.from(await gen.latents.data()));
    expect(Array.from(await tf.slice(ext.promptEmbeds, [0], [3]).data())).toEqual(
      Array.from(await gen.promptEmbeds.data()),
    );
    tf.dispose(
      [
        prevPart,
        gen.latents,
        gen.promptEmbeds,
        ext.latents,
        ext.promptEmbeds,
        gen.negativeEmbeds ?? [],
        ext.negativeEmbeds ?? [],
      ].flat(),
    );
  });

  test('extend from an mp4 without its latents file needs the scene file (one-line error, exit 2)', () => {
    const out = sub('bare');
    const bare = path.join(out, 'bare.mp4');
    fs.writeFileSync(bare, 'not really a video');
    const r = runCli(['extend', '--from', bare, '--prompt', 'it stays', '--out', path.join(out, 'x.mp4')]);
    expect(r.code).toBe(2);
    expect(errorLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /bare\.mp4: no bare\.latents\.safetensors next to it; give the scene file .* with --scenes/,
    );
  });

  test('an existing output is not overwritten without --force (exit 2, file untouched, nothing else written); --force replaces it', async () => {
    const out = sub('force');
    const film = path.join(out, 'film.mp4');
    fs.writeFileSync(film, 'keep me');
    const r = runCli(['generate', '--scenes', small, '--out', film]);
    expect(r.code).toBe(2);
    expect(errorLine(r.stderr)).toEqual([`mask2dit: ${film}: already exists (use --force to overwrite)`]);
    expect(fs.readFileSync(film, 'utf8')).toBe('keep me');
    expect(fs.readdirSync(out)).toEqual(['film.mp4']);
    const f = runCli(
      ['generate', '--scenes', small, '--out', film, '--steps', '1', '--force', '--frames', path.join(out, 'frames')],
      { timeoutMs: 120_000 },
    );
    expect(f.stderr).toBe('');
    expect(f.code).toBe(0);
    expect((await probeVideo(film)).frames).toBe(10);
    expect(fs.readdirSync(path.join(out, 'frames'))).toHaveLength(10);
    expect(fs.readdirSync(out).sort()).toEqual(['film.latents.safetensors', 'film.mp4', 'film.sheet.png', 'frames']);
  });
});

describe('bad scene files: the documented one-line messages, exit 2, nothing written', () => {
  const cases: [string, unknown, RegExp][] = [
    [
      'frames and size',
      {
        scenes: [
          { prompt: 'a', frames: 9 },
          { prompt: 'b', frames: 10 },
        ],
        width: 50,
        height: 64,
      },
      /scenes\[1\]\.frames: must be 4k\+1, got 10; width: must be a positive multiple of 16, got 50/,
    ],
    ['a typo', { scenes: [{ promt: 'a', frames: 9 }], width: 64, height: 64 }, /scenes\[0\]: unknown key "promt"/],
    [
      'unequal scenes',
      {
        scenes: [
          { prompt: 'a', frames: 9 },
          { prompt: 'b', frames: 5 },
        ],
        width: 64,
        height: 64,
      },
      /scenes\[1\]\.frames: every scene must have the same frame count .* got 5 and 9/,
    ],
  ];
  test.each(cases)('%s', (name, content, message) => {
    const out = sub(`bad-${name.replace(/\W+/g, '-')}`);
    const file = path.join(out, 'scenes.json');
    fs.writeFileSync(file, JSON.stringify(content));
    const r = runCli(['generate', '--scenes', file, '--out', path.join(out, 'film.mp4')]);
    expect(r.code).toBe(2);
    expect(errorLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`scenes\\.json: `));
    expect(r.stderr).toMatch(message);
    expect(fs.readdirSync(out)).toEqual(['scenes.json']);
  });

  test('invalid JSON and a missing file', () => {
    const out = sub('bad-json');
    const file = path.join(out, 'scenes.json');
    fs.writeFileSync(file, '{"scenes": [');
    const r = runCli(['generate', '--scenes', file, '--out', path.join(out, 'film.mp4')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/scenes\.json: invalid JSON/);
    const m = runCli(['generate', '--scenes', path.join(out, 'nope.json'), '--out', path.join(out, 'film.mp4')]);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/nope\.json: no such file/);
  });
});

describe('Ctrl-C and SIGTERM', () => {
  /** Starts a 1000-step generate into `out/new/`, sends `signal` after step 2; the exit code and stderr. */
  async function interrupt(out: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
    const film = path.join(out, 'new', 'film.mp4'); // out/new/ is created for the run and removed again
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        'generate',
        '--scenes',
        small,
        '--out',
        film,
        '--steps',
        '1000',
        '--progress',
        '--frames',
        path.join(out, 'new', 'frames'),
      ],
      {
        env: { ...process.env, MASK2DIT_LOG: 'warn' },
      },
    );
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no denoising step within 60 s: ${stderr}`)), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/step +2\/1000/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill(signal);
    return { code: await exited, stderr };
  }

  test.each([
    ['SIGINT', 130],
    ['SIGTERM', 143], // 128 + 15, as a shell reports a process SIGTERM killed
  ] as const)(
    '%s while denoising: exit %d, "interrupted; no partial output written", nothing left in the output folder',
    async (signal, exit) => {
      const out = sub(`interrupt-${signal}`);
      const { code, stderr } = await interrupt(out, signal);
      expect(code).toBe(exit);
      expect(stderr).toMatch(/mask2dit: interrupted; no partial output written\n$/);
      expect(fs.readdirSync(out)).toEqual([]);
    },
  );
});

describe('attention', () => {
  test("writes the heatmap of one block/head at one step; --scene keeps that scene's query rows", async () => {
    const out = sub('attention');
    const png = path.join(out, 'attn.png');
    const r = runCli(
      [
        'attention',
        '--scenes',
        small,
        '--block',
        '1',
        '--head',
        '1',
        '--step',
        '1',
        '--scene',
        '1',
        '--out',
        png,
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      queries: number;
      keys: number;
      width: number;
      height: number;
      max: number;
    };
    // per scene 16 text + 3 latent frames (5 frames at 2× in time) × 4×4 patches = 64 tokens; 2 scenes
    expect(report).toMatchObject({ queries: 64, keys: 128 });
    expect(report.max).toBeGreaterThan(0);
    const img = await readPng(png);
    expect([img.width, img.height]).toEqual([report.width, report.height]);
    expect(fs.readdirSync(out)).toEqual(['attn.png']);
  });

  test('a block outside the model is a one-line error naming the range', () => {
    const r = runCli([
      'attention',
      '--scenes',
      small,
      '--block',
      '4',
      '--head',
      '0',
      '--step',
      '0',
      '--out',
      path.join(dir, 'never.png'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--block: 4 is out of range; the transformer has blocks 4 \(0 … 3\)/);
    expect(fs.existsSync(path.join(dir, 'never.png'))).toBe(false);
  });
});

describe('output paths: refused before any work (one line, exit 2, nothing written)', () => {
  /** Runs generate with `--progress`: a refusal before any work is the error line alone, no phase line. */
  const refused = (out: string, args: string[]) => {
    const r = runCli(['generate', '--scenes', small, '--progress', ...args]);
    expect(r.code).toBe(2);
    expect(errorLine(r.stderr)).toHaveLength(1);
    expect(fs.readdirSync(out).sort()).toEqual(['afile']);
    return r.stderr.trim();
  };

  test('--frames naming a file: "is a file, not a folder"', () => {
    const out = sub('frames-file');
    const file = path.join(out, 'afile');
    fs.writeFileSync(file, 'keep me');
    expect(refused(out, ['--out', path.join(out, 'new', 'film.mp4'), '--frames', file])).toBe(
      `mask2dit: ${file}: is a file, not a folder`,
    );
    expect(refused(out, ['--out', path.join(out, 'film.mp4'), '--frames', file, '--force'])).toBe(
      `mask2dit: ${file}: is a file, not a folder`,
    );
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });

  test('an --out or --frames inside a file: names that file as not a directory', () => {
    const out = sub('parent-file');
    const file = path.join(out, 'afile');
    fs.writeFileSync(file, '');
    const notDir = `cannot write it: ${file} is not a directory`;
    expect(refused(out, ['--out', path.join(file, 'film.mp4')])).toBe(
      `mask2dit: ${path.join(file, 'film.mp4')}: ${notDir}`,
    );
    expect(refused(out, ['--out', path.join(file, 'sub', 'film.mp4')])).toBe(
      `mask2dit: ${path.join(file, 'sub', 'film.mp4')}: ${notDir}`,
    );
    expect(refused(out, ['--out', path.join(out, 'film.mp4'), '--frames', path.join(file, 'frames')])).toBe(
      `mask2dit: ${path.join(file, 'frames')}: ${notDir}`,
    );
  });

  test('an --out that is not .mp4 (generate and extend), a --sheet that is not .png', () => {
    const out = sub('extension');
    fs.writeFileSync(path.join(out, 'afile'), '');
    const png = path.join(out, 'film.png');
    expect(refused(out, ['--out', png])).toBe(
      `mask2dit: --out ${png}: cannot write a ".png" file; the film is an H.264 mp4: use a name ending in .mp4`,
    );
    expect(refused(out, ['--out', path.join(out, 'film')])).toMatch(
      /--out .*film: no file extension; .* use a name ending in \.mp4$/,
    );
    expect(refused(out, ['--out', path.join(out, 'film.mp4'), '--sheet', path.join(out, 'sheet.jpg')])).toMatch(
      /--sheet .*sheet\.jpg: the contact sheet is a PNG: use a name ending in \.png$/,
    );
    const e = runCli([
      'extend',
      '--from',
      path.join(out, 'afile'),
      '--scenes',
      small,
      '--prompt',
      'it stays',
      '--out',
      path.join(out, 'film2.webm'),
    ]);
    expect(e.code).toBe(2);
    expect(errorLine(e.stderr)).toEqual([
      `mask2dit: --out ${path.join(out, 'film2.webm')}: cannot write a ".webm" file; the film is an H.264 mp4: use a name ending in .mp4`,
    ]);
    expect(fs.readdirSync(out)).toEqual(['afile']);
  });
});

describe('the model a latents file records', () => {
  test('is portable (the shipped model by name, others relative to the film); extend finds it after the folder moved', async () => {
    const a = sub('move-a');
    fs.symlinkSync(path.resolve('weights/mask2dit-world'), path.join(a, 'mymodel'), 'dir'); // "another" model, kept next to the films
    for (const args of [
      ['--out', path.join(a, 'film.mp4')],
      ['--out', path.join(a, 'mine.mp4'), '--model', path.join(a, 'mymodel')],
    ]) {
      const r = runCli(['generate', '--scenes', small, '--steps', '1', ...args], { timeoutMs: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    const model = async (file: string) => {
      const f = await readLatentsFile(file);
      tf.dispose([f.latents, f.promptEmbeds, f.negativeEmbeds ?? []].flat());
      return f.meta.model;
    };
    expect(await model(path.join(a, 'film.latents.safetensors'))).toBe('package:weights/mask2dit-world');
    expect(await model(path.join(a, 'mine.latents.safetensors'))).toBe('mymodel');

    const b = path.join(dir, 'move-b');
    fs.renameSync(a, b);
    for (const name of ['film', 'mine']) {
      const e = runCli(
        [
          'extend',
          '--from',
          path.join(b, `${name}.mp4`),
          '--prompt',
          'it grows on a red background',
          '--out',
          path.join(b, `${name}2.mp4`),
          '--steps',
          '1',
        ],
        { timeoutMs: 120_000 },
      );
      expect(e.stderr).toBe(''); // no "model not found" warning
      expect(e.code).toBe(0);
      expect(e.stdout).toMatch(/3 scenes, 15 frames/);
    }
    expect(await model(path.join(b, 'film2.latents.safetensors'))).toBe('package:weights/mask2dit-world');
    expect(await model(path.join(b, 'mine2.latents.safetensors'))).toBe('mymodel'); // B/mymodel was used, not the default
  });
});

test("extend --help says its settings default to the film's, not the built-in defaults", () => {
  const r = runCli(['extend', '--help']);
  expect(r.code).toBe(0);
  const help = r.stdout.replace(/\s+/g, ' '); // commander wraps the descriptions
  expect(help).not.toMatch(/scene file's/);
  for (const opt of ['--steps <n>', '--guidance <g>', '--sampler <name>', '--fps <n>'])
    expect(help).toMatch(
      new RegExp(`${opt} [^(]*\\(default: the film's, from its latents file or the --scenes file, else`),
    );
  expect(help).toMatch(/--seed <s> [^(]*\(default: the film's seed \+ the new scene's index, else 0\)/);
  expect(help).toMatch(
    /--model <dir> .*?\(default: the one recorded in the film's latents file, else the shipped weights\/mask2dit-world\)/,
  );
});

test('generate --help documents the options', () => {
  const r = runCli(['generate', '--help']);
  expect(r.code).toBe(0);
  for (const opt of [
    '--scenes',
    '--out',
    '--model',
    '--steps',
    '--guidance',
    '--seed',
    '--sampler',
    '--fps',
    '--frames',
    '--sheet',
    '--force',
    '--quiet',
    '--latents-only',
  ])
    expect(r.stdout).toContain(opt);
});
