/**
 * The VAE memory estimate covers the measured peak (tf.profile, bytes above what was live before)
 * within 1.6×, tiled and not, decode and encode, on the fixture VAE and a wider one; checkVaeMemory
 * refuses over budget; chooseVaeTiling tiles only what does not fit. Budgets are explicit arguments,
 * so nothing depends on the machine. wasm (fast); the accounting is the engine's, the same on cpu.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { MemoryBudgetError } from '../../src/backend/memoryBudget.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { CogVideoXVAE, type FrameBatching } from '../../src/model/vae.js';
import { checkVaeMemory, chooseVaeTiling, vaePeakEstimate, type VaeWorkSize } from '../../src/model/vaeMemory.js';
import { defaultVaeTiling, planTiles, type VaeTiling } from '../../src/model/vaeTiling.js';
import { fixturePath } from '../helpers/fixtures.js';

afterAll(() => shutdownBackends());

const MiB = 2 ** 20;
const FIXTURE_TILING: VaeTiling = {
  tileSampleMinHeight: 32,
  tileSampleMinWidth: 24,
  overlapFactorHeight: 0.25,
  overlapFactorWidth: 1 / 3,
};

/** Peak bytes while `fn` runs, above what was live before (run once first: nothing may be cached). */
async function measuredPeak(fn: () => void): Promise<number> {
  fn();
  const before = tf.memory().numBytes;
  const prof = await tf.profile(() => {
    fn();
  });
  return prof.peakBytes - before;
}

/** Run `size` through `vae`, tiled or not, on a random input made before (and disposed after) the measurement. */
async function measure(vae: CogVideoXVAE, size: VaeWorkSize, tiling: VaeTiling | null): Promise<number> {
  const c = vae.config;
  const input =
    size.kind === 'decode'
      ? tf.randomNormal([1, c.latent_channels, size.frames, size.height, size.width], 0, 1, 'float32', 1)
      : tf.randomUniform([1, c.in_channels, size.frames, size.height, size.width], -1, 1, 'float32', 2);
  try {
    return await measuredPeak(() =>
      size.kind === 'decode'
        ? tf.dispose(vae.decode(input, { batching: size.batching ?? 'mask2dit', tiling: tiling ?? false }))
        : vae.encode(input, { tiling: tiling ?? false }).dispose(),
    );
  } finally {
    input.dispose();
  }
}

const label = (s: VaeWorkSize) =>
  `${s.kind} ${s.frames}×${s.height}×${s.width}${s.kind === 'decode' ? ` ${s.batching}` : ''}`;
const dec = (frames: number, height: number, width: number, batching: FrameBatching = 'mask2dit'): VaeWorkSize => ({
  kind: 'decode',
  frames,
  height,
  width,
  batching,
});
const enc = (frames: number, height: number, width: number): VaeWorkSize => ({ kind: 'encode', frames, height, width });

