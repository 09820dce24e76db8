import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: process.env['KILN_JSON_REPORT'] ? ['default', ['json', { outputFile: process.env['KILN_JSON_REPORT'] }]] : ['default'],
  },
});
