/**
 * safetensors reader and writer (our own: the npm `safetensors` package is an empty stub). This is
 * the public entry; the code lives in three parts:
 *
 *   safetensorsHeader.ts  the dtype table, the limits, and validation of a file's header and of a
 *                         sharded checkpoint's index.json (untrusted input: every length and offset
 *                         is bounded by the bytes actually present before anything is allocated)
 *   safetensorsRead.ts    `openSafetensors`: lazy readers over one file or a sharded checkpoint; a
 *                         tensor is read, by name, only when asked for (F16/BF16 widened to f32)
 *   safetensorsWrite.ts   `writeSafetensors`: validated, atomic (temp file, fsync, rename)
 *
 * Format: u64 little-endian N, N bytes of JSON header `{"__metadata__": {str: str}?, name: {"dtype",
 * "shape", "data_offsets": [start, end]}}` (offsets relative to the data area at 8 + N), then the data.
 * Host byte order is assumed little-endian (true of every platform Node ships for). Every problem with
 * the input is a `SafetensorsError` whose message names the file and whose `code` names the rule.
 */
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './float16.js';
export {
  DTYPE_SIZE,
  DTYPES,
  MAX_HEADER_SIZE,
  findDuplicateKey,
  nestsDeeperThan,
  type DType,
  type TensorData,
  type TensorInfo,
} from './safetensorsHeader.js';
export { SafetensorsFile, ShardedSafetensors, openSafetensors, type TensorSource } from './safetensorsRead.js';
export { encodeTensorData, writeSafetensors, type TensorToWrite } from './safetensorsWrite.js';
