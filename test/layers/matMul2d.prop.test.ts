/**
 * `matMul2d` (explicit transposes in its gradient) equals `tf.matMul` and tfjs-cpu's native matMul
 * gradients on random shapes, computed on cpu and on wasm, without leaking tensors.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { matMul2d } from '../../src/layers/math.js';
import { expectClose } from '../helpers/close.js';

afterAll(() => shutdownBackends());

const caseArb = fc.record({
  m: fc.integer({ min: 1, max: 40 }),
  k: fc.integer({ min: 1, max: 40 }),
  n: fc.integer({ min: 1, max: 40 }),
  seed: fc.integer({ min: 1, max: 1000 }), // tfjs treats seed 0 as "no seed"
});
type Case = { m: number; k: number; n: number; seed: number };

/** Values, da and db of Σ (a·b)∘r with the given matMul. */
function grads(c: Case, mm: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): Float32Array[] {
  return tf.tidy(() => {
    const a = tf.randomNormal([c.m, c.k], 0, 1, 'float32', c.seed);
    const b = tf.randomNormal([c.k, c.n], 0, 1, 'float32', c.seed + 1);
    const r = tf.randomNormal([c.m, c.n], 0, 1, 'float32', c.seed + 2);
    const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(mm(x, y), r)))([a, b]);
    return [mm(a, b), da!, db!].map((t) => t.dataSync() as Float32Array);
  });
}

describe.each(['cpu', 'wasm'] as const)('matMul2d on %s', (backend) => {
  it('values and gradients equal tf.matMul with its native gradient on tfjs-cpu', async () => {
    const cases = fc.sample(caseArb, { numRuns: 40, seed: 5 });
    await selectBackend('cpu');
    const reference = cases.map((c) => grads(c, (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)));
    await selectBackend(backend);
    cases.forEach((c, i) => {
      const before = tf.memory().numTensors;
      const ours = grads(c, matMul2d);
      ['y', 'da', 'db'].forEach((name, j) =>
        expectClose(`${JSON.stringify(c)} ${name}`, ours[j]!, reference[i]![j]!, 1e-4, 1e-4),
      );
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});
