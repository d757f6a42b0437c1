import path from 'node:path';
import type { Knex } from 'knex';
import { runFleet } from '../fleet/run-fleet.ts';
import { splitIntoWaves, type WaveSpec } from '../fleet/waves.ts';
import { UsageError } from '../errors.ts';
import { expectApplied, type Expectation } from '../migration/replay-script.ts';
import { checkTree, tenantApplied } from '../migration/checksums.ts';
import { runSchema } from '../migration/run-schema.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import { summarize, type FleetResult, type TenantResult, type WaveSummary } from '../report/results.ts';
import { collectWarnings, fastPathOf, fleetConcurrency, fleetLiveOf, registryOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { isUpToDate, recordTenantState, type TenantRecord } from './registry.ts';
import type { RegistryTable } from './registry-table.ts';
import { recordRelease } from './releases.ts';
import { selectTenants } from './select-tenants.ts';
import { dropTenantRoles, fleetRoles, type FleetRoles } from '../roles/fleet-roles.ts';

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
export async function migrateTenants(knex: Knex, options: MigrateTenantsOptions = {}): Promise<FleetResult> {
  const started = performance.now();
  const live = fleetLiveOf(knex, options);
  const registry = registryOf(options);
  const source = directorySource(path.resolve(tenantDirectoryOf(options)));
  const tenants = await selectTenants(knex, options.tenants, registry);
  const waves = await wavesOf(knex, tenants, source.names, options);
  // TENANT_ROLES=on: the preflight refuses (exit 2) before anything is written.
  const roles = await fleetRoles(knex, options, tenants.map((tenant) => tenant.schema));
  const { warnings, warn } = collectWarnings(options);
  // An applied file edited since stops the run here, before anything is written.
  const checksums = await checkTree(knex, 'tenant', source, tenantApplied(registry), warn);
  const concurrency = fleetConcurrency(knex, options, warn);
  await recordRelease(knex, registry, source.names);
  const verify = Boolean(options.verify) || (options.tenants?.length ?? 0) > 0;
  // TENANT_ROLES=off: tenant roles left from when it was on are dropped (reported per tenant).
  const dropped = await dropTenantRoles(knex, options);
  options.onStart?.(tenants.length);

  const migrateOne = (tenant: TenantRecord) => migrateTenant(knex, source, tenant, { onWarning: warn, registry, replay: fastPathOf(options), roles });
  // A tenant without its role (roles just turned on) is opened even when up to date: it gets both now.
  const current = (tenant: TenantRecord) => isUpToDate(tenant, source.names) && !roles.missing.has(tenant.schema);
  const results: TenantResult[] = [];
  let failedWave: number | undefined;
  let openedCount = 0;
  for (const [index, wave] of waves.entries()) {
    const number = index + 1;
    const tag = (result: TenantResult): TenantResult => (waves.length > 1 ? { ...result, wave: number } : result);
    if (failedWave !== undefined) {
      // A failure in an earlier wave stops the rollout: this wave's tenants are not touched.
      for (const tenant of wave) {
        const skipped = tag({ orgId: tenant.orgId, schema: tenant.schema, status: 'skipped', migrations: [], ms: 0 });
        options.onTenantDone?.(skipped);
        results.push(skipped);
      }
      continue;
    }
    if (index > 0 && options.pauseMs) {
      options.onWave?.({ kind: 'pause', wave: number, waves: waves.length, seconds: options.pauseMs / 1000 });
      await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
    if (waves.length > 1) options.onWave?.({ kind: 'start', wave: number, waves: waves.length, tenants: wave.length });
    for (const tenant of verify ? [] : wave.filter(current)) {
      const result = tag({ orgId: tenant.orgId, schema: tenant.schema, status: 'up-to-date', migrations: [], ms: 0 });
      options.onTenantDone?.(result);
      results.push(result);
    }
    const opened = verify ? wave : wave.filter((tenant) => !current(tenant));
    openedCount += opened.length;
    // Continue-on-error holds within a wave, never across waves.
    const ran = await runFleet(opened, migrateOne, {
      ...live,
      concurrency,
      continueOnError: options.continueOnError,
      onTenantDone: (result) => options.onTenantDone?.(tag(result)),
    });
    results.push(...ran.map(tag));
    if (ran.some((result) => result.status === 'failed')) failedWave = number;
  }
  // The no-op (every tenant current): no schema opened, so the tree's applied files are as read before.
  await checksums.sync(knex, { untouched: openedCount === 0 });
  const result = fleetResult('migrate:tenants', tenants, results.map((r) => (dropped.has(r.schema) ? { ...r, role: 'dropped' as const } : r)), started, warnings);
  return waves.length > 1 ? { ...result, waves: waveSummaries(results, waves.length) } : result;
}

/** `migrateTenants` options: the fleet options, `verify`, and canary waves. */
export interface MigrateTenantsOptions extends TenantCommandOptions {
  /**
   * Canary waves (src/fleet/waves.ts): cumulative targets, e.g. `parseWaves('1,10%,100%')`. A
   * failure in a wave skips every later wave. Default: one wave, the whole fleet.
   */
  waves?: readonly WaveSpec[];
  /** Org ids that make up wave 1 exactly (each must be registered); `waves` then cut the rest. */
  canaryTenants?: readonly string[];
  /** Wait this long between waves (not after the last). */
  pauseMs?: number;
  /** Progress: a wave starts, or the run pauses before one. */
  onWave?(event: WaveEvent): void;
}

export type WaveEvent = { kind: 'start'; wave: number; waves: number; tenants: number } | { kind: 'pause'; wave: number; waves: number; seconds: number };

/**
 * The fleet cut into waves — one wave when no wave option was given. Tenants with something pending
 * (as the registry says) come first, each part in schema-name order: a canary that is already up to
 * date (a new org, a re-run after a partial rollout) would test nothing.
 */
export async function wavesOf(knex: Knex, tenants: readonly TenantRecord[], names: readonly string[], options: MigrateTenantsOptions): Promise<TenantRecord[][]> {
  const named = options.canaryTenants ?? [];
  if (!options.waves?.length && named.length === 0) return [[...tenants]];
  if (named.length > 0) {
    await selectTenants(knex, named, registryOf(options)); // exit 2 for an org that is not registered
    const selected = new Set(tenants.map((tenant) => tenant.orgId));
    const outside = named.filter((orgId) => !selected.has(orgId));
    if (outside.length > 0) throw new UsageError(`--canary-tenants ${outside.join(', ')}: not among the tenants this run works on (--tenant). Nothing was changed.`);
  }
  const bySchema = [...tenants].sort((a, b) => (a.schema < b.schema ? -1 : a.schema > b.schema ? 1 : 0));
  const pendingFirst = [...bySchema.filter((tenant) => !isUpToDate(tenant, names)), ...bySchema.filter((tenant) => isUpToDate(tenant, names))];
  return splitIntoWaves(pendingFirst, options.waves ?? [], named);
}

function waveSummaries(results: readonly TenantResult[], count: number): WaveSummary[] {
  return Array.from({ length: count }, (_, index) => {
    const inWave = results.filter((result) => result.wave === index + 1);
    const counted = (status: TenantResult['status']) => inWave.filter((result) => result.status === status).length;
    return { wave: index + 1, tenants: inWave.length, migrated: counted('migrated'), upToDate: counted('up-to-date'), failed: counted('failed'), skipped: counted('skipped') };
  });
}

/**
 * Brings one registered tenant to the newest migration, from what its own `knex_migrations` says
 * (read under its lock); the registry row is corrected in the same transaction.
 */
export async function migrateTenant(
  knex: Knex,
  source: MigrationSource,
  tenant: TenantRecord,
  { onWarning, registry, replay = true, roles }: { onWarning?(message: string): void; registry?: RegistryTable; replay?: boolean; roles?: FleetRoles } = {},
) {
  // The role and its memberships commit first, in a short transaction of their own (tenant-role.ts).
  const role = roles?.missing.has(tenant.schema) ? await roles.ensure(tenant.schema) : undefined;
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
    grants: roles?.grantsOf(tenant.schema),
    onWarning,
    replay,
  });
  return { status: plan.steps.length > 0 ? ('migrated' as const) : ('up-to-date' as const), migrations: plan.steps, ...(role ? { role } : {}) };
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
  // Usually already in registry order (a run where every tenant was up to date): no map of the fleet then.
  const inOrder = results.length === tenants.length && tenants.every((tenant, i) => results[i]!.orgId === tenant.orgId);
  const byOrg = inOrder ? undefined : new Map(results.map((result) => [result.orgId, result]));
  const ordered = byOrg ? tenants.map((tenant) => byOrg.get(tenant.orgId)!) : [...results];
  const summary = summarize(ordered, Math.round(performance.now() - started));
  return {
    command,
    ok: !ordered.some((result) => result.status === 'failed'),
    summary,
    tenants: ordered,
    ...(warnings.length > 0 ? { warnings: [...warnings] } : {}),
  };
}
