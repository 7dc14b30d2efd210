import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseSceneFile, readSceneFile, sceneCaption, SceneFileError } from '../../src/cli/sceneFile.js';
import { REPO } from './childProcess.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scenes-test-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const valid = () => ({
  scenes: [
    { prompt: 'a red triangle slides left on a blue background', frames: 9 },
    { prompt: 'it bounces on a green background', frames: 9, caption: 'bounce' },
    { embeddings: 'emb/s3.safetensors', frames: 13 },
  ],
  width: 64,
  height: 48,
  defaults: { steps: 20, guidance: 6, seed: 42, sampler: 'ddim', fps: 8 },
});

/** The message parseSceneFile throws for `raw`. */
function message(raw: unknown, opts = {}): string {
  try {
    parseSceneFile(raw, 'scenes.json', { baseDir: '/base', ...opts });
  } catch (e) {
    expect(e).toBeInstanceOf(SceneFileError);
    expect((e as SceneFileError).code).toBe('SCENE_FILE');
    return (e as Error).message;
  }
  throw new Error('expected a SceneFileError');
}

function edit(f: (o: ReturnType<typeof valid> & Record<string, unknown>) => void): unknown {
  const o = valid() as ReturnType<typeof valid> & Record<string, unknown>;
  f(o);
  return o;
}

describe('scene file', () => {
  it('accepts the example file', async () => {
    const sf = await readSceneFile(path.join(REPO, 'examples/three-scenes.json'));
    expect(sf.scenes.map((s) => s.frames)).toEqual([9, 9, 9]);
    expect([sf.width, sf.height]).toEqual([64, 64]);
    expect(sceneCaption(sf, 0)).toBe('a red triangle slides left on a blue background');
  });

  it('resolves embeddings relative to the file and falls back to prompts for captions', () => {
    const sf = parseSceneFile(valid(), 'scenes.json', { baseDir: '/base' });
    expect(sf.scenes[2]!.embeddings).toBe('/base/emb/s3.safetensors');
    expect([sceneCaption(sf, 1), sceneCaption(sf, 2)]).toEqual(['bounce', 'scene 3']);
  });

  it('names each field error by its path', () => {
    expect(message(edit((o) => (o.scenes[2]!.frames = 10)))).toBe(
      'scenes.json: scenes[2].frames: must be 4k+1, got 10',
    );
    expect(message(edit((o) => (o.scenes[0]!.frames = 0)))).toBe('scenes.json: scenes[0].frames: must be 4k+1, got 0');
    expect(message(edit((o) => (o.width = 60)))).toBe('scenes.json: width: must be a positive multiple of 16, got 60');
    expect(message(edit((o) => ((o as Record<string, unknown>)['height'] = '64')))).toBe(
      'scenes.json: height: expected number, got string "64"',
    );
    expect(message(edit((o) => delete (o.scenes[1] as { frames?: number }).frames))).toBe(
      'scenes.json: scenes[1].frames: required (number)',
    );
    expect(message(edit((o) => delete (o.scenes[0] as { prompt?: string }).prompt))).toBe(
      'scenes.json: scenes[0]: needs "prompt" or "embeddings"',
    );
    expect(message(edit((o) => ((o.scenes[0] as Record<string, unknown>)['embeddings'] = 'x.safetensors')))).toBe(
      'scenes.json: scenes[0]: give "prompt" or "embeddings", not both',
    );
    expect(message(edit((o) => ((o.scenes[1] as Record<string, unknown>)['promt'] = 'typo')))).toBe(
      'scenes.json: scenes[1]: unknown key "promt"',
    );
    expect(message(edit((o) => (o.scenes[0]!.prompt = '  ')))).toBe('scenes.json: scenes[0].prompt: must not be empty');
    expect(message(edit((o) => (o.scenes = [])))).toBe('scenes.json: scenes: must list at least 1 item(s)');
    expect(message(edit((o) => (o.defaults.steps = 2.5)))).toBe(
      'scenes.json: defaults.steps: must be an integer >= 1, got 2.5',
    );
    expect(message(edit((o) => (o.defaults.seed = -1)))).toBe(
      'scenes.json: defaults.seed: must be an integer in [0, 2^32), got -1',
    );
    expect(message(edit((o) => (o.defaults.fps = 0)))).toBe('scenes.json: defaults.fps: must be in (0, 240], got 0');
    expect(message(edit((o) => (o['extra'] = 1)))).toBe('scenes.json: (root): unknown key "extra"');
    expect(message([1, 2])).toBe('scenes.json: (root): expected object, got an array');
  });

  it('reports every problem of a file in one line', () => {
    const raw = edit((o) => {
      o.scenes[2]!.frames = 10;
      o.width = 0;
    });
    expect(message(raw)).toBe(
      'scenes.json: scenes[2].frames: must be 4k+1, got 10; width: must be a positive multiple of 16, got 0',
    );
  });

  it('checks the sampler against the known ones when given', () => {
    expect(parseSceneFile(valid(), 'scenes.json', { samplers: ['ddim', 'dpm'] }).defaults?.sampler).toBe('ddim');
    expect(message(valid(), { samplers: ['euler', 'dpm'] })).toBe(
      'scenes.json: defaults.sampler: unknown sampler "ddim", expected one of euler, dpm',
    );
  });

  it('names unreadable and invalid JSON files', async () => {
    const missing = path.join(tmp, 'missing.json');
    await expect(readSceneFile(missing)).rejects.toThrow(`${missing}: no such file`);
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(bad, '{ "scenes": [ }');
    await expect(readSceneFile(bad)).rejects.toThrow(
      new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid JSON: `),
    );
  });
});
