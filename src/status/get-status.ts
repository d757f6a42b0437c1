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

  // Without --verify or roles nothing needs a row per tenant: the server counts and lists (readFleetSummary).
  const perTenant = Boolean(options.verify) || rolesOf(options).enabled;
  const [masterApplied, picture, deletedOrgIds, nodes] = await Promise.all([
    readMasterApplied(knex),
    perTenant ? fleetPictureFromRows(knex, registry, hasRegistry, tenantNames, Boolean(options.verify)) : readFleetSummary(knex, hasRegistry ? registry : undefined, tenantNames),
    hasRegistry ? readDeletedOrgIds(knex, registry) : Promise.resolve([]),
    // On a Citus coordinator only: where the tenants live.
    hasRegistry ? hasCitus(knex).then((citus) => (citus ? tenantsPerNode(knex, registry) : undefined)) : Promise.resolve(undefined),
  ]);
  const { orphans, driftedOrgIds: drifted } = picture;

  const masterDone = new Set(masterApplied);
  const masterFiles = new Set(masterNames);
  const master = {
    applied: masterApplied.length,
    pending: masterNames.filter((name) => !masterDone.has(name)),
    missingFiles: masterApplied.filter((name) => !masterFiles.has(name)),
  };

  const tenantFiles = new Set(tenantNames);
  const tenantSource = directorySource(path.resolve(options.tenantDirectory ?? 'migrations/tenant'));
  const editedFiles = await findEditedFiles(knex, [
    { tree: 'master', source: directorySource(path.resolve(options.masterDirectory ?? 'migrations/master')) },
    { tree: 'tenant', source: tenantSource },
  ]);
  // Applied in the most-migrated tenant and gone from the tree: deleted or renamed, even when it is
  // not any tenant's newest.
  const tenantMissingFiles = hasRegistry ? (await tenantApplied(registry)(knex)).filter((name) => !tenantFiles.has(name)) : [];
  const tenants = {
    total: picture.total,
    upToDate: picture.liveCount - picture.behindOrgIds.length - picture.missingFileOrgIds.length - (drifted?.length ?? 0),
    behind: picture.behindOrgIds.length,
    versions: picture.versions,
    behindOrgIds: picture.behindOrgIds,
    missingFileOrgIds: picture.missingFileOrgIds,
    missingFiles: tenantMissingFiles,
    deletedOrgIds,
    ...(drifted ? { driftedOrgIds: drifted } : {}),
  };
  const missingSchemas = picture.missingSchemas;
  const roles = rolesOf(options).enabled && picture.liveRows ? await readRoleStatus(knex, picture.liveRows, { verify: Boolean(options.verify) }) : undefined;
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
    (drifted?.length ?? 0) === 0 &&
    orphans.length === 0 &&
    missingSchemas.length === 0;
  return { master, tenants, orphanSchemas: orphans, missingSchemas, editedFiles, ...(nodes ? { nodes } : {}), ok };
}

/** The fleet as status reports it: counts and the lists the contract names. */
export interface FleetPicture {
  total: number;
  /** Registered tenants whose schema exists. */
  liveCount: number;
  /** Those tenants row by row: only from {@link fleetPictureFromRows} (roles need them). */
  liveRows?: FleetRow[];
  versions: { version: string | null; count: number }[];
  behindOrgIds: string[];
  missingFileOrgIds: string[];
  /** Schemas of registry rows whose schema does not exist, in org id order. */
  missingSchemas: string[];
  /** `tid_…` schemas with no registry row, sorted. */
  orphans: string[];
  /** With verify only. */
  driftedOrgIds?: string[];
}

/** Newest applied migration → tenants there, newest first (ties: first seen in org id order). */
function sortVersions(counts: Iterable<[string | null, number]>): { version: string | null; count: number }[] {
  return [...counts].map(([version, count]) => ({ version, count })).sort((a, b) => (b.version ?? '').localeCompare(a.version ?? ''));
}

/**
 * Every registry row and every tenant-looking schema read into the process and compared there:
 * what `--verify` (each live tenant's own bookkeeping) and roles (each live tenant's role) need.
 */
