/**
 * `tiling: 'auto'` (what the pipelines pass): untiled while the decode fits the backend's budget, the
 * VAE's tiling when it does not (same numbers as asking for that tiling), smaller tiles when even those
 * do not fit. The budget is the wasm one (`MASK2DIT_WASM_BUDGET_MIB`), set between the two estimates.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { wasmHeapNeed } from '../../src/backend/memoryBudget.js';
import { parseVaeConfig } from '../../src/config/vaeConfig.js';
import { WeightSource } from '../../src/layers/weightSource.js';
import { CogVideoXVAE } from '../../src/model/vae.js';
import { vaePeakEstimate } from '../../src/model/vaeMemory.js';
import { fixtureJson } from '../helpers/fixtures.js';

let vae: CogVideoXVAE;
const z = () => tf.randomNormal([1, 4, 3, 5, 4], 0, 1, 'float32', 5); // [B, C, F, h, w] → 40×32 pixels
const size = { kind: 'decode' as const, frames: 3, height: 5, width: 4, batching: 'mask2dit' as const };

beforeAll(async () => {
  await selectBackend('wasm');
  vae = new CogVideoXVAE(
    parseVaeConfig(fixtureJson('vae_decode_tiled', 'config.json')).config,
    WeightSource.random(11),
  );
  vae.enableTiling({
    tileSampleMinHeight: 32,
    tileSampleMinWidth: 24,
    overlapFactorHeight: 1 / 4,
    overlapFactorWidth: 1 / 3,
  });
});
afterEach(() => {
  delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
});
afterAll(() => {
  vae.dispose();
  shutdownBackends();
});

async function decode(tiling: 'auto' | boolean): Promise<Float32Array> {
  const x = z();
  const y = vae.decode(x, { tiling });
  const d = (await y.data()) as Float32Array;
  tf.dispose([x, y]);
  return d;
}

describe("decode with tiling 'auto'", () => {
  it('fits: untiled, bit for bit', async () => {
    expect(Array.from(await decode('auto'))).toEqual(Array.from(await decode(false)));
  });

  it('does not fit untiled but tiled: the VAE tiling, bit for bit, and not the untiled result', async () => {
    const untiled = wasmHeapNeed(vaePeakEstimate(vae.config, size, null)); // what the wasm check asks of the heap
    const tiled = wasmHeapNeed(vaePeakEstimate(vae.config, size, vae.tiling));
    expect(tiled).toBeLessThan(untiled);
    const live = tf.memory().numBytes + 4 * 1 * 4 * 3 * 5 * 4; // the input latents are live during the call
    process.env['MASK2DIT_WASM_BUDGET_MIB'] = String((live + (tiled + untiled) / 2) / 2 ** 20);
    const auto = await decode('auto');
    delete process.env['MASK2DIT_WASM_BUDGET_MIB'];
    expect(Array.from(auto)).toEqual(Array.from(await decode(true)));
    expect(Array.from(auto)).not.toEqual(Array.from(await decode(false)));
  });

  it('leaks nothing across repeated auto decodes', async () => {
    await decode('auto');
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await decode('auto');
    expect(tf.memory().numTensors).toBe(before);
  });
});
