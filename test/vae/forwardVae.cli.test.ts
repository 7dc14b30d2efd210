/**
 * `forward vae-decode` / `forward vae-encode` (src/cli/commands/forwardVae.ts) on the fixtures: the
 * written tensors carry the fixtures' names and match them within tolerance. The commands are
 * mounted on a fresh commander program here (main.ts wiring is the lead's), parsed like argv.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Command } from 'commander';
import { shutdownBackends } from '../../src/backend/index.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { registerVaeForward } from '../../src/cli/commands/forwardVae.js';
import { ConfigError } from '../../src/errors.js';
import { SafetensorsError } from '../../src/errors.js';
import { expectClose } from '../helpers/close.js';
import { fixturePath, get, loadFixture, type FixtureTensor } from '../helpers/fixtures.js';

/** Every tensor of a written safetensors file. */
async function readOut(file: string): Promise<Map<string, FixtureTensor>> {
  const src = await openSafetensors(file);
  const out = new Map<string, FixtureTensor>();
  for (const n of src.names())
    out.set(n, { shape: src.info(n).shape, dtype: src.info(n).dtype, data: (await src.read(n)) as Float32Array });
  await src.close();
  return out;
}

afterAll(() => shutdownBackends());

async function run(args: string[]): Promise<void> {
  const program = new Command().option('--backend <name>').option('--threads <n>').exitOverride();
  registerVaeForward(program.command('forward'));
  await program.parseAsync(args, { from: 'user' });
}

describe('forward vae-decode / vae-encode', () => {
  let dir: string;
  const model = ['--model', fixturePath('vae_decode'), '--weights', fixturePath('vae_decode', 'weights.safetensors')];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vae-cli-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('vae-decode writes `sample` matching the fixture', async () => {
    const out = path.join(dir, 'dec.safetensors');
    await run([
      '--backend',
      'wasm',
      'forward',
      'vae-decode',
      ...model,
      '--inputs',
      fixturePath('vae_decode', 'io.safetensors'),
      '--out',
      out,
      '--json',
    ]);
    const got = await readOut(out);
    const want = await loadFixture('vae_decode');
    expect([...got.keys()]).toEqual(['sample']);
    expectClose(
      'cli sample',
      get(got, 'sample').data as Float32Array,
      get(want, 'sample').data as Float32Array,
      1e-4,
      1e-4,
    );
  });

  it('vae-decode --batching one_call matches sample.one_call', async () => {
    const out = path.join(dir, 'dec1.safetensors');
    await run([
      'forward',
      'vae-decode',
      ...model,
      '--inputs',
      fixturePath('vae_decode', 'io.safetensors'),
      '--out',
      out,
      '--batching',
      'one_call',
    ]);
    const want = await loadFixture('vae_decode');
    expectClose(
      'cli one_call',
      get(await readOut(out), 'sample').data as Float32Array,
      get(want, 'sample.one_call').data as Float32Array,
      1e-4,
      1e-4,
    );
  });

  it('vae-encode writes moments and latent_dist.* matching the fixture', async () => {
    const out = path.join(dir, 'enc.safetensors');
    await run([
      '--backend',
      'wasm',
      'forward',
      'vae-encode',
      ...model,
      '--inputs',
      fixturePath('vae_encode', 'io.safetensors'),
      '--out',
      out,
    ]);
    const got = await readOut(out);
    const want = await loadFixture('vae_encode');
    expect([...got.keys()].sort()).toEqual(['latent_dist.logvar', 'latent_dist.mean', 'latent_dist.std', 'moments']);
    for (const name of got.keys())
      expectClose(`cli ${name}`, get(got, name).data as Float32Array, get(want, name).data as Float32Array, 1e-4, 1e-4);
  });

  it('bad input is a typed error naming the tensor or option', async () => {
    const out = path.join(dir, 'bad.safetensors');
    // the encode fixture has no `z`
    await expect(
      run(['forward', 'vae-decode', ...model, '--inputs', fixturePath('vae_encode', 'io.safetensors'), '--out', out]),
    ).rejects.toThrow(SafetensorsError);
    await expect(
      run([
        'forward',
        'vae-decode',
        ...model,
        '--inputs',
        fixturePath('vae_decode', 'io.safetensors'),
        '--out',
        out,
        '--batching',
        'thirds',
      ]),
    ).rejects.toThrow(ConfigError);
    expect(fs.existsSync(out)).toBe(false);
  });
});
