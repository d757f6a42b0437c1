/**
 * Where the master tree and the whole fleet stand, in a fixed number of queries whatever the
 * fleet's size: the master's bookkeeping, the registry, and the tenant-looking schemas. The
 * registry and pg_namespace are compared in the process (two sets), never with a join or anti join
 * whose plan depends on the planner's estimate: on PostgreSQL 15 the orphan query got a one-row
 * estimate for its regex filter and ran as a nested loop, quadratic in the fleet (issue 14).
 *
 * With `verify`, each tenant's own `knex_migrations` is read too, 200 schemas per statement (db/in-chunks.ts).
 */
import path from 'node:path';
import type { Knex } from 'knex';
import { hasCitus } from '../citus/detect.ts';
import { tenantsPerNode } from '../citus/tenants-per-node.ts';
import { readInChunks } from '../db/in-chunks.ts';
import { quoteIdentifier } from '../db/quote.ts';
import { MIGRATIONS_TABLE } from '../migration/bookkeeping.ts';
import { relationExists } from '../db/relation-exists.ts';
import { findEditedFiles, tenantApplied } from '../migration/checksums.ts';
import { directorySource, listMigrationNames } from '../migration/source.ts';
import type { StatusResult } from '../report/results.ts';
import { TENANT_SCHEMA_PATTERN } from '../tenants/naming.ts';
import { inspectRegistry, isUpToDate, refuseForeignTable } from '../tenants/registry.ts';
import { DEFAULT_REGISTRY, registrySql, type RegistryTable } from '../tenants/registry-table.ts';
import { readRoleStatus } from '../roles/role-status.ts';
import { rolesOf, type RolesSettings } from '../roles/settings.ts';

export interface StatusOptions {
  masterDirectory?: string;
  tenantDirectory?: string;
  /** The registry table. Default public.tenants. */
  registry?: RegistryTable;
  /**
   * Also read every tenant's own `knex_migrations` and report the tenants whose registry row
   * disagrees (`tenants.driftedOrgIds`): after a restore, or a schema changed with stock Knex.
   */
  verify?: boolean;
  /** Per-tenant roles: with TENANT_ROLES=on, `missingRoleOrgIds` (and `grantDriftOrgIds` with verify). Default from the environment. */
  roles?: RolesSettings;
}

interface FleetRow {
  orgId: string;
  schema: string;
  version: string | null;
  count: number;
  schemaExists: boolean;
}

/**
 * The fleet at a glance. Without `verify` it reads nothing per tenant: the registry records each
 * tenant's newest migration in the same transaction that applies it.
 *
 * @example
 *   const status = await getStatus(knex, { verify: true });
 *   if (!status.ok) console.log(status.tenants.behindOrgIds, status.tenants.driftedOrgIds);
 */
