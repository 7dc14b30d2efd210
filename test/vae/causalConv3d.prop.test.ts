/**
 * conv3d written as one conv2d per time tap (`conv3dByTimeTaps`, the only conv3d the VAE uses) equals
 * `tf.conv3d` (valid in time, zero padding in space) on cpu, over random small shapes; and the wasm
 * backend gives the same numbers as cpu's `tf.conv3d`.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { conv3dByTimeTaps } from '../../src/layers/vae/causalConv3d.js';
import { expectClose } from '../helpers/close.js';

afterAll(() => shutdownBackends());

interface Case {
  B: number;
  T: number;
  H: number;
  W: number;
  cin: number;
  cout: number;
  kt: number;
  kh: number;
  kw: number;
  seed: number;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  B: fc.integer({ min: 1, max: 2 }),
  T: fc.integer({ min: 1, max: 4 }),
  H: fc.integer({ min: 1, max: 6 }),
  W: fc.integer({ min: 1, max: 6 }),
  cin: fc.integer({ min: 1, max: 5 }),
  cout: fc.integer({ min: 1, max: 5 }),
  kt: fc.integer({ min: 1, max: 3 }),
  kh: fc.constantFrom(1, 3),
  kw: fc.constantFrom(1, 3),
  seed: fc.integer({ min: 0, max: 1 << 20 }),
});

/** Inputs of one case: x `[B, T+kt-1, H, W, Cin]`, filter `[kt, kh, kw, Cin, Cout]`, bias `[Cout]`. */
function inputs(c: Case) {
  const x = tf.randomNormal([c.B, c.T + c.kt - 1, c.H, c.W, c.cin], 0, 1, 'float32', c.seed);
  const filter = tf.randomNormal([c.kt, c.kh, c.kw, c.cin, c.cout], 0, 1, 'float32', c.seed + 1);
  const bias = tf.randomNormal([c.cout], 0, 1, 'float32', c.seed + 2);
  return { x, filter, bias };
}

/** The oracle: tf.conv3d, space zero-padded by (k-1)/2 by hand, valid everywhere. */
function reference(x: tf.Tensor, filter: tf.Tensor, bias: tf.Tensor, c: Case): tf.Tensor {
  return tf.tidy(() => {
    const ph = (c.kh - 1) / 2;
    const pw = (c.kw - 1) / 2;
    const padded = tf.pad(x, [
      [0, 0],
      [0, 0],
      [ph, ph],
      [pw, pw],
      [0, 0],
    ]) as tf.Tensor5D;
    return tf.add(tf.conv3d(padded, filter as tf.Tensor5D, 1, 'valid'), bias);
  });
}

describe('conv3dByTimeTaps', () => {
  it('equals tf.conv3d on cpu for random shapes', async () => {
    await selectBackend('cpu');
    fc.assert(
      fc.property(caseArb, (c) => {
        const before = tf.memory().numTensors;
        const { x, filter, bias } = inputs(c);
        const ours = conv3dByTimeTaps(x, filter, bias);
        const ref = reference(x, filter, bias, c);
        expect(ours.shape).toEqual(ref.shape);
        expectClose(`conv3d ${JSON.stringify(c)}`, ours.dataSync(), ref.dataSync(), 1e-5, 1e-5);
        tf.dispose([x, filter, bias, ours, ref]);
        expect(tf.memory().numTensors).toBe(before);
      }),
      { seed: 4242, numRuns: 60 },
    );
  });

  it('on wasm equals cpu tf.conv3d', async () => {
    const c: Case = { B: 1, T: 3, H: 7, W: 5, cin: 6, cout: 4, kt: 3, kh: 3, kw: 3, seed: 11 };
    await selectBackend('cpu');
    const { x, filter, bias } = inputs(c);
    const args = [x, filter, bias].map((t) => ({ data: t.dataSync().slice(), shape: t.shape }));
    const ref = reference(x, filter, bias, c).dataSync().slice();
    await selectBackend('wasm');
    const [xw, fw, bw] = args.map((a) => tf.tensor(a.data, a.shape));
    const ours = conv3dByTimeTaps(xw!, fw!, bw!);
    expectClose('conv3d wasm vs cpu tf.conv3d', await ours.data(), ref, 1e-5, 1e-5);
    tf.dispose([xw!, fw!, bw!, ours]);
  });
});
