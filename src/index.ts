/**
 * mask2dit-ts public API. Nothing else under src/ is a public path.
 */
export { VERSION } from './version.js';
export * from './errors.js';
export { log, setLogLevel, getLogLevel, type LogLevel } from './log.js';
export {
  BACKEND_NAMES,
  type BackendName,
  type BackendOptions,
  type BackendInfo,
  resolveBackendName,
  resolveThreads,
  selectBackend,
  shutdownBackends,
} from './backend/index.js';
export { takeWebGpuErrors } from './backend/webgpu.js';
export * from './io/safetensors.js';
export { inspectPath, findCheckpoints, summarise, groupOf, type CheckpointSummary } from './io/checkpointSummary.js';