export async function getStatus(knex: Knex, options: StatusOptions = {}): Promise<StatusResult> {
  const registry = options.registry ?? DEFAULT_REGISTRY;
  const masterNames = listMigrationNames(path.resolve(options.masterDirectory ?? 'migrations/master'));
  const tenantNames = listMigrationNames(path.resolve(options.tenantDirectory ?? 'migrations/tenant'));
  const shape = await inspectRegistry(knex, registry);
  refuseForeignTable(shape, registry);
  const hasRegistry = shape.exists && shape.columns.includes('migration_version');

  const [masterApplied, registered, namespaces, deletedOrgIds, nodes] = await Promise.all([
    readMasterApplied(knex),
    hasRegistry ? readRegistry(knex, registry) : Promise.resolve([]),
    readTenantNamespaces(knex),
    hasRegistry ? readDeletedOrgIds(knex, registry) : Promise.resolve([]),
    // On a Citus coordinator only: where the tenants live.
    hasRegistry ? hasCitus(knex).then((citus) => (citus ? tenantsPerNode(knex, registry) : undefined)) : Promise.resolve(undefined),
  ]);
  const fleet: FleetRow[] = registered.map((row) => ({ ...row, schemaExists: namespaces.has(row.schema) }));
  const drift = options.verify
    ? await readDrift(knex, registry, namespaces, fleet.filter((row) => row.schemaExists))
    : undefined;

  const registeredSchemas = new Set(fleet.map((row) => row.schema));
  const pattern = new RegExp(TENANT_SCHEMA_PATTERN);
  const orphans = [...namespaces.keys()].filter((name) => pattern.test(name) && !registeredSchemas.has(name)).sort();

  const masterDone = new Set(masterApplied);
  const masterFiles = new Set(masterNames);
  const master = {
    applied: masterApplied.length,
    pending: masterNames.filter((name) => !masterDone.has(name)),
    missingFiles: masterApplied.filter((name) => !masterFiles.has(name)),
  };

  const tenantFiles = new Set(tenantNames);
  const live = fleet.filter((row) => row.schemaExists);
  const drifted = drift ? live.filter((row) => drift.has(row.schema)) : [];
  const driftedSet = new Set(drifted);
  // A tenant whose newest migration has no file is drifted, not behind: migrating cannot fix it.
  const missingFile = live.filter((row) => row.version !== null && !tenantFiles.has(row.version) && !driftedSet.has(row));
  const missingFileSet = new Set(missingFile);
  const behind = live.filter((row) => !isUpToDate(row, tenantNames) && !missingFileSet.has(row) && !driftedSet.has(row));
  const counts = new Map<string | null, number>();
  for (const row of live) counts.set(row.version, (counts.get(row.version) ?? 0) + 1);
  const versions = [...counts]
    .map(([version, count]) => ({ version, count }))
    .sort((a, b) => (b.version ?? '').localeCompare(a.version ?? ''));
  const tenantSource = directorySource(path.resolve(options.tenantDirectory ?? 'migrations/tenant'));
  const editedFiles = await findEditedFiles(knex, [
    { tree: 'master', source: directorySource(path.resolve(options.masterDirectory ?? 'migrations/master')) },
    { tree: 'tenant', source: tenantSource },
  ]);
  // Applied in the most-migrated tenant and gone from the tree: deleted or renamed, even when it is
  // not any tenant's newest.
  const tenantMissingFiles = hasRegistry ? (await tenantApplied(registry)(knex)).filter((name) => !tenantFiles.has(name)) : [];
  const tenants = {
    total: fleet.length,
    upToDate: live.length - behind.length - missingFile.length - drifted.length,
    behind: behind.length,
    versions,
    behindOrgIds: behind.map((row) => row.orgId),
    missingFileOrgIds: missingFile.map((row) => row.orgId),
    missingFiles: tenantMissingFiles,
    deletedOrgIds,
    ...(drift ? { driftedOrgIds: drifted.map((row) => row.orgId) } : {}),
  };
  const missingSchemas = fleet.filter((row) => !row.schemaExists).map((row) => row.schema);
  const roles = rolesOf(options).enabled ? await readRoleStatus(knex, live, { verify: Boolean(options.verify) }) : undefined;
  if (roles) Object.assign(tenants, roles);
  const ok =
    (roles?.missingRoleOrgIds.length ?? 0) === 0 &&
    (roles?.grantDriftOrgIds?.length ?? 0) === 0 &&
    editedFiles.length === 0 &&
    master.pending.length === 0 &&
    master.missingFiles.length === 0 &&
    tenants.behind === 0 &&
    tenants.missingFileOrgIds.length === 0 &&
    tenants.missingFiles.length === 0 &&
    drifted.length === 0 &&
    orphans.length === 0 &&
    missingSchemas.length === 0;
  return { master, tenants, orphanSchemas: orphans, missingSchemas, editedFiles, ...(nodes ? { nodes } : {}), ok };
}

async function readMasterApplied(knex: Knex): Promise<string[]> {
  if (!(await relationExists(knex, 'public', 'knex_migrations'))) return []; // never migrated: no bookkeeping table yet
  const { rows } = await knex.raw<{ rows: { name: string }[] }>('select name from public.knex_migrations order by id');
  return rows.map((row) => row.name);
}

