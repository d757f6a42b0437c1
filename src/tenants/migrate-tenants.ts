import path from 'node:path';
import type { Knex } from 'knex';
import { runFleet } from '../fleet/run-fleet.ts';
import { expectApplied, type Expectation } from '../migration/replay-script.ts';
import { runSchema } from '../migration/run-schema.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import { summarize, type FleetResult, type TenantResult } from '../report/results.ts';
import { collectWarnings, concurrencyOf, fastPathOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { isUpToDate, recordTenantState, type TenantRecord } from './registry.ts';
import { selectTenants } from './select-tenants.ts';

/**
 * Applies pending tenant migrations to every registered tenant (or those of `options.tenants`).
 * Each tenant's pending migrations run in one transaction under its own advisory lock. Tenants the
 * registry shows as current are not opened at all, so a run with nothing pending costs one query.
 *
 * @example
 *   const result = await migrateTenants(knex, { directory: 'migrations/tenant', concurrency: 8 });
 *   if (!result.ok) console.error(result.tenants.filter((t) => t.status === 'failed'));
 */
export async function migrateTenants(knex: Knex, options: TenantCommandOptions = {}): Promise<FleetResult> {
  const started = performance.now();
  const source = directorySource(path.resolve(tenantDirectoryOf(options)));
  const tenants = await selectTenants(knex, options.tenants);
  const behind = tenants.filter((tenant) => !isUpToDate(tenant, source.names));
  const { warnings, warn } = collectWarnings(options);
  options.onStart?.(tenants.length);

  const current: TenantResult[] = tenants
    .filter((tenant) => isUpToDate(tenant, source.names))
    .map((tenant) => ({ orgId: tenant.orgId, schema: tenant.schema, status: 'up-to-date', migrations: [], ms: 0 }));
  for (const result of current) options.onTenantDone?.(result);

  const ran = await runFleet(behind, (tenant) => migrateTenant(knex, source, tenant, { onWarning: warn, replay: fastPathOf(options) }), {
    concurrency: concurrencyOf(options),
    continueOnError: options.continueOnError,
    onTenantDone: options.onTenantDone,
  });
  return fleetResult('migrate:tenants', tenants, [...current, ...ran], started, warnings);
}

/** Brings one registered tenant to the newest migration. */
export async function migrateTenant(
  knex: Knex,
  source: MigrationSource,
  tenant: TenantRecord,
  { onWarning, replay = true }: { onWarning?(message: string): void; replay?: boolean } = {},
) {
  const { plan } = await runSchema(knex, {
    schema: tenant.schema,
    source,
    direction: 'up',
    hasBookkeeping: true, // provisioning created it
    expect: expectationOf(tenant, source),
    recorded: tenant,
    finish: recordTenantState(tenant.schema),
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
