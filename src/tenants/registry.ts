/**
 * The registry (`public.tenants` unless TENANT_REGISTRY_TABLE names another table): the fleet is
 * what it says. Owned by tenant-migrate, marked as its own with a table comment, and created
 * idempotently; the master tree may add columns of its own.
 *
 * `migration_version` mirrors the newest migration in the tenant's own `knex_migrations` and is
 * written in the same transaction as that tenant's migrations, so one query tells which tenants
 * are behind without opening every schema. The tenant's `knex_migrations` stays the truth: `--verify`
 * and `--tenant` read it (a restore or a stock-Knex rollback can leave the registry ahead).
 */
import type { Knex } from 'knex';
import { READ_COMMITTED } from '../db/isolation.ts';
import { REGISTRY_LOCK_KEY } from '../db/advisory-lock.ts';
import { quoteLiteral } from '../db/quote.ts';
import { UsageError } from '../errors.ts';
import type { AppliedState } from '../migration/plan.ts';
import { DEFAULT_REGISTRY, REGISTRY_MARK, registryName, registrySql, type RegistryTable } from './registry-table.ts';

const TENANT_COLUMNS = { orgId: 'org_id', schema: 'schema_name', version: 'migration_version', count: 'migration_count' };
const REQUIRED_COLUMNS = ['org_id', 'schema_name', 'created_at', 'migration_version', 'migration_count', 'migrated_at', 'deleted_at'];

export interface TenantRecord {
  orgId: string;
  schema: string;
  /** Newest applied tenant migration, or null when none is. */
  version: string | null;
  /** How many tenant migrations are applied (catches a new file named before the newest). */
  count: number;
}

/** What the database has under the registry's name. */
export interface RegistryShape {
  schemaExists: boolean;
  exists: boolean;
  columns: string[];
  /** Carries tenant-migrate's table comment. */
  marked: boolean;
}

/** Reads what the registry's name refers to, in one query. */
export async function inspectRegistry(knex: Knex, registry: RegistryTable = DEFAULT_REGISTRY): Promise<RegistryShape> {
  const { rows } = await knex.raw<{ rows: RegistryShape[] }>(
    `with t as (select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = ? and c.relname = ?)
     select exists (select 1 from pg_namespace where nspname = ?) as "schemaExists",
            exists (select 1 from t) as "exists",
            coalesce((select array_agg(attname::text) from pg_attribute
                       where attrelid = (select oid from t) and attnum > 0 and not attisdropped), '{}') as columns,
            coalesce(obj_description((select oid from t), 'pg_class') = ?, false) as marked`,
    [registry.schema, registry.table, registry.schema, REGISTRY_MARK],
  );
  return rows[0]!;
}

/**
 * Exit 2 when the registry's name is taken by a table that is not tenant-migrate's (an
 * application's own `tenants` table): without org_id and schema_name it cannot be adopted, and
 * adding columns to it would change someone else's table.
 */
export function refuseForeignTable(shape: RegistryShape, registry: RegistryTable): void {
  if (!shape.exists || shape.marked) return;
  const missing = ['org_id', 'schema_name'].filter((column) => !shape.columns.includes(column));
  if (missing.length === 0) return; // a registry made before the mark (or by the master tree): adopted
  throw new UsageError(
    `${registryName(registry)} exists but is not tenant-migrate's registry (it has no ${missing.join(' or ')} column). ` +
      `Set TENANT_REGISTRY_TABLE to a name of its own, e.g. TENANT_REGISTRY_TABLE=public.tenant_registry. Nothing was changed.`,
  );
}

/**
 * Creates the registry when missing, adds the columns tenant-migrate needs when a master migration
 * created the table first, and marks it. Refuses (exit 2, nothing changed) a table of that name that
 * is not a registry. Safe when many processes call it at once.
 *
 * @example
 *   await ensureRegistry(knex, { schema: 'public', table: 'tenants' });
 */
