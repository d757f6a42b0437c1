/**
 * A standard Knex configuration built from the same variables as tenant-migrate, so the stock
 * `knex` CLI can still run the master tree against `public`:
 *
 *   pnpm knex migrate:status      (= node --import tsx node_modules/knex/bin/cli.js --knexfile knexfile.ts …)
 *
 * Tenant schemas are tenant-migrate's job: it keeps one `knex_migrations` per schema.
 */
import type { Knex } from 'knex';
import { loadConfig } from './src/config/load-config.ts';
import { knexConfig } from './src/db/connection.ts';
import { UsageError } from './src/errors.ts';

const config = loadConfig({ requireMigrationDirs: false });
if (!config.connection) {
  throw new UsageError('knexfile.ts needs a real server: DATABASE_URL=embedded only works through tenant-migrate.');
}

const knexfile: Knex.Config = {
  ...knexConfig(config.connection),
  migrations: {
    directory: config.masterMigrationsDir,
    tableName: 'knex_migrations',
    loadExtensions: ['.ts', '.js'],
  },
};

export default knexfile;
