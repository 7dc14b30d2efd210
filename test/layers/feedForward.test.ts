/** The MLP in row chunks computes exactly what it computes in one pass (values and gradients). */
import { beforeAll, expect, test } from '@jest/globals';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/backend/index.js';
import { FeedForward } from '../../src/layers/feedForward.js';
import { WeightSource } from '../../src/layers/weightSource.js';

beforeAll(async () => {
  await selectBackend('wasm');
});

test('row-chunked FeedForward equals the one-pass MLP bit for bit, gradients included', async () => {
  const ff = new FeedForward({ dim: 16, innerDim: 64, bias: true }, WeightSource.random(1));
  const x = tf.randomNormal([2, 301, 16], 0, 1, 'float32', 2);
  const whole = ff.forward(x, 1e9);
  const chunked = ff.forward(x, 64); // 602 rows → 10 chunks, the last one short
  expect(Array.from(await chunked.data())).toEqual(Array.from(await whole.data()));
  ff.setTrainable(true);
  const vars = [...ff.variables().values()];
  const g = (rows: number) => tf.variableGrads(() => tf.sum(tf.square(ff.forward(x, rows))) as tf.Scalar, vars).grads;
  const [ga, gb] = [g(1e9), g(64)];
  for (const v of vars) expect(tf.max(tf.abs(tf.sub(ga[v.name]!, gb[v.name]!))).dataSync()[0]).toBeLessThan(1e-3);
  tf.dispose([x, whole, chunked, ...Object.values(ga), ...Object.values(gb)]);
  ff.dispose();
});
