// Runs before every test file: silence tfjs' Node banner and warnings.
import * as tf from '@tensorflow/tfjs-core';

tf.env().set('IS_TEST', true);