describe('VAE peak memory estimate vs tf.profile (wasm)', () => {
  let tiny: CogVideoXVAE; // vae_decode_tiled: channels [4, 4, 8, 8], 2 groups, 1 layer a block
  let wide: CogVideoXVAE; // channels [32, 64, 64, 128], 16 latent channels, 2 layers a block (random weights)
  beforeAll(async () => {
    await selectBackend('wasm');
    tiny = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode_tiled'), {
      weights: fixturePath('vae_decode_tiled', 'weights.safetensors'),
    });
    const { config } = parseVaeConfig({
      block_out_channels: [32, 64, 64, 128],
      latent_channels: 16,
      layers_per_block: 2,
      norm_num_groups: 8,
      scaling_factor: 0.7,
    });
    wide = new CogVideoXVAE(config, WeightSource.random(1));
  });
  afterAll(() => {
    tiny?.dispose();
    wide?.dispose();
  });

  const ratios: string[] = [];
  afterAll(() => {
    process.stderr.write(`VAE estimate / measured peak:\n${ratios.join('\n')}\n`);
  });

  it.each(
    [
      ['tiny', dec(5, 3, 4), null],
      ['tiny', dec(5, 3, 4, 'auto_split'), null],
      ['tiny', dec(5, 3, 4, 'one_call'), null],
      ['tiny', dec(13, 6, 8), null],
      ['tiny', dec(3, 5, 4, 'auto_split'), FIXTURE_TILING],
      ['tiny', dec(3, 8, 8), FIXTURE_TILING], // 3×4 tiles (more kernels than tf.profile can list)
      ['tiny', enc(17, 48, 64), null],
      ['tiny', enc(9, 40, 32), FIXTURE_TILING],
      ['wide', dec(3, 4, 6), null],
      ['wide', dec(3, 4, 6, 'auto_split'), null],
      ['wide', enc(9, 32, 48), null],
    ].map(([which, size, tiling]) => [
      `${which} ${label(size as VaeWorkSize)}${tiling === null ? '' : ', tiled'}`,
      which,
      size,
      tiling,
    ]) as [string, string, VaeWorkSize, VaeTiling | null][],
  )('%s: measured ≤ estimate ≤ 1.6 × measured', async (_, which, size, tiling) => {
    const vae = which === 'tiny' ? tiny : wide;
    const n = tf.memory().numTensors;
    const measured = await measure(vae, size, tiling);
    expect(tf.memory().numTensors).toBe(n);
    const est = vaePeakEstimate(vae.config, size, tiling).totalBytes;
    ratios.push(
      `  ${which} ${label(size)}${tiling === null ? '' : ', tiled'}: ${(measured / MiB).toFixed(2)} MiB measured, ${(est / MiB).toFixed(2)} MiB estimated, ratio ${(est / measured).toFixed(3)}`,
    );
    expect(est).toBeGreaterThanOrEqual(measured);
    expect(est).toBeLessThanOrEqual(1.6 * measured);
  });
});

describe('decode and encode check the budget before running (wasm)', () => {
  let vae: CogVideoXVAE;
  beforeAll(async () => {
    await selectBackend('wasm');
    vae = await CogVideoXVAE.fromPretrained(fixturePath('vae_decode_tiled'), {
      weights: fixturePath('vae_decode_tiled', 'weights.safetensors'),
    });
  });
  afterAll(() => {
    vae?.dispose();
  });

  it('over MASK2DIT_WASM_BUDGET_MIB: refused, nothing run; checkMemory false runs it', () => {
    const z = tf.randomNormal([1, 4, 3, 5, 4], 0, 1, 'float32', 3);
    const x = tf.randomUniform([1, 3, 9, 40, 32], -1, 1, 'float32', 4);
    const saved = process.env['MASK2DIT_WASM_BUDGET_MIB'];
    process.env['MASK2DIT_WASM_BUDGET_MIB'] = '0.01';
    try {
      const n = tf.memory().numTensors;
      expect(() => vae.decode(z)).toThrow(
        /^VAE decode of 3×5×4 latents \(40×32 pixels\): needs about .* but wasm allows/,
      );
      expect(() => vae.decode(z, { tiling: FIXTURE_TILING })).toThrow(/tiled \(4 tiles of up to 4×3\)/);
      expect(() => vae.encode(x)).toThrow(/^VAE encode of 9×40×32 pixels/);
      expect(() => [...vae.decodeChunks(z)]).toThrow(MemoryBudgetError);
      expect(tf.memory().numTensors).toBe(n);
      tf.dispose(vae.decode(z, { checkMemory: false }));
      vae.encode(x, { checkMemory: false }).dispose();
    } finally {
      if (saved === undefined) delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
      else process.env['MASK2DIT_WASM_BUDGET_MIB'] = saved;
      tf.dispose([z, x]);
    }
  });
});

