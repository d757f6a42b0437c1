import path from 'node:path';
import type { Knex } from 'knex';
import { runFleet } from '../fleet/run-fleet.ts';
import { expectApplied, type Expectation } from '../migration/replay-script.ts';
import { runSchema } from '../migration/run-schema.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import { summarize, type FleetResult, type TenantResult } from '../report/results.ts';
import { collectWarnings, fastPathOf, fleetConcurrency, registryOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { isUpToDate, recordTenantState, type TenantRecord } from './registry.ts';
import type { RegistryTable } from './registry-table.ts';
import { recordRelease } from './releases.ts';
import { selectTenants } from './select-tenants.ts';

/**
 * Applies pending tenant migrations to every registered tenant (or those of `options.tenants`).
 * Each tenant's pending migrations run in one transaction under its own advisory lock. Tenants the
 * registry shows as current are not opened at all, so a run with nothing pending costs a few
 * queries whatever the fleet's size. With `verify`, and for tenants named in `tenants`, every tenant
 * is opened instead: its own `knex_migrations` is read under its lock and the registry corrected (a
 * schema restored from an older backup is behind what the registry says).
 *
 * Before any tenant is touched, the files no release covers yet are recorded as a new release
 * (releases.ts), which is what a plain `rollbackTenants` undoes.
 *
 * @example
 *   const result = await migrateTenants(knex, { directory: 'migrations/tenant', concurrency: 8 });
 *   if (!result.ok) console.error(result.tenants.filter((t) => t.status === 'failed'));
 */
export async function migrateTenants(knex: Knex, options: TenantCommandOptions = {}): Promise<FleetResult> {
  const started = performance.now();
  const registry = registryOf(options);
  const source = directorySource(path.resolve(tenantDirectoryOf(options)));
  const tenants = await selectTenants(knex, options.tenants, registry);
  const { warnings, warn } = collectWarnings(options);
  const concurrency = fleetConcurrency(knex, options, warn);
  await recordRelease(knex, registry, source.names);
  const verify = Boolean(options.verify) || (options.tenants?.length ?? 0) > 0;
  const opened = verify ? tenants : tenants.filter((tenant) => !isUpToDate(tenant, source.names));
  options.onStart?.(tenants.length);

  const current: TenantResult[] = verify
    ? []
    : tenants
        .filter((tenant) => isUpToDate(tenant, source.names))
        .map((tenant) => ({ orgId: tenant.orgId, schema: tenant.schema, status: 'up-to-date', migrations: [], ms: 0 }));
  for (const result of current) options.onTenantDone?.(result);

  const ran = await runFleet(opened, (tenant) => migrateTenant(knex, source, tenant, { onWarning: warn, registry, replay: fastPathOf(options) }), {
    concurrency,
    continueOnError: options.continueOnError,
    onTenantDone: options.onTenantDone,
  });
  return fleetResult('migrate:tenants', tenants, [...current, ...ran], started, warnings);
}

/**
 * Brings one registered tenant to the newest migration, from what its own `knex_migrations` says
 * (read under its lock); the registry row is corrected in the same transaction.
 */
export async function migrateTenant(
  knex: Knex,
  source: MigrationSource,
  tenant: TenantRecord,
  { onWarning, registry, replay = true }: { onWarning?(message: string): void; registry?: RegistryTable; replay?: boolean } = {},
) {
  const { plan } = await runSchema(knex, {
    schema: tenant.schema,
    source,
    direction: 'up',
    hasBookkeeping: true, // provisioning created it
    // Only a tenant the registry shows behind is worth predicting; for one it shows current (a
    // verify run), the ordinary path reads the real state.
    expect: isUpToDate(tenant, source.names) ? undefined : expectationOf(tenant, source),
    recorded: tenant,
    finish: recordTenantState(registry ?? registryOf({}), tenant.schema),
    onWarning,
    replay,
  });
  return { status: plan.steps.length > 0 ? ('migrated' as const) : ('up-to-date' as const), migrations: plan.steps };
}

/**
 * What the registry says a tenant has applied, when that is the first `count` files of the tree
 * (the usual case): the executor may then migrate it in one round trip, after checking it.
 */
function expectationOf(tenant: TenantRecord, source: MigrationSource): Expectation | undefined {
  const applied = source.names.slice(0, tenant.count);
  if (applied.length !== tenant.count || (applied.at(-1) ?? null) !== tenant.version) return undefined;
  return expectApplied(tenant.schema, applied);
}

/** Orders results like the registry (by org id) and adds the summary. */
export function fleetResult(
  command: FleetResult['command'],
  tenants: readonly Pick<TenantRecord, 'orgId'>[],
  results: readonly TenantResult[],
  started: number,
  warnings: readonly string[],
): FleetResult {
  const byOrg = new Map(results.map((result) => [result.orgId, result]));
  const ordered = tenants.map((tenant) => byOrg.get(tenant.orgId)!);
  const summary = summarize(ordered, Math.round(performance.now() - started));
  return {
    command,
    ok: !ordered.some((result) => result.status === 'failed'),
    summary,
    tenants: ordered,
    ...(warnings.length > 0 ? { warnings: [...warnings] } : {}),
  };
}
