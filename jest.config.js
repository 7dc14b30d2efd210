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
  // Test files share one process on 2 cores (jest runs in band), and each file's tfjs instance owns its
  // wasm worker threads; not every file tears its backend down, so exit when the run is complete.
  // (The CLI's own exit-by-itself behaviour is tested by spawning it: test/cli/commands.cli.test.ts.)
  forceExit: true,
};