describe('checkVaeMemory and chooseVaeTiling (explicit budgets, no tensors)', () => {
  const { config } = parseVaeConfig({
    block_out_channels: [4, 4, 8, 8],
    latent_channels: 4,
    layers_per_block: 1,
    norm_num_groups: 2,
    sample_height: 64,
    sample_width: 48,
    scaling_factor: 0.7,
  });
  const wasm = (bytes: number) => ({ limits: { backend: 'wasm', totalBytes: bytes }, liveBytes: 0 });
  const big = dec(9, 12, 16); // 96×128 pixels; diffusers' default tiles for this config: 32×24
  const untiled = vaePeakEstimate(config, big).totalBytes;
  const tiled = vaePeakEstimate(config, big, defaultVaeTiling(64, 48)).totalBytes;

  it('the default tiling needs less than the whole frame (here the output itself is a large part)', () => {
    expect(tiled).toBeLessThan(0.7 * untiled);
  });

  it('refuses over budget with a MemoryBudgetError naming the VAE and the size; passes within', () => {
    expect(() => checkVaeMemory(config, big, wasm(untiled - 1))).toThrow(MemoryBudgetError);
    expect(() => checkVaeMemory(config, big, wasm(untiled - 1))).toThrow(
      /^VAE decode of 9×12×16 latents \(96×128 pixels\): needs about .* GiB but wasm allows/,
    );
    expect(() => checkVaeMemory(config, big, wasm(untiled))).not.toThrow();
    expect(() => checkVaeMemory(config, big, { ...wasm(untiled), liveBytes: 1 })).toThrow(/already live/);
    expect(() => checkVaeMemory(config, enc(17, 96, 128), wasm(1000))).toThrow(/^VAE encode of 17×96×128 pixels/);
    expect(() => checkVaeMemory(config, big, { ...wasm(tiled - 1), tiling: defaultVaeTiling(64, 48) })).toThrow(
      /tiled \(\d+ tiles of up to 4×3\)/,
    );
    expect(() =>
      checkVaeMemory(config, big, {
        tiling: defaultVaeTiling(64, 48),
        limits: { backend: 'webgpu', perTensorBytes: 1024 },
      }),
    ).toThrow(/one tensor/);
  });

  it('untiled when the frame fits, the diffusers tiling when it does not, a MemoryBudgetError when a tile does not', () => {
    expect(chooseVaeTiling(config, big, wasm(untiled))).toBeNull();
    expect(chooseVaeTiling(config, big, wasm((tiled + untiled) / 2))).toEqual({
      tileSampleMinHeight: 32,
      tileSampleMinWidth: 24,
      overlapFactorHeight: 1 / 6,
      overlapFactorWidth: 1 / 5,
    });
    expect(chooseVaeTiling(config, big, { ...wasm(untiled - 1), tiling: FIXTURE_TILING })).toEqual(FIXTURE_TILING);
    const err = (() => {
      try {
        chooseVaeTiling(config, big, wasm(tiled - 1));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(MemoryBudgetError);
    expect(String(err)).toMatch(
      /VAE decode of 9×12×16 latents .* even tiles of 32×24 pixels do not fit; (tiles of \d+×\d+ pixels would fit|no smaller tile fits)/,
    );
    expect(() => chooseVaeTiling(config, big, wasm(1000))).toThrow(/no smaller tile fits either/);
  });

  it('with shrink, a smaller tiling that fits and keeps the output size', () => {
    const d = defaultVaeTiling(480, 720);
    const { config: cog } = parseVaeConfig({}); // the CogVideoX VAE: 13 latent frames of 60×90 → 49 frames of 480×720
    const scene = dec(13, 60, 90);
    const need = vaePeakEstimate(cog, scene, d).totalBytes;
    expect(need).toBeLessThan(vaePeakEstimate(cog, scene).totalBytes / 3);
    expect(chooseVaeTiling(cog, scene, wasm(need))).toEqual(d);
    expect(() => chooseVaeTiling(cog, scene, wasm(need / 2))).toThrow(
      /even tiles of 240×360 pixels do not fit; tiles of \d+×\d+ pixels would fit/,
    );
    const t = chooseVaeTiling(cog, scene, { ...wasm(need / 2), shrink: true })!;
    expect(t.tileSampleMinHeight * t.tileSampleMinWidth).toBeLessThan(240 * 360);
    expect(vaePeakEstimate(cog, scene, t).totalBytes).toBeLessThanOrEqual(need / 2);
    expect([t.overlapFactorHeight, t.overlapFactorWidth]).toEqual([1 / 6, 1 / 5]);
    expect(planTiles('decode', [60, 90], t, 8).outHW).toEqual([480, 720]);
  });
});
