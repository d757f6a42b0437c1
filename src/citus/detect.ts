/**
 * Whether the database is a Citus coordinator whose new tenant schemas should be distributed.
 * `TENANT_MIGRATE_CITUS` (or the library's `citus` option): `auto` (the default) asks pg_extension,
 * `on` insists (and refuses a database without the extension rather than quietly making local
 * schemas), `off` never distributes even on Citus (schemas stay on the coordinator).
 */
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';

export type CitusSetting = 'auto' | 'on' | 'off';
export const CITUS_SETTINGS: readonly CitusSetting[] = ['auto', 'on', 'off'];

export function isCitusSetting(value: string): value is CitusSetting {
  return (CITUS_SETTINGS as readonly string[]).includes(value);
}

/** The option, else `TENANT_MIGRATE_CITUS` of the process (the CLI passes the validated setting). */
export function citusSettingOf(options: { citus?: CitusSetting }): CitusSetting {
  if (options.citus) return options.citus;
  const fromEnv = process.env.TENANT_MIGRATE_CITUS?.trim().toLowerCase() ?? '';
  return isCitusSetting(fromEnv) ? fromEnv : 'auto';
}

/** Is the citus extension created in this database? One catalog lookup. */
export async function hasCitus(knex: Knex): Promise<boolean> {
  const { rows } = await knex.raw<{ rows: { found: boolean }[] }>("select exists (select 1 from pg_extension where extname = 'citus') as found");
  return rows[0]?.found === true;
}

/**
 * Should new tenant schemas be created as Citus distributed schemas?
 * @throws UsageError when the setting is `on` and the database has no citus extension.
 */
export async function distributesSchemas(knex: Knex, setting: CitusSetting): Promise<boolean> {
  if (setting === 'off') return false;
  const found = await hasCitus(knex);
  if (setting === 'on' && !found) {
    throw new UsageError(
      'TENANT_MIGRATE_CITUS=on, but the citus extension is not created in this database: connect to the Citus coordinator (CREATE EXTENSION citus there), or set TENANT_MIGRATE_CITUS=auto. Nothing was changed.',
    );
  }
  return found;
}

/**
 * Sent right before `create schema` in the provisioning transaction: Citus decides at CREATE
 * SCHEMA whether a schema is distributed, and `set local` keeps the setting to this transaction,
 * so the whole provision (schema, tables, registry row) still commits or rolls back as one.
 * Every table the tenant's migrations create there becomes a single-shard table, co-located with
 * the schema's others on one worker.
 */
export const DISTRIBUTE_NEXT_SCHEMA = 'set local citus.enable_schema_based_sharding = on';