export async function fleetPictureFromRows(knex: Knex, registry: RegistryTable, hasRegistry: boolean, tenantNames: readonly string[], verify: boolean): Promise<FleetPicture> {
  const [registered, namespaces] = await Promise.all([hasRegistry ? readRegistry(knex, registry) : Promise.resolve([]), readTenantNamespaces(knex)]);
  const fleet: FleetRow[] = registered.map((row) => ({ ...row, schemaExists: namespaces.has(row.schema) }));
  const live = fleet.filter((row) => row.schemaExists);
  const drift = verify ? await readDrift(knex, registry, namespaces, live) : undefined;
  const registeredSchemas = new Set(fleet.map((row) => row.schema));
  const pattern = new RegExp(TENANT_SCHEMA_PATTERN);
  const orphans = [...namespaces.keys()].filter((name) => pattern.test(name) && !registeredSchemas.has(name)).sort();
  const tenantFiles = new Set(tenantNames);
  const drifted = drift ? live.filter((row) => drift.has(row.schema)) : [];
  const driftedSet = new Set(drifted);
  // A tenant whose newest migration has no file is drifted, not behind: migrating cannot fix it.
  const missingFile = live.filter((row) => row.version !== null && !tenantFiles.has(row.version) && !driftedSet.has(row));
  const missingFileSet = new Set(missingFile);
  const behind = live.filter((row) => !isUpToDate(row, tenantNames) && !missingFileSet.has(row) && !driftedSet.has(row));
  const counts = new Map<string | null, number>();
  for (const row of live) counts.set(row.version, (counts.get(row.version) ?? 0) + 1);
  return {
    total: fleet.length,
    liveCount: live.length,
    liveRows: live,
    versions: sortVersions(counts),
    behindOrgIds: behind.map((row) => row.orgId),
    missingFileOrgIds: missingFile.map((row) => row.orgId),
    missingSchemas: fleet.filter((row) => !row.schemaExists).map((row) => row.schema),
    orphans,
    ...(drift ? { driftedOrgIds: drifted.map((row) => row.orgId) } : {}),
  };
}

/**
 * The same picture counted and listed by the server, in one statement: a row per newest version
 * (counts), plus a row per tenant the contract lists (behind, on a missing file, without its schema)
 * and per orphan schema — a handful of rows when the fleet is up to date, whatever its size. At
 * 100,000 tenants reading every registry row and schema name into the process took seconds and
 * ~100 MB of client memory. Registry and schemas meet in one hash full join (nested loops off for
 * it: a nested loop planned from a one-row estimate went quadratic, issue 14). A registry row's
 * schema counts as there only when it is a `tid_…` schema, as in {@link fleetPictureFromRows}.
 */
export async function readFleetSummary(knex: Knex, registry: RegistryTable | undefined, tenantNames: readonly string[]): Promise<FleetPicture> {
  if (!registry) {
    const { rows } = await knex.raw<{ rows: { name: string }[] }>("select nspname as name from pg_namespace where nspname like 'tid\\_%' and nspname ~ ?", [TENANT_SCHEMA_PATTERN]);
    return { total: 0, liveCount: 0, versions: [], behindOrgIds: [], missingFileOrgIds: [], missingSchemas: [], orphans: rows.map((row) => row.name).sort() };
  }
  // part 0: a (newest version, schema there) group; 1: a listed tenant (kind b = behind, f = newest
  // migration has no file, s = no schema; id its org id, or its schema for s); 2: an orphan schema.
  type Row = { part: 0 | 1 | 2; id: string | null; live: boolean; tenants: number; kind: 'b' | 'f' | 's' | null };
  const { rows } = await knex.transaction(
    async (trx) => {
      await trx.raw('set local enable_nestloop = off');
      return trx.raw<{ rows: Row[] }>(
        `with files as (select value as name from jsonb_array_elements_text(?::jsonb)),
         fleet as materialized (
           select r.org_id, r.schema_name, r.migration_version, r.migration_count, n.nspname
             from ${registrySql(registry)} r
             full join (select nspname from pg_catalog.pg_namespace where nspname like 'tid\\_%') n on n.nspname = r.schema_name
         )
         select 0 as part, min(org_id) as sort, migration_version as id, nspname is not null as live, count(*)::int as tenants, null as kind
           from fleet where org_id is not null group by migration_version, nspname is not null
         union all
         select 1, org_id, case when nspname is null then schema_name else org_id end, nspname is not null, 1,
                case when nspname is null then 's'
                     when migration_version is not null and migration_version not in (select name from files) then 'f'
                     else 'b' end
           from fleet
          where org_id is not null and (nspname is null or not coalesce(migration_count = ? and migration_version is not distinct from ?::text, false))
         union all
         select 2, null, nspname, true, 0, null from fleet where org_id is null and nspname ~ ?
         order by part, sort`,
        [JSON.stringify(tenantNames), tenantNames.length, tenantNames.at(-1) ?? null, TENANT_SCHEMA_PATTERN],
      );
    },
    { readOnly: true },
  );
  const counts = new Map<string | null, number>();
  const picture: FleetPicture = { total: 0, liveCount: 0, versions: [], behindOrgIds: [], missingFileOrgIds: [], missingSchemas: [], orphans: [] };
  const lists = { b: picture.behindOrgIds, f: picture.missingFileOrgIds, s: picture.missingSchemas };
  for (const row of rows) {
    if (row.part === 2) picture.orphans.push(row.id!);
    else if (row.part === 1) lists[row.kind!].push(row.id!);
    else {
      picture.total += row.tenants;
      if (!row.live) continue;
      picture.liveCount += row.tenants;
      counts.set(row.id, (counts.get(row.id) ?? 0) + row.tenants);
    }
  }
  picture.versions = sortVersions(counts);
  picture.orphans.sort();
  return picture;
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
