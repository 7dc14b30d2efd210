/** `inspect` on a pipeline folder (components, configs, parameters per component and block); `bench` argument errors. */
import { describe, expect, test } from '@jest/globals';
import { DEFAULT_MODEL_DIR } from '../../src/model/modelFolder.js';
import { runCli } from '../helpers/cli.js';

interface Inspected {
  pipeline: {
    className: string;
    components: { name: string; className: string | null; params: number | null; config?: Record<string, unknown> }[];
  };
  checkpoints: { path: string; totalParams: number; groups: Record<string, number> }[];
}

describe('inspect a pipeline folder', () => {
  test('--json: class, each component with its class, config and parameter count; per-block groups of each checkpoint', () => {
    const r = runCli(['inspect', DEFAULT_MODEL_DIR, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Inspected;
    expect(s.pipeline.className).toBe('Mask2DiTPipeline');
    const byName = new Map(s.pipeline.components.map((c) => [c.name, c]));
    expect([...byName.keys()].sort()).toEqual(['scheduler', 'text_encoder', 'tokenizer', 'transformer', 'vae']);
    expect(byName.get('scheduler')!.config!['_class_name']).toBe('FlowMatchEulerDiscreteScheduler');
    expect(byName.get('tokenizer')!.config!['length']).toBe(16);
    const transformer = s.checkpoints.find((c) => c.path.includes('transformer'))!;
    expect(byName.get('transformer')!.params).toBe(transformer.totalParams);
    expect(Object.keys(transformer.groups)).toEqual(
      expect.arrayContaining(['transformer_blocks.0', 'transformer_blocks.1', 'patch_embed', 'proj_out']),
    );
  });

  test('text: a component table before the checkpoints', () => {
    const r = runCli(['inspect', DEFAULT_MODEL_DIR]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/pipeline Mask2DiTPipeline/);
    expect(r.stdout).toMatch(/transformer\s+MultiPromptCogVideoXTransformer3DModel \(videox_fun\)\s+[\d,]+/);
    expect(r.stdout).toMatch(/vae config: \{.*"block_out_channels"/);
    expect(r.stdout).toMatch(/transformer_blocks\.1\s+[\d,]+/);
  });
});

test('bench: an unknown component is a one-line error, exit 2', () => {
  const r = runCli(['bench', '--only', 'matmul,warp']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(
    /--only: unknown component warp; expected some of matmul, attention, block, step, vae, demo/,
  );
});
