/**
 * A pipeline folder with the official Mask²DiT release's layout (SentencePiece tokenizer, T5 encoder and
 * transformer in sharded bf16 safetensors, VAE, DDIM scheduler), written by the synthetic-folder generator
 * at its tiny scale: `generate --model <folder> --scenes prompts.json` runs from text, as a user runs it,
 * and each broken folder is one error line naming the file, exit 2, nothing written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { selectBackend } from '../../src/backend/index.js';
import { readLatentsFile } from '../../src/io/latentsFile.js';
import { writeSyntheticPipeline } from '../../src/model/syntheticPipeline.js';
import { runCli } from '../helpers/cli.js';

let tmp: string;
let model: string;
let scenes: string;

beforeAll(async () => {
  await selectBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-real-'));
  model = path.join(tmp, 'Mask2DiT-tiny');
  await writeSyntheticPipeline(model, { scale: 'tiny', seed: 3 });
  scenes = path.join(tmp, 'prompts.json');
  const prompt = (s: string) => ({ prompt: s, frames: 5 });
  fs.writeFileSync(
    scenes,
    JSON.stringify({
      scenes: [
        prompt('Actor1 (brown hair tied back, wearing a green hiking vest) stands at the edge of the clearing.'),
        prompt('Actor2 watches Actor1 with a smile ☃, appreciating the tranquility of the early morning.'),
        prompt('They both take in the serene beauty of the forest.'),
      ],
      width: 64,
      height: 64,
      negative_prompt: 'low quality',
      defaults: { steps: 2, guidance: 6, seed: 1, fps: 8 },
    }),
  );
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of the tiny folder with `change` applied. */
function broken(name: string, change: (dir: string) => void): string {
  const dir = path.join(tmp, name);
  fs.cpSync(model, dir, { recursive: true });
  change(dir);
  return dir;
}

describe('generate from text with a real-layout folder', () => {
  test('3 scenes from prompts: mp4, sheet and latents; the <unk> and the truncation are said on stderr', async () => {
    const out = path.join(tmp, 'film.mp4');
    const r = runCli(['generate', '--backend', 'cpu', '--model', model, '--scenes', scenes, '--out', out, '--json'], {
      timeoutMs: 180_000,
    });
    expect(r.code).toBe(0);
    expect(fs.existsSync(out) && fs.existsSync(out.replace(/\.mp4$/, '.sheet.png'))).toBe(true);
    expect(r.stderr).toMatch(/scene 2's prompt: 1 part\(s\) unknown to the tokenizer .* "☃"/);
    expect(r.stderr).toMatch(/scene 1's prompt: \d+ tokens, the model reads 32; the end is cut/);
    const film = await readLatentsFile(out.replace(/\.mp4$/, '.latents.safetensors'));
    expect(film.latents.shape).toEqual([1, 3 * 2, 4, 8, 8]); // [1, S·f, C, h, w]
    film.latents.dispose();
    film.promptEmbeds?.dispose();
    film.negativeEmbeds?.dispose();
  });

  const cases: [string, (d: string) => void, RegExp][] = [
    ['no tokenizer', (d) => fs.rmSync(path.join(d, 'tokenizer'), { recursive: true }), /tokenizer/],
    [
      'tokenizer.json only',
      (d) => {
        fs.rmSync(path.join(d, 'tokenizer'), { recursive: true });
        fs.mkdirSync(path.join(d, 'tokenizer'));
        fs.writeFileSync(
          path.join(d, 'tokenizer', 'tokenizer.json'),
          '{"version": "1.0", "model": {"type": "Unigram"}}',
        );
      },
      /tokenizer\.json.*spiece\.model|spiece\.model.*tokenizer\.json/,
    ],
    [
      'spiece.model not a protobuf',
      (d) => fs.writeFileSync(path.join(d, 'tokenizer', 'spiece.model'), '{"not": "a protobuf"}'),
      /spiece\.model/,
    ],
    ['no text encoder', (d) => fs.rmSync(path.join(d, 'text_encoder'), { recursive: true }), /text_encoder/],
  ];
  for (const [name, change, message] of cases) {
    test(`${name}: one line naming the file, exit 2, nothing written`, () => {
      const dir = broken(name.replace(/\W+/g, '-'), change);
      const out = path.join(tmp, `${name.replace(/\W+/g, '-')}.mp4`);
      const r = runCli(['generate', '--backend', 'cpu', '--model', dir, '--scenes', scenes, '--out', out], {
        timeoutMs: 120_000,
      });
      expect(r.code).toBe(2);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('mask2dit:')),
      ).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(
        fs.readdirSync(tmp).filter((f) => f.startsWith(name.replace(/\W+/g, '-')) && f !== name.replace(/\W+/g, '-')),
      ).toEqual([]);
    });
  }

  test('a checkpoint too large even for offload: refused before loading, exit 2, nothing written', () => {
    const out = path.join(tmp, 'too-large.mp4');
    const r = runCli(['generate', '--backend', 'wasm', '--model', model, '--scenes', scenes, '--out', out], {
      env: { MASK2DIT_WASM_BUDGET_MIB: '0.01' },
      timeoutMs: 120_000,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/even (for|with) offload|too large/i);
    expect(fs.existsSync(out)).toBe(false);
  });
});
