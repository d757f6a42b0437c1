/** Helpers for tests that build fleets of tenants in their database. */
import type { Knex } from 'knex';

/** Drops every tenant schema, the registry and the release ledger: a clean database for the next test. */
export async function dropAllTenants(knex: Knex): Promise<void> {
  const { rows } = await knex.raw<{ rows: { nspname: string }[] }>("select nspname from pg_namespace where nspname like 'tid\\_%'");
  for (const { nspname } of rows) await knex.raw('drop schema ?? cascade', [nspname]);
  await knex.raw('drop table if exists public.tenants');
  await knex.raw('drop table if exists public.tenant_migrate_releases, public.tenant_migrate_checksums');
}

/** The tenant-looking schemas in the database, sorted. */
export async function tenantSchemas(knex: Knex): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { nspname: string }[] }>("select nspname from pg_namespace where nspname like 'tid\\_%' order by 1");
  return rows.map((row) => row.nspname);
}

/** Drops every tenant and the master-basic fixture's tables and bookkeeping: a database as new. */
export async function dropEverything(knex: Knex): Promise<void> {
  await dropAllTenants(knex);
  await knex.raw('drop table if exists public.plans, public.plan_prices, public.knex_migrations, public.knex_migrations_lock, public.tenant_migrate_runs cascade');
}
