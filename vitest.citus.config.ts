/**
 * `pnpm test:citus`: test/citus/ against a real Citus cluster (scripts/citus-cluster.sh up), whose
 * coordinator CITUS_DATABASE_URL names. Not part of `pnpm test`: it needs the cluster.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/citus/**/*.test.ts'],
    environment: 'node',
    // The tests build one fleet in order, on one shared database.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
