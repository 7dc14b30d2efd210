// Runs before every test file: silence tfjs' Node banner and warnings. (Not IS_TEST: that flag also
// turns on a per-kernel leak check that misfires inside tf.customGrad on wasm, where saving a kernel's
// inputs for the backward pass copies them; our own no-leak tests measure tf.memory() instead.)
import * as tf from '@tensorflow/tfjs-core';

tf.env().set('PROD', true);
