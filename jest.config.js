/** Default tier: no GPU (unit, native, conformance, models, robustness). `npm run test:gpu` selects gpu. */
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] };
module.exports = {
  projects: [
    {
      displayName: 'default',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/{unit,native,conformance,models,robustness}/**/*.test.ts'],
    },
    {
      displayName: 'gpu',
      testEnvironment: 'node',
      transform,
      testMatch: ['<rootDir>/test/gpu/**/*.test.ts'],
    },
  ],
  testTimeout: 60000,
};
