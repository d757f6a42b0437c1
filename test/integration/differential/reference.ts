/**
 * The reference: the same migration trees run by PLAIN Knex, one tenant at a time — a Knex
 * instance per tenant whose search_path is [schema, public] (pool of one), the schema created,
 * then `knex.migrate.latest({ schemaName })`. Knex runs a batch of transactional migrations in one
 * transaction, with every migration module executed for this tenant: the behaviour tenant-migrate
 * promises to equal, whatever its executor does to go fast.
 *
 * Where tenant-migrate's documented semantics legitimately differ from stock Knex, the reference
 * mirrors tenant-migrate:
 * - Provisioning is atomic (schema, tables, bookkeeping, registry: all or nothing), so a tenant
 *   whose provisioning fails is dropped here again — it ends with no schema, as in tenant-migrate.
 * - `config.transaction = false`: Knex then runs EVERY migration of the batch in a transaction of
 *   its own; tenant-migrate groups consecutive transactional ones into one transaction. The end
 *   states differ only when a migration after the first fails, which no case of the corpus does.
 */
import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { ConnectionSettings } from '../../../src/config/load-config.ts';
import { knexConfig } from '../../../src/db/connection.ts';

/**
 * A Knex migration source over a directory, in name order. Knex's own directory loader imports
 * with Node's native `import()`, which cannot load `.ts` under vitest (see shipped-trees.test.ts);
 * this one imports through vitest. Everything else is stock Knex.
 */
export function treeSource(directory: string): Knex.MigrationSource<string> {
  return {
    getMigrations: async () => fs.readdirSync(directory).filter((file) => file.endsWith('.ts')).sort(),
    getMigrationName: (name) => name,
    getMigration: (name) => import(path.join(directory, name)),
  };
}

export interface ReferenceOutcome {
  status: 'migrated' | 'up-to-date' | 'provisioned' | 'failed';
  /** Knex's error, when it failed. */
  error?: string;
}

/** A Knex instance for one tenant, as a user of stock Knex sets it up. */
export function tenantKnex(connection: ConnectionSettings, schema: string): Knex {
  return knexFactory({ ...knexConfig(connection, 1), searchPath: [schema, 'public'] });
}

/**
 * Scenario "migrate": the tenant exists on the base tree with its data (`seed`), then the full
 * tree is applied. Returns what a fleet run should report for it.
 */
export async function referenceMigrate(
  connection: ConnectionSettings,
  schema: string,
  trees: { base: Knex.MigrationSource<string>; full: Knex.MigrationSource<string> },
  seed: (knex: Knex) => Promise<void>,
): Promise<ReferenceOutcome> {
  const knex = tenantKnex(connection, schema);
  try {
    await knex.raw('create schema ??', [schema]);
    await knex.migrate.latest({ migrationSource: trees.base, schemaName: schema });
    await seed(knex);
    try {
      const [, applied] = (await knex.migrate.latest({ migrationSource: trees.full, schemaName: schema })) as [number, string[]];
      return { status: applied.length > 0 ? 'migrated' : 'up-to-date' };
    } catch (error) {
      return { status: 'failed', error: (error as Error).message };
    }
  } finally {
    await knex.destroy();
  }
}

/** Scenario "provision": a new schema straight onto the full tree; all or nothing. */
export async function referenceProvision(connection: ConnectionSettings, schema: string, full: Knex.MigrationSource<string>): Promise<ReferenceOutcome> {
  const knex = tenantKnex(connection, schema);
  try {
    await knex.raw('create schema ??', [schema]);
    try {
      await knex.migrate.latest({ migrationSource: full, schemaName: schema });
      return { status: 'provisioned' };
    } catch (error) {
      await knex.raw('drop schema ?? cascade', [schema]);
      return { status: 'failed', error: (error as Error).message };
    }
  } finally {
    await knex.destroy();
  }
}
