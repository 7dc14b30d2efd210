/**
 * A Slice kernel for tfjs-wasm that copies only what it returns.
 *
 * tfjs-backend-wasm 4.22's Slice reads its input with `backend.readSync`, which copies the *whole*
 * input tensor out of the wasm heap into a fresh JS array (from a SharedArrayBuffer when threaded)
 * before copying the slice back in. Taking one head `[1, L, d]` out of `[H, L, d]` therefore costs a
 * copy of all H heads: 6–7 ms for L 6,336, d 64, H 8, against 0.5 ms for an elementwise op over
 * all 8 heads — 14 % of a denoising step of the small benchmark config (benchmarks/RESULTS.md).
 *
 * This kernel reads the input through a heap view instead and copies runs of contiguous elements:
 * the axes after the last one that is cut are whole, so each run is `size[k]·Π shape[k+1..]` values.
 * SplitV (`tf.split`) and Unpack (`tf.unstack`) call the stock slice once per part, so each part copied
 * the whole input too: they get the same treatment. Same results as the stock kernels for every dtype
 * (string and complex64 tensors go to the stock kernels); test/backend/wasmSlice.prop.test.ts compares them against
 * tfjs-cpu on random inputs. StridedSlice (its stride-1 path), BatchToSpaceND and SparseFillEmptyRows
 * still call the stock slice directly; nothing on this project's hot paths uses them (conv2d's
 * strided slices have stride > 1, which tfjs runs in C++).
 */
import * as tf from '@tensorflow/tfjs-core';

/** The part of tfjs-wasm's backend this kernel uses. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): tf.TypedArray;
}

/** Dtypes whose heap view `typedArrayFromHeap` gives; others (string, complex64) go to the stock kernels. */
const VIEWABLE = new Set<tf.DataType>(['float32', 'int32', 'bool']);

interface SliceArgs {
  inputs: { x: tf.TensorInfo };
  attrs: { begin: number | number[]; size?: number | number[] };
  backend: WasmBackendLike;
}

/** Copy `x[begin : begin + size]` between flat views of the input and output, in contiguous runs (rank ≥ 1: tfjs refuses to slice a scalar). */
export function copySlice(
  xVals: tf.TypedArray,
  shape: number[],
  begin: number[],
  size: number[],
  out: tf.TypedArray,
): void {
  const rank = shape.length;
  if (size.some((n) => n === 0)) return;
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
    if (!VIEWABLE.has(x.dtype)) return stock(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size) as [
      number[],
      number[],
    ];
    return copyParts(backend, x, [[begin, size]], (s) => s)[0]!;
  };
}

/** `[begin, size]` of each part of a split along `axis` (sizes already resolved). */
function splitParts(shape: number[], axis: number, sizes: number[]): [number[], number[]][] {
  let at = 0;
  return sizes.map((n) => {
    const begin = shape.map((_, a) => (a === axis ? at : 0));
    const size = shape.map((d, a) => (a === axis ? n : d));
    at += n;
    return [begin, size];
  });
}

/** Copy each `[begin, size]` part of `x` into a new output of `outShape(size)` (Slice: one part; SplitV, Unpack: many). */
function copyParts(
  backend: WasmBackendLike,
  x: tf.TensorInfo,
  parts: [number[], number[]][],
  outShape: (size: number[]) => number[],
): tf.TensorInfo[] {
  const outs = parts.map(([, size]) => backend.makeOutput(outShape(size), x.dtype));
  const xVals = backend.typedArrayFromHeap(x); // after every makeOutput: an allocation may grow the heap
  parts.forEach(([begin, size], i) => copySlice(xVals, x.shape, begin, size, backend.typedArrayFromHeap(outs[i]!)));
  return outs;
}

/** SplitV and Unpack call the stock Slice directly (not through the registry): same fix for them. */
function makeSplitV(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as {
      inputs: { x: tf.TensorInfo };
      attrs: { numOrSizeSplits: number | number[]; axis: number | number[] };
      backend: WasmBackendLike;
    };
    const x = inputs.x;
    if (!VIEWABLE.has(x.dtype)) return stock(args);
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
    return copyParts(backend, x, splitParts(x.shape, axis, sizes), (size) => size);
  };
}

function makeUnpack(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, attrs, backend } = args as unknown as {
      inputs: { value: tf.TensorInfo };
      attrs: { axis: number };
      backend: WasmBackendLike;
    };
    const x = inputs.value;
    if (!VIEWABLE.has(x.dtype)) return stock(args);
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const parts = splitParts(x.shape, axis, new Array<number>(x.shape[axis]!).fill(1));
    return copyParts(backend, x, parts, (size) => size.filter((_, a) => a !== axis));
  };
}

const REPLACEMENTS: [string, (stock: tf.KernelFunc) => tf.KernelFunc][] = [
  ['Slice', makeSlice],
  ['SplitV', makeSplitV],
  ['Unpack', makeUnpack],
];

let installed = false;

/** Replace tfjs-wasm's Slice, SplitV and Unpack kernels by the heap-view ones (once; after tfjs-backend-wasm is imported). */
export function installWasmSlice(): void {
  if (installed) return;
  for (const [name, make] of REPLACEMENTS) {
    const stock = tf.getKernel(name, 'wasm');
    if (stock === undefined) continue; // tfjs-backend-wasm not loaded: nothing to replace
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: make(stock.kernelFunc) });
    installed = true;
  }
}
