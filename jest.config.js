// Dawn's OpenGL ES path (the webgpu cases on a CPU machine) needs this in the real process
// environment: jest gives test files a copy of process.env, so it must be set here.
process.env.EGL_PLATFORM ??= 'surfaceless';

/** Jest in native ESM with ts-jest (type-checking is a separate `tsc --noEmit` step). */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup.ts'],
  testTimeout: 120000,
};
