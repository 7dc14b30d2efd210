/**
 * Linear holds one copy of its weight: `[in, out]` for the inference forward (a plain 2-D matMul, no
 * transpose kernel), `[out, in]` wherever it meets the outside by name and for training.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, shutdownBackends } from '../../src/backend/index.js';
import { Linear } from '../../src/layers/linear.js';
import { WeightSource, type TensorReader } from '../../src/layers/weightSource.js';
import { expectClose } from '../helpers/close.js';

const cfg = { inFeatures: 6, outFeatures: 5, bias: true };
const PARAMS = 6 * 5 + 5;

/** A checkpoint in memory: `weight` [5, 6] and `bias` [5], read (and transposed) at each ask. */
function memoryReader(): TensorReader {
  const w = Float32Array.from({ length: 30 }, (_, i) => Math.sin(i + 1)); // [out 5, in 6]
  const b = Float32Array.from({ length: 5 }, (_, i) => i / 10);
  const kernel = Float32Array.from({ length: 30 }, (_, k) => w[(k % 5) * 6 + Math.floor(k / 5)]!); // [in 6, out 5]
  return {
    label: 'memory',
    names: () => ['weight', 'bias'],
    shape: (n) => (n === 'weight' ? [5, 6] : n === 'bias' ? [5] : undefined),
    readF32: (n, transpose) => (n === 'bias' ? b.slice() : transpose ? kernel.slice() : w.slice()),
  };
}

afterAll(() => shutdownBackends());

describe.each(['cpu', 'wasm'] as const)('Linear on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it('holds 4 bytes per parameter, before and after forwards and name lookups', async () => {
    const before = tf.memory();
    const lin = new Linear(cfg, WeightSource.random(1));
    expect(tf.memory().numBytes - before.numBytes).toBe(4 * PARAMS);
    expect(tf.memory().numTensors - before.numTensors).toBe(2);
    expect(lin.heldLayout).toBe('kernel');
    const x = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 2);
    for (let i = 0; i < 3; i++) {
      lin.forward(x).dispose();
      expect(lin.heldLayout).toBe('kernel');
      expect(lin.weightByName('weight')!.shape).toEqual([5, 6]); // switched to the reference layout
      expect(lin.heldLayout).toBe('reference');
      expect(tf.memory().numBytes - before.numBytes).toBe(4 * PARAMS + x.size * 4);
      expect(tf.memory().numTensors - before.numTensors).toBe(3);
    }
    x.dispose();
    lin.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });

  it('presents the reference layout by name: the same values a reference-layout draw gives', async () => {
    const lin = new Linear(cfg, WeightSource.random(3));
    const ref = WeightSource.random(3).get('weight', [5, 6]); // the same seeded draw, reference layout
    expect([...lin.namedWeights()].map(([n, v]) => `${n}:${v.shape.join('x')}`)).toEqual(['weight:5x6', 'bias:5']);
    expect(Array.from(await lin.weight.data())).toEqual(Array.from(await ref.data()));
    expect(Array.from(await lin.variables().get('weight')!.data())).toEqual(Array.from(await ref.data()));
    expect(lin.countParams()).toBe(PARAMS);
    ref.dispose();
    lin.dispose();
  });

  it('forward = x·Wᵀ + b as one non-transposed 2-D matMul on the [in, out] kernel', async () => {
    const lin = new Linear(cfg, WeightSource.random(4));
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 5);
    const expected = tf.tidy(() => tf.add(tf.matMul(x, lin.weight, false, true), lin.bias!));
    lin.forward(x).dispose(); // switch back to the kernel outside the profile
    const info = await tf.profile(() => {
      lin.forward(x).dispose();
    });
    const names = info.kernels.map((k) => k.name);
    expect(names).not.toContain('Transpose');
    const mm = info.kernels.find((k) => k.name === 'BatchMatMul')!;
    expect(mm.inputShapes).toEqual([
      [4, 6],
      [6, 5],
    ]); // B is the [in, out] kernel itself
    const y = lin.forward(x);
    expectClose('forward', await y.data(), await expected.data(), 1e-6, 1e-6);
    tf.dispose([x, expected, y]);
    lin.dispose();
  });

  it('trains on the reference variable: gradients reach it, the optimizer sees [out, in]', async () => {
    const lin = new Linear(cfg, WeightSource.random(6));
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 7);
    lin.setTrainable(true);
    const vars = lin.variables();
    expect(vars.get('weight')!.shape).toEqual([5, 6]);
    const w = vars.get('weight')!;
    const { value, grads } = tf.variableGrads(() => tf.sum(lin.forward(x)) as tf.Scalar, [...vars.values()]);
    // d/dW sum(x·Wᵀ + b) = 1ᵀx per output row: every row equals the column sums of x
    const colSums = await tf.sum(x, 0).data();
    const g = await grads[w.name]!.data();
    for (let o = 0; o < 5; o++) for (let i = 0; i < 6; i++) expect(g[o * 6 + i]).toBeCloseTo(colSums[i]!, 4);
    expect(lin.heldLayout).toBe('reference'); // training forwards do not switch
    tf.dispose([value, ...Object.values(grads)]);
    lin.setTrainable(false);
    lin.forward(x).dispose();
    expect(lin.heldLayout).toBe('kernel');
    x.dispose();
    lin.dispose();
  });

  it('assigning through a name lookup changes what the forward computes', async () => {
    const lin = new Linear({ inFeatures: 2, outFeatures: 3, bias: false }, WeightSource.zeros());
    const w = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]); // [out, in]
    lin.weightByName('weight')!.assign(w);
    const x = tf.tensor2d([[1, 10]]);
    const y = lin.forward(x);
    expect(Array.from(await y.data())).toEqual([21, 43, 65]);
    tf.dispose([w, x, y]);
    lin.dispose();
  });
  it('streamed (an offloaded block): holds only the bias, reads the kernel per forward, same output, refuses name/train', async () => {
    const held = new Linear(cfg, WeightSource.fromReader(memoryReader()));
    const before = tf.memory();
    const streamed = new Linear(cfg, WeightSource.fromReader(memoryReader()).streaming());
    expect(streamed.streamed).toBe(true);
    expect(tf.memory().numBytes - before.numBytes).toBe(4 * 5); // the bias alone
    const x = tf.randomNormal([2, 3, 6], 0, 1, 'float32', 4);
    const [a, b] = [held.forward(x), streamed.forward(x)];
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    expect(tf.memory().numBytes - before.numBytes).toBe(4 * 5 + x.size * 4 + 2 * a.size * 4); // bias, x, a, b: the kernel was freed
    expect(() => streamed.weight).toThrow(/offloaded block/);
    streamed.trainable = true;
    expect(() => streamed.forward(x)).toThrow(/offloaded block/);
    tf.dispose([x, a, b]);
    held.dispose();
    streamed.dispose();
  });
});
