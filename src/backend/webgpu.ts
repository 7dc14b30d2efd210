/**
 * The `webgpu` backend in Node: Dawn (npm `webgpu`, an optional dependency) under
 * `@tensorflow/tfjs-backend-webgpu`.
 *
 * Dawn needs a driver: on an NVIDIA machine `libvulkan1` plus the driver's Vulkan ICD (containers
 * need the `graphics` driver capability); on a CPU machine Mesa's lavapipe (bookworm-backports) or
 * Dawn's OpenGL ES path on llvmpipe (`MASK2DIT_WEBGPU_BACKEND=opengles`, which this module runs with
 * `EGL_PLATFORM=surfaceless` and the `compatibility` feature level).
 *
 * Two traps of tfjs-webgpu, handled here:
 * - Limits. WebGPU devices start with the spec's default limits (128 MiB per storage binding) unless
 *   the app asks for more. We create the device ourselves with `requiredLimits` = every limit the
 *   adapter offers, and register our own backend factory in place of the package's.
 * - Silent zeros. A failed validation (a binding over `maxStorageBufferBindingSize`, a shader that
 *   does not compile — 5-D `pad` — …) drops the command buffer and tfjs returns zeros. Every
 *   uncaptured device error is recorded, and the backend's `read`/`readSync` throw a
 *   `WebGpuDeviceError` after a readback if any was recorded: `await t.data()` cannot hand back
 *   zeros silently. `checkWebGpu()` throws the same error on demand (forwards call it first).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';
import { log } from '../log.js';

const DAWN_BACKENDS = ['vulkan', 'opengles', 'opengl'] as const;

/** The limits of the WebGPU spec (GPUSupportedLimits) that a device can request. */
const LIMIT_NAMES = [
  'maxTextureDimension1D',
  'maxTextureDimension2D',
  'maxTextureDimension3D',
  'maxTextureArrayLayers',
  'maxBindGroups',
  'maxBindGroupsPlusVertexBuffers',
  'maxBindingsPerBindGroup',
  'maxDynamicUniformBuffersPerPipelineLayout',
  'maxDynamicStorageBuffersPerPipelineLayout',
  'maxSampledTexturesPerShaderStage',
  'maxSamplersPerShaderStage',
  'maxStorageBuffersPerShaderStage',
  'maxStorageTexturesPerShaderStage',
  'maxUniformBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxStorageBufferBindingSize',
  'minUniformBufferOffsetAlignment',
  'minStorageBufferOffsetAlignment',
  'maxVertexBuffers',
  'maxBufferSize',
  'maxVertexAttributes',
  'maxVertexBufferArrayStride',
  'maxInterStageShaderVariables',
  'maxColorAttachments',
  'maxColorAttachmentBytesPerSample',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
] as const;

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
  features: { has(name: string): boolean };
  requestDevice(descriptor: Record<string, unknown>): Promise<DeviceLike>;
}
interface DeviceLike extends EventTarget {
  limits: Record<string, number>;
  lost: Promise<{ reason?: string; message?: string }>;
  queue: { onSubmittedWorkDone(): Promise<void> };
}
interface WebGpuModule {
  WebGPUBackend: new (device: never, adapterInfo?: never) => tf.KernelBackend;
}

let gpu: GpuLike | undefined; // must stay referenced for the life of the process
let adapterName = '';
let device: DeviceLike | undefined;
const deviceErrors: string[] = [];

/** Uncaptured WebGPU device errors: the results of the failing ops are zeros, so they are fatal. */
export class WebGpuDeviceError extends BackendError {
  constructor(readonly errors: string[]) {
    super(
      'webgpu',
      `${errors.length} device error${errors.length > 1 ? 's' : ''}; the results of the failing ops are zeros, not data. First: ${summarize(errors)}`,
    );
  }
}

/** The distinct root causes (not the "invalid due to a previous error" echoes), first three. */
function summarize(errors: string[]): string {
  const firstLines = errors.map((e) => e.trim().split('\n')[0]!);
  const roots = firstLines.filter((l) => !l.includes('due to a previous error'));
  return [...new Set(roots.length > 0 ? roots : firstLines)].slice(0, 3).join(' | ');
}

function describeAdapter(a: AdapterLike): string {
  const info = a.info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(
    (s) => s !== undefined && s !== '',
  );
  return parts.length > 0 ? parts.join(' / ') : 'unknown adapter';
}

const DRIVER_HELP =
  'on an NVIDIA machine install libvulkan1 and make sure the NVIDIA Vulkan ICD is present ' +
  '(/usr/share/vulkan/icd.d/nvidia_icd.json; containers need NVIDIA_DRIVER_CAPABILITIES to include graphics); ' +
  'on a CPU machine install Mesa 25 lavapipe from bookworm-backports, or set MASK2DIT_WEBGPU_BACKEND=opengles ' +
  '(needs libegl1 libgles2 libgl1-mesa-dri); see README "Backends"';

/** Every limit the adapter reports, to be requested as the device's `requiredLimits`. */
export function adapterLimits(limits: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const v = limits[name];
    if (typeof v === 'number' && Number.isFinite(v)) out[name] = v;
  }
  return out;
}

/** Record a device error (also logged: Dawn prints it too, but not always where the user looks). */
function recordError(msg: string): void {
  deviceErrors.push(msg);
  log.error(`webgpu device error (results of the failing op are zeros): ${msg.split('\n')[0]}`);
}

