/**
 * scripts/denoise-check.ts on the shipped model, one held-out caption set: a ground-truth scene noised
 * to σ 0.3 is still itself after one x̂₀ step and after the deterministic sampler from there, so the
 * encode → noise → transformer → decode → oracle path of the check is wired right (latents laid out
 * frames × channels by a reshape instead of a transpose read 2/3 backgrounds and 1/3 colours).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from '@jest/globals';

const run = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/denoise-check.ts', ...args], {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, MASK2DIT_LOG: 'warn', MASK2DIT_THREADS: '1' },
  });

describe('scripts/denoise-check.ts', () => {
  test('a lightly noised real scene comes back as itself (one step and sampled), read by the oracle', () => {
    const r = run(['--sets', '1', '--sigmas', '0.3', '--from', '0.3', '--steps', '4', '--eta', '0', '--json']);
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      scenes: number;
      rows: Record<string, { background: number; colour: number; motion: number }>;
    };
    expect(json.scenes).toBe(3);
    expect(Object.keys(json.rows)).toEqual(['one step at σ 0.3', 'sampled from σ 0.3 (1 step)']);
    for (const row of Object.values(json.rows)) {
      expect(row.background).toBe(3);
      expect(row.colour).toBe(3);
      expect(row.motion).toBeGreaterThanOrEqual(2); // 6 of 6 on the first two sets when measured
    }
    expect(r.stdout).toMatch(/\| one step at σ 0\.3 \| 3\/3 \| 3\/3 \| \d\/3 \|/);
  });

  test('--swap-motion: the same input with other motions captioned, scored against the caption and the input', () => {
    const r = run(['--sets', '1', '--sigmas', '0.3', '--from', '', '--swap-motion', '--json']);
    expect(r.status).toBe(0);
    const { rows } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      rows: Record<string, { background: number; colour: number; motion: number; inputMotion?: number }>;
    };
    expect(Object.keys(rows)).toEqual(['one step at σ 0.3', 'one step at σ 0.3, another motion captioned']);
    const swapped = rows['one step at σ 0.3, another motion captioned']!;
    expect([swapped.background, swapped.colour]).toEqual([3, 3]); // only the motion words changed
    // every scene's caption names another motion than its frames show, so a reading is one or the other
    expect(swapped.inputMotion).toBeDefined();
    expect(swapped.motion + swapped.inputMotion!).toBeLessThanOrEqual(3);
    expect(rows['one step at σ 0.3']!.inputMotion).toBeUndefined();
    expect(r.stdout).toMatch(/\| one step at σ 0\.3, another motion captioned \| 3\/3 \| 3\/3 \| \d\/3 \| \d\/3 \|/);
  });
});
