/**
 * The registry, `public.tenants`: the fleet is what it says. Owned by tenant-migrate and created
 * idempotently; the master tree may add columns of its own.
 *
 * `migration_version` mirrors the newest migration in the tenant's own `knex_migrations` and is
 * written in the same transaction as that tenant's migrations, so one query tells which tenants
 * are behind without opening every schema. The tenant's `knex_migrations` stays the truth.
 */
import type { Knex } from 'knex';
import { REGISTRY_LOCK_KEY } from '../db/advisory-lock.ts';
import type { AppliedState } from '../migration/plan.ts';

export const REGISTRY_TABLE = 'tenants';

const TENANT_COLUMNS = { orgId: 'org_id', schema: 'schema_name', version: 'migration_version', count: 'migration_count' };

export interface TenantRecord {
  orgId: string;
  schema: string;
  /** Newest applied tenant migration, or null when none is. */
  version: string | null;
  /** How many tenant migrations are applied (catches a new file named before the newest). */
  count: number;
}

/**
 * Creates `public.tenants` when missing and adds the columns tenant-migrate needs when a master
 * migration created the table first. Safe when many processes call it at once.
 */
export async function ensureRegistry(knex: Knex): Promise<void> {
  if (await registryIsCurrent(knex)) return;
  await knex.transaction(async (trx) => {
    // "IF NOT EXISTS" alone is not enough: two sessions can both pass the check and one then fails
    // on pg_type's unique index. The lock makes creation race-safe.
    await trx.raw('select pg_advisory_xact_lock(?, ?)', REGISTRY_LOCK_KEY);
    await trx.raw(`
      create table if not exists public.tenants (
        org_id text primary key,
        schema_name text not null unique,
        created_at timestamptz not null default now()
      )`);
    await trx.raw('alter table public.tenants add column if not exists migration_version text');
    await trx.raw('alter table public.tenants add column if not exists migration_count integer not null default 0');
    await trx.raw('alter table public.tenants add column if not exists migrated_at timestamptz');
  });
}

async function registryIsCurrent(knex: Knex): Promise<boolean> {
  const { rows } = await knex.raw<{ rows: { n: number }[] }>(
    `select count(*)::int as n from information_schema.columns
      where table_schema = 'public' and table_name = 'tenants'
        and column_name in ('org_id', 'schema_name', 'created_at', 'migration_version', 'migration_count', 'migrated_at')`,
  );
  return rows[0]?.n === 6;
}

/** Every registered tenant (or only those of `orgIds`), ordered by org id. One query. */
export async function listTenants(knex: Knex, orgIds?: readonly string[]): Promise<TenantRecord[]> {
  const query = knex('tenants')
    .withSchema('public')
    .select(TENANT_COLUMNS)
    .orderBy('org_id');
  if (orgIds) query.whereIn('org_id', [...orgIds]);
  return (await query) as TenantRecord[];
}

/** Registry rows that use any of these schema names (for collision checks). */
export async function tenantsBySchema(knex: Knex, schemas: readonly string[]): Promise<TenantRecord[]> {
  if (schemas.length === 0) return [];
  return (await knex('tenants')
    .withSchema('public')
    .select(TENANT_COLUMNS)
    .whereIn('schema_name', [...schemas])) as TenantRecord[];
}

/** Registers a tenant (nothing applied yet) inside its provisioning transaction. */
export async function insertTenant(trx: Knex.Transaction, orgId: string, schema: string): Promise<void> {
  await trx('tenants').withSchema('public').insert({ org_id: orgId, schema_name: schema });
}

/**
 * The `finish` of a tenant's schema run: records the tenant's applied state in the registry,
 * inside the transaction that changed it, in one statement with the tenant's own bookkeeping
 * (as a CTE) — one round trip for both.
 */
export function recordTenantState(orgId: string) {
  return async (trx: Knex.Transaction, state: AppliedState, bookkeeping: Knex.QueryBuilder): Promise<void> => {
    await trx
      .with('bookkeeping', bookkeeping)
      .table('tenants')
      .withSchema('public')
      .where({ org_id: orgId })
      .update({ migration_version: state.version, migration_count: state.count, migrated_at: trx.fn.now() });
  };
}

/** Whether the registry says a tenant has applied exactly the files of the tree. */
export function isUpToDate(tenant: TenantRecord, names: readonly string[]): boolean {
  return tenant.count === names.length && tenant.version === (names.at(-1) ?? null);
}
