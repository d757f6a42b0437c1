import path from 'node:path';
import type { Knex } from 'knex';
import { citusSettingOf, DISTRIBUTE_NEXT_SCHEMA, distributesSchemas } from '../citus/detect.ts';
import { UsageError } from '../errors.ts';
import { seedTenantSchema } from '../seeds/run-seeds.ts';
import { loadSeeds, type Seed } from '../seeds/seed-source.ts';
import { runFleet } from '../fleet/run-fleet.ts';
import { quoteIdentifier } from '../db/quote.ts';
import { bookkeepingDdl } from '../migration/bookkeeping.ts';
import { expectNewSchema } from '../migration/replay-script.ts';
import { runSchema } from '../migration/run-schema.ts';
import { checkTree, tenantApplied } from '../migration/checksums.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import type { FleetResult } from '../report/results.ts';
import { fleetResult } from './migrate-tenants.ts';
import { collisionError, printableOrgId, tenantSchemaName, validateOrgIds } from './naming.ts';
import { collectWarnings, fastPathOf, fleetConcurrency, fleetLiveOf, registryOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { ensureRegistry, insertTenant, insertTenantSql, recordTenantState, type TenantRecord } from './registry.ts';
import { registryName, registrySql, type RegistryTable } from './registry-table.ts';
import { recordRelease } from './releases.ts';
import { fleetRoles, type FleetRoles } from '../roles/fleet-roles.ts';

export interface ProvisionOptions {
  /** Run the tenant seeds in each new org's provisioning transaction. */
  seed?: boolean;
  /** The tenant seeds directory. Default `seeds/tenant`. */
  seedsDirectory?: string;
}

/**
 * Provisions organisations: for each org id, in ONE transaction, creates its schema, applies every
 * tenant migration, writes the bookkeeping and registers it. Idempotent: an org that is already
 * provisioned reports `up-to-date` (or `migrated` when it was brought to the newest migration).
 * Every org id is checked — syntax, hash collisions, leftover schemas — before anything is written.
 *
 * @example
 *   const result = await provisionTenant(knex, ['org_2abc123def456']);
 *   result.tenants[0].status; // 'provisioned'
 */
export async function provisionTenant(
  knex: Knex,
  orgIds: readonly string[],
  options: Omit<TenantCommandOptions, 'tenants'> & ProvisionOptions = {},
): Promise<FleetResult> {
  const started = performance.now();
  const wanted = validateOrgIds(orgIds);
  const live = fleetLiveOf(knex, options);
  const registry = registryOf(options);
  const source = directorySource(path.resolve(tenantDirectoryOf(options)));
  // Loaded before anything is written: a missing directory or a broken seed file changes nothing.
  const seeds = options.seed ? await loadSeeds(path.resolve(options.seedsDirectory ?? 'seeds/tenant')) : undefined;
  // On a Citus coordinator each new schema is made a distributed schema (src/citus/detect.ts).
  const distribute = await distributesSchemas(knex, citusSettingOf(options));
  const tenants = wanted.map((orgId) => ({ orgId, schema: tenantSchemaName(orgId), version: null, count: 0 }));
  // TENANT_ROLES=on: the preflight refuses (exit 2) before anything is written.
  const roles = await fleetRoles(knex, options, tenants.map((tenant) => tenant.schema));
  await ensureRegistry(knex, registry);
  await refuseConflicts(knex, registry, tenants);
  const { warnings, warn } = collectWarnings(options);
  // An applied file edited since stops the run here, before anything is written.
  const checksums = await checkTree(knex, 'tenant', source, tenantApplied(registry), warn);
  const concurrency = fleetConcurrency(knex, options, warn);
  // Provisioning applies the whole tree: files no release covers yet are recorded as one first.
  await recordRelease(knex, registry, source.names);
  options.onStart?.(tenants.length);
  const results = await runFleet(tenants, (tenant) => provisionOne(knex, registry, source, tenant, { onWarning: warn, replay: fastPathOf(options), distribute, seeds, roles }), {
    ...live,
    concurrency,
    continueOnError: options.continueOnError,
    onTenantDone: options.onTenantDone,
  });
  await checksums.sync(knex);
  return fleetResult('provision:tenant', tenants, results, started, warnings);
}

/**
 * Exit 2 before anything is written: a colliding registered org, a schema nobody registered, or a
 * registered org whose schema is gone. (A dry run asks before the registry exists: then every
 * existing schema of these orgs is one nobody registered.)
 */
export async function refuseConflicts(
  knex: Knex,
  registry: RegistryTable,
  tenants: readonly Pick<TenantRecord, 'orgId' | 'schema'>[],
  { registryExists = true }: { registryExists?: boolean } = {},
): Promise<void> {
  // One statement, so one snapshot: read separately, a concurrent call for the same org could
  // commit in between and its new schema would look unregistered (an "orphan").
  const owners = registryExists ? `left join ${registrySql(registry)} t on t.schema_name = s.schema` : 'left join (select null::text as org_id) t on false';
  const { rows } = await knex.raw<{ rows: { schema: string; owner: string | null; schemaExists: boolean }[] }>(
    `select s.schema, t.org_id as owner, exists (select 1 from pg_namespace n where n.nspname = s.schema) as "schemaExists"
       from unnest(?::text[]) as s(schema) ${owners}`,
    [tenants.map((tenant) => tenant.schema)],
  );
  const registered = new Map(rows.filter((row) => row.owner !== null).map((row) => [row.schema, row.owner!]));
  const existing = new Set(rows.filter((row) => row.schemaExists).map((row) => row.schema));
  for (const tenant of tenants) {
    const owner = registered.get(tenant.schema);
    if (owner !== undefined && owner !== tenant.orgId) throw collisionError(tenant.orgId, owner, tenant.schema);
  }
  const orphans = [...existing].filter((schema) => !registered.has(schema));
  if (orphans.length > 0) throw orphanError(orphans);
  const missing = tenants.filter((tenant) => registered.has(tenant.schema) && !existing.has(tenant.schema));
  if (missing.length > 0) throw missingSchemaError(registry, missing);
}

function orphanError(schemas: readonly string[]): UsageError {
  return new UsageError(
    `Schema ${schemas.join(', ')} already exists but no tenant is registered for it (left over from a manual change or a restore?). ` +
      `Inspect it, then drop it (DROP SCHEMA … CASCADE) before provisioning. Nothing was changed.`,
  );
}

function missingSchemaError(registry: RegistryTable, tenants: readonly Pick<TenantRecord, 'orgId' | 'schema'>[]): UsageError {
  const which = tenants.map((tenant) => `${printableOrgId(tenant.orgId)} (${tenant.schema})`).join(', ');
  return new UsageError(
    `${which}: registered, but the schema is missing (status lists it under missing schemas). Restore the schema from a backup, ` +
      `or delete the registry row (DELETE FROM ${registryName(registry)} WHERE schema_name = '…') to provision the org anew. Nothing was changed.`,
  );
}

async function provisionOne(
  knex: Knex,
  registry: RegistryTable,
  source: MigrationSource,
  tenant: TenantRecord,
  { onWarning, replay, distribute, seeds, roles }: { onWarning(message: string): void; replay: boolean; distribute: boolean; seeds?: readonly Seed[]; roles: FleetRoles },
) {
  let created = false;
  // The role and its memberships commit first, in a short transaction of their own (tenant-role.ts).
  const role = await roles.ensure(tenant.schema);
  const createSchema = distribute ? [DISTRIBUTE_NEXT_SCHEMA] : [];
  const { plan, via } = await runSchema(knex, {
    schema: tenant.schema,
    source,
    direction: 'up',
    onWarning,
    replay,
    // The usual case, a new org: one round trip once the tree's DDL is known. If the schema exists
    // after all (a concurrent call, an orphan), the prepare below runs instead and sorts it out.
    expect: expectNewSchema(tenant.schema, [
      insertTenantSql(registry, tenant.orgId, tenant.schema),
      ...createSchema,
      `create schema ${quoteIdentifier(tenant.schema)}`,
      bookkeepingDdl(knex, tenant.schema),
    ]),
    // Under the schema's advisory lock: concurrent calls for one org serialise here, and the later
    // ones find the registry row and only catch up on migrations.
    prepare: async (trx) => {
      const { rows } = await trx.raw<{ rows: { owner: string | null; schemaExists: boolean }[] }>(
        `select (select org_id from ${registrySql(registry)} where schema_name = ?) as owner,
                exists (select 1 from pg_namespace where nspname = ?) as "schemaExists"`,
        [tenant.schema, tenant.schema],
      );
      const { owner, schemaExists } = rows[0]!;
      created = false;
      if (owner !== null) {
        if (owner !== tenant.orgId) throw collisionError(tenant.orgId, owner, tenant.schema);
        if (!schemaExists) throw missingSchemaError(registry, [tenant]); // dropped since the check above
        return;
      }
      if (schemaExists) throw orphanError([tenant.schema]);
      await insertTenant(trx, registry, tenant.orgId, tenant.schema);
      // DDL is held back and sent with the bookkeeping tables and the first migration's DDL.
      for (const statement of createSchema) await trx.raw(statement);
      await trx.raw('create schema ??', [tenant.schema]);
      created = true;
    },
    finish: recordTenantState(registry, tenant.schema),
    grants: roles.grantsOf(tenant.schema),
    // A new org's seeds, in the transaction that creates it (an org provisioned before is not reseeded).
    complete: seeds
      ? async (trx) => {
          if (created) await seedTenantSchema(trx, tenant.schema, seeds);
        }
      : undefined,
  });
  const status = created || via === 'replay' ? 'provisioned' : plan.steps.length > 0 ? 'migrated' : 'up-to-date';
  return { status, migrations: plan.steps, ...(role ? { role } : {}) } as const;
}