async function readRegistry(knex: Knex, registry: RegistryTable): Promise<Omit<FleetRow, 'schemaExists'>[]> {
  const { rows } = await knex.raw<{ rows: Omit<FleetRow, 'schemaExists'>[] }>(
    `select org_id as "orgId", schema_name as "schema", migration_version as "version", migration_count as "count"
       from ${registrySql(registry)} order by org_id`,
  );
  return rows;
}

/**
 * Tenants whose org was deleted in Clerk (marked by the webhook handler), awaiting deprovisioning.
 * A query of its own: a registry made before `deleted_at` existed must still show its fleet.
 */
async function readDeletedOrgIds(knex: Knex, registry: RegistryTable): Promise<string[]> {
  const { rows } = await knex
    .raw<{ rows: { orgId: string }[] }>(`select org_id as "orgId" from ${registrySql(registry)} where deleted_at is not null order by org_id`)
    .catch((error: { code?: string }) => {
      if (error.code === '42P01' || error.code === '42703') return { rows: [] }; // a registry made before the column existed
      throw error;
    });
  return rows.map((row) => row.orgId);
}

/** Every schema whose name could be a tenant's, name → oid (a sequential scan of pg_namespace). */
async function readTenantNamespaces(knex: Knex): Promise<Map<string, string>> {
  const { rows } = await knex.raw<{ rows: { nspname: string; oid: string }[] }>(
    "select nspname, oid::text as oid from pg_namespace where nspname like 'tid\\_%'",
  );
  return new Map(rows.map((row) => [row.nspname, row.oid]));
}

/**
 * The schemas whose own bookkeeping disagrees with their registry row. Each statement reads a
 * chunk's `knex_migrations` (newest name, count) together with the same tenants' registry values,
 * so both come from one snapshot: a tenant migrated while status runs is seen before or after on
 * both sides alike, never as drifted. A schema without `knex_migrations` has applied nothing.
 */
async function readDrift(
  knex: Knex,
  registry: RegistryTable,
  namespaces: ReadonlyMap<string, string>,
  live: readonly FleetRow[],
): Promise<Set<string>> {
  const drifted = new Set<string>();
  if (live.length === 0) return drifted;
  // Which schemas have the table: matched by namespace oid here, not joined in SQL (see the top).
  const { rows: withTable } = await knex.raw<{ rows: { namespace: string }[] }>(
    `select relnamespace::text as namespace from pg_class where relname = ? and relkind = 'r'`,
    [MIGRATIONS_TABLE],
  );
  const hasTable = new Set(withTable.map((row) => row.namespace));
  const readable: string[] = [];
  for (const row of live) {
    if (hasTable.has(namespaces.get(row.schema) ?? '')) readable.push(row.schema);
    else if (row.version !== null || row.count !== 0) drifted.add(row.schema);
  }
  const table = registrySql(registry);
  type Row = { schema: string; version: string | null; count: number; registryVersion: string | null; registryCount: number | null };
  const rows = await readInChunks(knex, readable, async (trx, chunk) => {
    // Each registry value is a lookup by its unique schema_name: no plan to go wrong.
    const sql = chunk
      .map(
        (schema) =>
          `select ?::text as schema, max(name) as version, count(*)::int as count,
                  (select migration_version from ${table} where schema_name = ?) as "registryVersion",
                  (select migration_count from ${table} where schema_name = ?) as "registryCount"
             from ${quoteIdentifier(schema)}.${quoteIdentifier(MIGRATIONS_TABLE)}`,
      )
      .join('\nunion all\n');
    return (await trx.raw<{ rows: Row[] }>(sql, chunk.flatMap((schema) => [schema, schema, schema]))).rows;
  });
  for (const row of rows) {
    // A row gone from the registry meanwhile (the org was deleted) is not drift.
    if (row.registryCount === null) continue;
    if (row.version !== row.registryVersion || row.count !== row.registryCount) drifted.add(row.schema);
  }
  return drifted;
}
