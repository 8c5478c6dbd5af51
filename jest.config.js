/**
 * Test tiers (ARCHITECTURE.md principle 10), one jest project each:
 *   unit    pure TypeScript, no addon (`npm run test:unit` works without building native code)
 *   native  the binding contract, checkpoints and the tfjs variant against the addon
 *   e2e     tiny synthetic runs through the jobs and the CLI
 * `npm test` runs all three. ts-jest transpiles each file alone (tsconfig `isolatedModules`); types are
 * checked once by `npm run build:ts` and `npm run check:types`, not per test file.
 */
const base = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  testTimeout: 120000,
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 120000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'native', testMatch: ['<rootDir>/test/native/**/*.test.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
