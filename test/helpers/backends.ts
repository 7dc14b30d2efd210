/** Which backends a test run can exercise: cpu and wasm always, webgpu when Dawn finds an adapter. */
import { BackendError } from '../../src/errors.js';
import { selectBackend, type BackendName } from '../../src/backend/index.js';

let webgpuProbe: Promise<string | null> | undefined;

/**
 * Try to bring up webgpu once per test file: `MASK2DIT_WEBGPU_BACKEND` if set, else Vulkan and then
 * Dawn's OpenGL ES path (works on Mesa llvmpipe). Returns the adapter or null with the reason logged.
 * `MASK2DIT_TEST_WEBGPU=0` skips the probe.
 */
export function probeWebGpu(): Promise<string | null> {
  webgpuProbe ??= (async () => {
    if (process.env['MASK2DIT_TEST_WEBGPU'] === '0') return null;
    const tries =
      process.env['MASK2DIT_WEBGPU_BACKEND'] !== undefined
        ? [process.env['MASK2DIT_WEBGPU_BACKEND']]
        : ['vulkan', 'opengles'];
    const reasons: string[] = [];
    for (const t of tries) {
      process.env['MASK2DIT_WEBGPU_BACKEND'] = t;
      try {
        return (await selectBackend('webgpu')).device;
      } catch (e) {
        if (!(e instanceof BackendError)) throw e;
        reasons.push(e.message);
      }
    }
    process.stderr.write(`webgpu not available, its cases are skipped: ${reasons.join(' | ')}\n`);
    return null;
  })();
  return webgpuProbe;
}

/** Backends to compare against cpu in this run. */
export async function availableBackends(): Promise<BackendName[]> {
  const names: BackendName[] = ['cpu', 'wasm'];
  if ((await probeWebGpu()) !== null) names.push('webgpu');
  return names;
}