/** Create the device with the adapter's real limits and watch it for errors. */
async function createDevice(adapter: AdapterLike): Promise<DeviceLike> {
  const requiredFeatures = ['timestamp-query'].filter((f) => adapter.features.has(f));
  const dev = await adapter.requestDevice({ requiredFeatures, requiredLimits: adapterLimits(adapter.limits) });
  dev.addEventListener('uncapturederror', (ev) =>
    recordError(String((ev as unknown as { error?: { message?: string } }).error?.message ?? ev)),
  );
  void dev.lost.then((info) => {
    if (info.reason !== 'destroyed') recordError(`device lost: ${info.message ?? info.reason ?? 'unknown reason'}`);
  });
  return dev;
}

/** tfjs-webgpu's backend, with readbacks that throw instead of returning a failed op's zeros. */
function checkedBackendClass(Base: WebGpuModule['WebGPUBackend']) {
  return class CheckedWebGPUBackend extends (Base as unknown as new (
    d: never,
    i?: never,
  ) => tf.KernelBackend & {
    read(id: object): Promise<tf.backend_util.BackendValues>;
    readSync(id: object): tf.backend_util.BackendValues;
  }) {
    override async read(dataId: object): Promise<tf.backend_util.BackendValues> {
      const v = await super.read(dataId);
      checkWebGpu();
      return v;
    }
    override readSync(dataId: object): tf.backend_util.BackendValues {
      const v = super.readSync(dataId);
      checkWebGpu();
      return v;
    }
  };
}

/** Initialise Dawn + tfjs-webgpu and make `webgpu` current; returns the adapter description. */
export async function initWebGpu(): Promise<string> {
  if (gpu !== undefined && tf.engine().registry['webgpu'] !== undefined) {
    await tf.setBackend('webgpu');
    return adapterName;
  }
  const dawnBackend = (process.env['MASK2DIT_WEBGPU_BACKEND'] ?? 'vulkan').toLowerCase();
  if (!(DAWN_BACKENDS as readonly string[]).includes(dawnBackend)) {
    throw new BackendError(
      'webgpu',
      `MASK2DIT_WEBGPU_BACKEND must be one of ${DAWN_BACKENDS.join(', ')}, got ${dawnBackend}`,
    );
  }
  const compat = dawnBackend !== 'vulkan';
  if (compat && process.env['EGL_PLATFORM'] === undefined) process.env['EGL_PLATFORM'] = 'surfaceless';

  let dawn: DawnModule;
  try {
    const spec: string = 'webgpu';
    dawn = (await import(spec)) as DawnModule;
  } catch (e) {
    throw new BackendError(
      'webgpu',
      `the optional package 'webgpu' (Dawn for Node) could not be loaded: ${(e as Error).message}. Run \`npm install webgpu@0.6.2\``,
    );
  }
  Object.assign(globalThis, dawn.globals);
  let created: GpuLike;
  try {
    created = dawn.create([`backend=${dawnBackend}`]);
  } catch (e) {
    throw new BackendError(
      'webgpu',
      `Dawn could not start its ${dawnBackend} backend (${(e as Error).message}); ${DRIVER_HELP}`,
    );
  }
  const featureLevel = compat ? 'compatibility' : undefined;
  const requestAdapter = (d: Record<string, unknown> = {}) =>
    created.requestAdapter(featureLevel !== undefined ? { ...d, featureLevel } : d);
  const adapter = await requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (adapter === null)
    throw new BackendError('webgpu', `no WebGPU adapter found through Dawn's ${dawnBackend} backend; ${DRIVER_HELP}`);
  gpu = created;
  adapterName = `${describeAdapter(adapter)} (Dawn ${dawnBackend}; maxStorageBufferBindingSize ${adapter.limits['maxStorageBufferBindingSize'] ?? '?'}, maxBufferSize ${adapter.limits['maxBufferSize'] ?? '?'})`;

  // tfjs-backend-webgpu checks navigator.gpu at import time and in the backend's constructor.
  const nav = {
    gpu: {
      requestAdapter,
      getPreferredCanvasFormat: () => 'rgba8unorm',
      wgslLanguageFeatures: created.wgslLanguageFeatures,
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
  const mod = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as WebGpuModule;
  // replace the package's factory (which requests only some limits) by ours
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  const Checked = checkedBackendClass(mod.WebGPUBackend);
  tf.registerBackend(
    'webgpu',
    async () => {
      device = await createDevice(adapter);
      return new Checked(device as never, adapter.info as never);
    },
    3,
  );
  if (!(await tf.setBackend('webgpu')))
    throw new BackendError('webgpu', `tfjs-backend-webgpu did not initialise on ${adapterName}`);
  return adapterName;
}

/** Uncaptured WebGPU device errors since the last call (and clears them). Treat any as fatal. */
export function takeWebGpuErrors(): string[] {
  return deviceErrors.splice(0, deviceErrors.length);
}

/** Throw a `WebGpuDeviceError` (and clear the list) if any device error was recorded; no-op otherwise. */
export function checkWebGpu(): void {
  if (deviceErrors.length > 0) throw new WebGpuDeviceError(takeWebGpuErrors());
}

/** Wait for the submitted GPU work, then `checkWebGpu()`. No-op when webgpu was never initialised. */
export async function syncWebGpu(): Promise<void> {
  if (device !== undefined && tf.getBackend() === 'webgpu') await device.queue.onSubmittedWorkDone();
  checkWebGpu();
}

/** The current device's limits (what was granted), or undefined when webgpu is not initialised. */
export function webGpuLimits(): Readonly<Record<string, number>> | undefined {
  return device === undefined ? undefined : adapterLimits(device.limits);
}
