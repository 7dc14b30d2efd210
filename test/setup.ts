// Runs before every test file: silence tfjs' Node banner and warnings. (Not IS_TEST: that flag also
// turns on a per-kernel leak check that misfires inside tf.customGrad on wasm, where saving a kernel's
// inputs for the backward pass copies them; our own no-leak tests measure tf.memory() instead.)
import * as tf from '@tensorflow/tfjs-core';

tf.env().set('PROD', true);

// wasm runs single-threaded in the test suite unless a test asks for threads (the threaded build is
// covered by test/model/transformer.parity.test.ts, test/gpu/backends.test.ts and the CLI run in
// .ci/run). Measured on 2 cores: the suite takes 254 s single-threaded vs 393 s threaded (tiny ops
// pay the thread pool's synchronisation), and one jest process no longer starts and stops ~50
// pools of 8 worker threads (a CI run once hung starting one).
process.env['MASK2DIT_THREADS'] ??= '1';
