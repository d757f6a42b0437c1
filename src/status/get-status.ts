/**
 * Where the master tree and the whole fleet stand, in three queries whatever the fleet's size:
 * the master's bookkeeping, the registry joined with pg_namespace, and the orphan schemas.
 */
import path from 'node:path';
import type { Knex } from 'knex';
import { listMigrationNames } from '../migration/source.ts';
import type { StatusResult } from '../report/results.ts';
import { TENANT_SCHEMA_PATTERN } from '../tenants/naming.ts';
import { isUpToDate } from '../tenants/registry.ts';

export interface StatusOptions {
  masterDirectory?: string;
  tenantDirectory?: string;
}

interface FleetRow {
  orgId: string;
  schema: string;
  version: string | null;
  count: number;
  schemaExists: boolean;
}

/**
 * The fleet at a glance. Reads nothing per tenant: the registry records each tenant's newest
 * migration in the same transaction that applies it.
 *
 * @example
 *   const status = await getStatus(knex);
 *   if (!status.ok) console.log(status.tenants.behindOrgIds);
 */
export async function getStatus(knex: Knex, options: StatusOptions = {}): Promise<StatusResult> {
  const masterNames = listMigrationNames(path.resolve(options.masterDirectory ?? 'migrations/master'));
  const tenantNames = listMigrationNames(path.resolve(options.tenantDirectory ?? 'migrations/tenant'));
  const [masterApplied, fleet, orphans, deletedOrgIds] = await Promise.all([
    readMasterApplied(knex),
    readFleet(knex),
    readOrphans(knex),
    readDeletedOrgIds(knex),
  ]);

  const masterDone = new Set(masterApplied);
  const masterFiles = new Set(masterNames);
  const master = {
    applied: masterApplied.length,
    pending: masterNames.filter((name) => !masterDone.has(name)),
    missingFiles: masterApplied.filter((name) => !masterFiles.has(name)),
  };

  const tenantFiles = new Set(tenantNames);
  const live = fleet.filter((row) => row.schemaExists);
  // A tenant whose newest migration has no file is drifted, not behind: migrating cannot fix it.
  const missingFile = live.filter((row) => row.version !== null && !tenantFiles.has(row.version));
  const behind = live.filter((row) => !isUpToDate(row, tenantNames) && !missingFile.includes(row));
  const counts = new Map<string | null, number>();
  for (const row of live) counts.set(row.version, (counts.get(row.version) ?? 0) + 1);
  const versions = [...counts]
    .map(([version, count]) => ({ version, count }))
    .sort((a, b) => (b.version ?? '').localeCompare(a.version ?? ''));
  const tenants = {
    total: fleet.length,
    upToDate: live.length - behind.length - missingFile.length,
    behind: behind.length,
    versions,
    behindOrgIds: behind.map((row) => row.orgId),
    missingFileOrgIds: missingFile.map((row) => row.orgId),
    deletedOrgIds,
  };
  const missingSchemas = fleet.filter((row) => !row.schemaExists).map((row) => row.schema);
  const ok =
    master.pending.length === 0 &&
    master.missingFiles.length === 0 &&
    tenants.behind === 0 &&
    tenants.missingFileOrgIds.length === 0 &&
    orphans.length === 0 &&
    missingSchemas.length === 0;
  return { master, tenants, orphanSchemas: orphans, missingSchemas, ok };
}

async function readMasterApplied(knex: Knex): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { name: string }[] }>(
    'select name from public.knex_migrations order by id',
  ).catch((error: { code?: string }) => {
    if (error.code === '42P01') return { rows: [] }; // never migrated: no bookkeeping table yet
    throw error;
  });
  return rows.map((row) => row.name);
}

async function readFleet(knex: Knex): Promise<FleetRow[]> {
  const { rows } = await knex
    .raw<{ rows: FleetRow[] }>(
      `select t.org_id as "orgId", t.schema_name as "schema", t.migration_version as "version",
              t.migration_count as "count", n.oid is not null as "schemaExists"
         from public.tenants t left join pg_namespace n on n.nspname = t.schema_name
        order by t.org_id`,
    )
    .catch((error: { code?: string }) => {
      if (error.code === '42P01' || error.code === '42703') return { rows: [] }; // no registry yet
      throw error;
    });
  return rows;
}

/**
 * Tenants whose org was deleted in Clerk (marked by the webhook handler), awaiting deprovisioning.
 * A query of its own: a registry made before `deleted_at` existed must still show its fleet.
 */
async function readDeletedOrgIds(knex: Knex): Promise<string[]> {
  const { rows } = await knex
    .raw<{ rows: { orgId: string }[] }>('select org_id as "orgId" from public.tenants where deleted_at is not null order by org_id')
    .catch((error: { code?: string }) => {
      if (error.code === '42P01' || error.code === '42703') return { rows: [] }; // no registry, or no column yet
      throw error;
    });
  return rows.map((row) => row.orgId);
}

async function readOrphans(knex: Knex): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { nspname: string }[] }>(
    `select nspname from pg_namespace n
      where nspname ~ ? and not exists (select 1 from public.tenants t where t.schema_name = n.nspname)
      order by nspname`,
    [TENANT_SCHEMA_PATTERN],
  ).catch(async (error: { code?: string }) => {
    if (error.code !== '42P01') throw error;
    // No registry yet: every tenant-looking schema is an orphan.
    return knex.raw<{ rows: { nspname: string }[] }>('select nspname from pg_namespace where nspname ~ ? order by nspname', [
      TENANT_SCHEMA_PATTERN,
    ]);
  });
  return rows.map((row) => row.nspname);
}
