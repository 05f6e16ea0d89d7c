// Jest runs the compiled, type-checked tests in dist/ as native ESM (see hack/test.sh).
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  transform: {},
  testTimeout: 60_000,
  verbose: true,
};
