/**
 * The `tensorflow` backend: libtensorflow through `@tensorflow/tfjs-node-gpu` (CUDA) or
 * `@tensorflow/tfjs-node` (CPU). Not a dependency of this project — their install step downloads
 * libtensorflow — so it is loaded only if the user installed one of them. Untested here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';

const CANDIDATES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

function isModuleNotFound(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/** Load tfjs-node(-gpu) if installed and make `tensorflow` current; returns the package used. */
export async function initTensorflow(): Promise<string> {
  for (const pkg of CANDIDATES) {
    try {
      const spec: string = pkg; // a variable keeps tsc from resolving an optional package
      await import(spec);
    } catch (e) {
      if (isModuleNotFound(e)) continue;
      throw new BackendError('tensorflow', `${pkg} is installed but failed to load: ${(e as Error).message}`);
    }
    if (!(await tf.setBackend('tensorflow'))) {
      throw new BackendError('tensorflow', `${pkg} loaded but the 'tensorflow' backend did not initialise`);
    }
    return pkg;
  }
  throw new BackendError(
    'tensorflow',
    'neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed. Install one yourself ' +
      '(`npm install @tensorflow/tfjs-node-gpu@4.22.0` for CUDA, or `@tensorflow/tfjs-node@4.22.0`; both ' +
      'download libtensorflow at install time), or use --backend wasm|cpu|webgpu',
  );
}
