/**
 * `mask2dit forward text-encoder` as a user runs it: the t5_encoder_tiny fixture's ids through the CLI
 * match the reference's unmasked `last_hidden_state` (and `--mask inputs` its masked one) within
 * 1e-4/1e-4; `--prompt` tokenizes with the folder's spiece.model; bad flags exit 2 with one line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { openSafetensors } from '../../src/io/safetensors.js';
import { runCli } from '../helpers/cli.js';
import { expectClose } from '../helpers/close.js';
import { fixturePath, get, loadFixture } from '../helpers/fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2d-fwd-t5-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function read(file: string, name: string): Promise<Float32Array> {
  const src = await openSafetensors(file);
  try {
    return (await src.read(name)) as Float32Array;
  } finally {
    await src.close();
  }
}

const base = [
  'forward',
  'text-encoder',
  '--backend',
  'cpu',
  '--model',
  fixturePath('t5_encoder_tiny'),
  '--weights',
  fixturePath('t5_encoder_tiny', 'weights.safetensors'),
];

describe('forward text-encoder', () => {
  test('input_ids → last_hidden_state: unmasked by default, --mask inputs = the masked reference call', async () => {
    const io = await loadFixture('t5_encoder_tiny');
    for (const [mask, want, offload] of [
      [undefined, 'last_hidden_state', 'none'],
      ['inputs', 'last_hidden_state.masked', 'blocks'],
    ] as const) {
      const out = path.join(tmp, `out-${mask ?? 'none'}.safetensors`);
      const r = runCli([
        ...base,
        '--inputs',
        fixturePath('t5_encoder_tiny', 'io.safetensors'),
        '--out',
        out,
        ...(mask !== undefined ? ['--mask', mask] : []),
        '--offload',
        offload,
        '--json',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ shape: [2, 40, 32], offload });
      expectClose(want, await read(out, 'last_hidden_state'), get(io, want).data as Float32Array, 1e-4, 1e-4);
    }
  });

  test('--prompt tokenizes with the folder tokenizer (cogvideox_encode_prompt) and writes the ids', async () => {
    const dir = path.join(tmp, 'enc');
    fs.mkdirSync(path.join(dir, 'tokenizer'), { recursive: true });
    fs.copyFileSync(
      fixturePath('cogvideox_encode_prompt', 'spiece.model'),
      path.join(dir, 'tokenizer', 'spiece.model'),
    );
    const cfg = JSON.parse(fs.readFileSync(fixturePath('cogvideox_encode_prompt', 'config.json'), 'utf8')) as {
      text_encoder: unknown;
    };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg.text_encoder));
    fs.copyFileSync(fixturePath('cogvideox_encode_prompt', 'weights.safetensors'), path.join(dir, 'model.safetensors'));
    const out = path.join(tmp, 'prompt.safetensors');
    const text = 'A cat walks on the grass, realistic.';
    const r = runCli([
      'forward',
      'text-encoder',
      '--backend',
      'cpu',
      '--model',
      dir,
      '--prompt',
      text,
      '--max-length',
      '32',
      '--out',
      out,
    ]);
    expect(r.code).toBe(0);
    const io = await loadFixture('cogvideox_encode_prompt');
    const ids = Array.from(await read(out, 'input_ids'));
    expect(ids).toEqual((get(io, 'diffusers_a.input_ids').data as number[]).slice(32, 64)); // row 1 of the diffusers_a call
    expectClose(
      'prompt_embeds row 1',
      await read(out, 'last_hidden_state'),
      (get(io, 'diffusers_a.prompt_embeds').data as Float32Array).subarray(32 * 8),
      1e-4,
      1e-4,
    );
  });

  test('bad use exits 2 with one line, nothing written', () => {
    const out = path.join(tmp, 'never.safetensors');
    for (const extra of [
      [],
      ['--inputs', 'x.safetensors', '--prompt', 'a'],
      ['--prompt', 'a', '--mask', 'inputs'],
      ['--inputs', fixturePath('t5_encoder_tiny', 'io.safetensors'), '--mask', 'sometimes'],
    ]) {
      const r = runCli([...base, ...extra, '--out', out]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const r = runCli([
      'forward',
      'text-encoder',
      '--backend',
      'cpu',
      '--model',
      fixturePath('t5_encoder_tiny'),
      '--weights',
      fixturePath('t5_encoder_tiny', 'weights.safetensors'),
      '--prompt',
      'a',
      '--out',
      out,
    ]);
    expect(r.code).toBe(2); // no tokenizer in that folder
    expect(r.stderr).toMatch(/spiece\.model|tokenizer/);
    expect(fs.existsSync(out)).toBe(false);
  });
});