export async function ensureRegistry(knex: Knex, registry: RegistryTable = DEFAULT_REGISTRY): Promise<void> {
  const shape = await inspectRegistry(knex, registry);
  refuseForeignTable(shape, registry);
  if (shape.marked && REQUIRED_COLUMNS.every((column) => shape.columns.includes(column))) return;
  const table = registrySql(registry);
  await knex.transaction(async (trx) => {
    // "IF NOT EXISTS" alone is not enough: two sessions can both pass the check and one then fails
    // on pg_type's unique index. The lock makes creation race-safe.
    await trx.raw('select pg_advisory_xact_lock(?, ?)', REGISTRY_LOCK_KEY);
    const locked = await inspectRegistry(trx, registry);
    refuseForeignTable(locked, registry);
    if (!locked.schemaExists) {
      throw new UsageError(
        `TENANT_REGISTRY_TABLE names schema ${registry.schema}, which does not exist: create it first (CREATE SCHEMA ${registry.schema}). Nothing was changed.`,
      );
    }
    // Identifiers through Knex's ?? (quoted); the name was validated by parseRegistryTable too.
    const name = [registry.schema, registry.table];
    await trx.raw(
      `create table if not exists ??.?? (
        org_id text primary key,
        schema_name text not null unique,
        created_at timestamptz not null default now()
      )`,
      name,
    );
    await trx.raw('alter table ??.?? add column if not exists migration_version text', name);
    await trx.raw('alter table ??.?? add column if not exists migration_count integer not null default 0', name);
    await trx.raw('alter table ??.?? add column if not exists migrated_at timestamptz', name);
    // Set when the org is deleted in Clerk: the tenant awaits deprovisioning, nothing is dropped.
    await trx.raw('alter table ??.?? add column if not exists deleted_at timestamptz', name);
    // COMMENT takes no bound parameters: the mark is a constant of ours, quoted as a literal.
    await trx.raw(`comment on table ${table} is ${quoteLiteral(REGISTRY_MARK)}`);
  }, READ_COMMITTED);
}

/** Every registered tenant (or only those of `orgIds`), ordered by org id. One query. */
export async function listTenants(knex: Knex, registry: RegistryTable, orgIds?: readonly string[]): Promise<TenantRecord[]> {
  const query = knex(registry.table).withSchema(registry.schema).select(TENANT_COLUMNS).orderBy('org_id');
  if (orgIds) query.whereIn('org_id', [...orgIds]);
  return (await query) as TenantRecord[];
}

/** Registry rows that use any of these schema names (for collision checks). */
export async function tenantsBySchema(knex: Knex, registry: RegistryTable, schemas: readonly string[]): Promise<TenantRecord[]> {
  if (schemas.length === 0) return [];
  return (await knex(registry.table)
    .withSchema(registry.schema)
    .select(TENANT_COLUMNS)
    .whereIn('schema_name', [...schemas])) as TenantRecord[];
}

/** Registers a tenant (nothing applied yet) inside its provisioning transaction. */
export async function insertTenant(trx: Knex.Transaction, registry: RegistryTable, orgId: string, schema: string): Promise<void> {
  await trx(registry.table).withSchema(registry.schema).insert({ org_id: orgId, schema_name: schema });
}

/**
 * {@link insertTenant} as SQL text, for a script sent in one round trip (no bound parameters
 * there). The org id travels hex-encoded — the SQL text holds only hex digits of it — so it stays
 * data that cannot be read as SQL whatever it contains.
 */
export function insertTenantSql(registry: RegistryTable, orgId: string, schema: string): string {
  const hex = Buffer.from(orgId, 'utf8').toString('hex');
  return `insert into ${registrySql(registry)} (org_id, schema_name) values (convert_from(decode('${hex}', 'hex'), 'UTF8'), ${quoteLiteral(schema)})`;
}

/**
 * The `finish` of a tenant's schema run: the statement that records the tenant's applied state in
 * the registry, in the transaction that changed it, together with the tenant's own bookkeeping (as
 * a CTE) when there is any. Keyed by the schema name (unique, and generated by us) so it carries no
 * user input.
 */
export function recordTenantState(registry: RegistryTable, schema: string) {
  return (knex: Knex, state: AppliedState, bookkeeping?: Knex.QueryBuilder): Knex.QueryBuilder =>
    (bookkeeping ? knex.with('bookkeeping', bookkeeping) : knex.queryBuilder())
      .table(registry.table)
      .withSchema(registry.schema)
      .where({ schema_name: schema })
      .update({ migration_version: state.version, migration_count: state.count, migrated_at: knex.fn.now() });
}

/** Whether the registry says a tenant has applied exactly the files of the tree. */
export function isUpToDate(tenant: TenantRecord, names: readonly string[]): boolean {
  return tenant.count === names.length && tenant.version === (names.at(-1) ?? null);
}

/**
 * Marks an org's tenant as deleted (its org is gone in Clerk) without dropping anything; the first
 * mark's time is kept when the deletion is delivered again. Returns whether a tenant was marked.
 *
 * @example
 *   await markTenantDeleted(knex, DEFAULT_REGISTRY, 'org_2abc123def456'); // true, or false when no tenant is registered
 */
export async function markTenantDeleted(knex: Knex, registry: RegistryTable, orgId: string): Promise<boolean> {
  const updated = await knex(registry.table)
    .withSchema(registry.schema)
    .where({ org_id: orgId })
    .update({ deleted_at: knex.raw('coalesce(deleted_at, now())') });
  return updated > 0;
}
