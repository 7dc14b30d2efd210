/** Loading the reference fixtures copied into test/fixtures (the project never reads ../shared). */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { openSafetensors } from '../../src/io/safetensors.js';

export const FIXTURES = path.resolve(process.cwd(), 'test/fixtures');

export interface FixtureTensor {
  shape: number[];
  dtype: string;
  /** float tensors as Float32Array (F64 narrowed), integers as plain numbers. */
  data: Float32Array | number[];
}

export function fixturePath(caseName: string, file = ''): string {
  return path.join(FIXTURES, caseName, file);
}

export function fixtureJson<T = Record<string, unknown>>(caseName: string, file: string): T {
  return JSON.parse(fs.readFileSync(fixturePath(caseName, file), 'utf8')) as T;
}

/** Every tensor of a fixture safetensors file, read eagerly (fixtures are small). */
export async function loadFixture(caseName: string, file = 'io.safetensors'): Promise<Map<string, FixtureTensor>> {
  const src = await openSafetensors(fixturePath(caseName, file));
  try {
    const out = new Map<string, FixtureTensor>();
    for (const name of src.names()) {
      const info = src.info(name);
      const raw = await src.read(name);
      const data =
        raw instanceof BigInt64Array
          ? Array.from(raw, Number)
          : raw instanceof Float32Array
            ? raw
            : Float32Array.from(raw as ArrayLike<number>);
      out.set(name, { shape: info.shape, dtype: info.dtype, data });
    }
    return out;
  } finally {
    await src.close();
  }
}

export function get(m: Map<string, FixtureTensor>, name: string): FixtureTensor {
  const t = m.get(name);
  if (t === undefined) throw new Error(`fixture tensor ${name} missing`);
  return t;
}

export function toTensor(m: Map<string, FixtureTensor>, name: string): tf.Tensor {
  const t = get(m, name);
  return tf.tensor(t.data instanceof Float32Array ? t.data : Float32Array.from(t.data), t.shape, 'float32');
}

export function numbers(m: Map<string, FixtureTensor>, name: string): number[] {
  return Array.from(get(m, name).data);
}
