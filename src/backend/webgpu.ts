/**
 * The `webgpu` backend in Node: Dawn (npm `webgpu`, an optional dependency) under
 * `@tensorflow/tfjs-backend-webgpu`.
 *
 * Dawn needs a driver: on an NVIDIA machine `libvulkan1` plus the driver's Vulkan ICD (containers
 * need the `graphics` driver capability); on a CPU machine Mesa's lavapipe (bookworm-backports) or
 * Dawn's OpenGL ES path on llvmpipe (`MASK2DIT_WEBGPU_BACKEND=opengles`, which this module runs with
 * `EGL_PLATFORM=surfaceless` and the `compatibility` feature level). tfjs-webgpu turns validation
 * failures (e.g. a binding over `maxStorageBufferBindingSize`) into silent zeros, so every
 * uncaptured device error is logged and recorded: see `takeWebGpuErrors()`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';
import { log } from '../log.js';

const DAWN_BACKENDS = ['vulkan', 'opengles', 'opengl'] as const;

interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}
interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<AdapterLike | null>;
  wgslLanguageFeatures?: unknown;
}
interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  limits: Record<string, number>;
}

let gpu: GpuLike | undefined; // must stay referenced for the life of the process
let adapterName = '';
const deviceErrors: string[] = [];

function describeAdapter(a: AdapterLike): string {
  const info = a.info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s !== undefined && s !== '');
  return parts.length > 0 ? parts.join(' / ') : 'unknown adapter';
}

const DRIVER_HELP =
  'on an NVIDIA machine install libvulkan1 and make sure the NVIDIA Vulkan ICD is present ' +
  '(/usr/share/vulkan/icd.d/nvidia_icd.json; containers need NVIDIA_DRIVER_CAPABILITIES to include graphics); ' +
  'on a CPU machine install Mesa 25 lavapipe from bookworm-backports, or set MASK2DIT_WEBGPU_BACKEND=opengles ' +
  '(needs libegl1 libgles2 libgl1-mesa-dri); see README "Backends"';

/** Initialise Dawn + tfjs-webgpu and make `webgpu` current; returns the adapter description. */
export async function initWebGpu(): Promise<string> {
  if (gpu !== undefined && tf.engine().registry['webgpu'] !== undefined) {
    await tf.setBackend('webgpu');
    return adapterName;
  }
  const dawnBackend = (process.env['MASK2DIT_WEBGPU_BACKEND'] ?? 'vulkan').toLowerCase();
  if (!(DAWN_BACKENDS as readonly string[]).includes(dawnBackend)) {
    throw new BackendError('webgpu', `MASK2DIT_WEBGPU_BACKEND must be one of ${DAWN_BACKENDS.join(', ')}, got ${dawnBackend}`);
  }
  const compat = dawnBackend !== 'vulkan';
  if (compat && process.env['EGL_PLATFORM'] === undefined) process.env['EGL_PLATFORM'] = 'surfaceless';

  let dawn: DawnModule;
  try {
    const spec: string = 'webgpu';
    dawn = (await import(spec)) as DawnModule;
  } catch (e) {
    throw new BackendError('webgpu', `the optional package 'webgpu' (Dawn for Node) could not be loaded: ${(e as Error).message}. Run \`npm install webgpu@0.6.2\``);
  }
  Object.assign(globalThis, dawn.globals);
  let created: GpuLike;
  try {
    created = dawn.create([`backend=${dawnBackend}`]);
  } catch (e) {
    throw new BackendError('webgpu', `Dawn could not start its ${dawnBackend} backend (${(e as Error).message}); ${DRIVER_HELP}`);
  }
  const featureLevel = compat ? 'compatibility' : undefined;
  const requestAdapter = (d: Record<string, unknown> = {}) => created.requestAdapter(featureLevel !== undefined ? { ...d, featureLevel } : d);
  const adapter = await requestAdapter().catch(() => null);
  if (adapter === null) throw new BackendError('webgpu', `no WebGPU adapter found through Dawn's ${dawnBackend} backend; ${DRIVER_HELP}`);
  gpu = created;
  adapterName = `${describeAdapter(adapter)} (Dawn ${dawnBackend}; maxStorageBufferBindingSize ${adapter.limits['maxStorageBufferBindingSize'] ?? '?'})`;

  // tfjs-backend-webgpu registers itself at import time only if navigator.gpu exists.
  const nav = { gpu: { requestAdapter, getPreferredCanvasFormat: () => 'rgba8unorm', wgslLanguageFeatures: created.wgslLanguageFeatures } };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new BackendError('webgpu', `tfjs-backend-webgpu did not initialise on ${adapterName}`);

  const device = (tf.backend() as unknown as { device?: EventTarget }).device;
  device?.addEventListener('uncapturederror', (ev) => {
    const msg = String((ev as unknown as { error?: { message?: string } }).error?.message ?? ev);
    deviceErrors.push(msg);
    log.error(`webgpu device error (results of the failing op are zeros): ${msg}`);
  });
  return adapterName;
}

/** Uncaptured WebGPU device errors since the last call (and clears them). Treat any as fatal. */
export function takeWebGpuErrors(): string[] {
  return deviceErrors.splice(0, deviceErrors.length);
}
