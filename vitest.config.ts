import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    // TEST_REDIS=cluster: the suite runs on a Redis Cluster it starts itself (see the setup).
    globalSetup: ['packages/platform/src/testing/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own databases; two cores, so keep the number of files at once small.
    maxWorkers: 2,
  },
});
