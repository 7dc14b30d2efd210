/**
 * A Slice kernel for tfjs-wasm that copies only what it returns.
 *
 * tfjs-backend-wasm 4.22's Slice reads its input with `backend.readSync`, which copies the *whole*
 * input tensor out of the wasm heap into a fresh JS array (from a SharedArrayBuffer when threaded)
 * before copying the slice back in. Taking one head `[1, L, d]` out of `[H, L, d]` therefore costs a
 * copy of all H heads: 6–7 ms for L 6,336, d 64, H 8, against 0.3 ms for an elementwise op of the
 * same size — 14 % of a denoising step of the small benchmark config (benchmarks/RESULTS.md).
 *
 * This kernel reads the input through a heap view instead and copies runs of contiguous elements:
 * the axes after the last one that is cut are whole, so each run is `size[k]·Π shape[k+1..]` values.
 * Same results as the stock kernel for every dtype (string tensors go to the stock kernel);
 * test/backend/wasmSlice.prop.test.ts compares it against tfjs-cpu on random slices.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The part of tfjs-wasm's backend this kernel uses. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): tf.TypedArray;
}

interface SliceArgs {
  inputs: { x: tf.TensorInfo };
  attrs: { begin: number | number[]; size?: number | number[] };
  backend: WasmBackendLike;
}

/** Copy `x[begin : begin + size]` (rank ≥ 1: tfjs refuses to slice a scalar) (flat views of the input and output) in contiguous runs. */
export function copySlice(xVals: tf.TypedArray, shape: number[], begin: number[], size: number[], out: tf.TypedArray): void {
  const rank = shape.length;
  // k: the last axis that is cut; the axes after it are whole, so one run = size[k]·Π shape[k+1..]
  let k = rank - 1;
  while (k > 0 && begin[k] === 0 && size[k] === shape[k]) k--;
  const strides = new Array<number>(rank).fill(1); // row-major strides of the input
  for (let a = rank - 2; a >= 0; a--) strides[a] = strides[a + 1]! * shape[a + 1]!;
  const run = size[k]! * strides[k]!;
  const idx = new Array<number>(k).fill(0); // odometer over the axes before k
  let at = 0;
  for (;;) {
    let from = begin[k]! * strides[k]!;
    for (let a = 0; a < k; a++) from += (begin[a]! + idx[a]!) * strides[a]!;
    out.set(xVals.subarray(from, from + run), at);
    at += run;
    let a = k - 1;
    while (a >= 0 && ++idx[a]! === size[a]) idx[a--] = 0;
    if (a < 0) return;
  }
}

function makeSlice(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as SliceArgs;
    const x = inputs.x;
    if (x.dtype === 'string') return stock(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size) as [number[], number[]];
    const out = backend.makeOutput(size, x.dtype); // may grow the heap: take the views after it
    if (tf.util.sizeFromShape(size) === 0) return out;
    copySlice(backend.typedArrayFromHeap(x), x.shape, begin, size, backend.typedArrayFromHeap(out));
    return out;
  };
}

let installed = false;

/** Replace tfjs-wasm's Slice kernel by the heap-view one (once; call after tfjs-backend-wasm is imported). */
export function installWasmSlice(): void {
  if (installed) return;
  const stock = tf.getKernel('Slice', 'wasm');
  if (stock === undefined) return; // tfjs-backend-wasm not loaded: nothing to replace
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({ kernelName: 'Slice', backendName: 'wasm', kernelFunc: makeSlice(stock.kernelFunc) });
  installed = true;
}
