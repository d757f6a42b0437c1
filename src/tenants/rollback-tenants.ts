import path from 'node:path';
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { runFleet } from '../fleet/run-fleet.ts';
import type { UndoRule } from '../migration/plan.ts';
import { runSchema } from '../migration/run-schema.ts';
import { checkTree, tenantApplied } from '../migration/checksums.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import { undoTarget } from '../migration/undo-target.ts';
import type { FleetResult, TenantResult } from '../report/results.ts';
import { fleetResult } from './migrate-tenants.ts';
import { collectWarnings, fleetConcurrency, fleetLiveOf, registryOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { recordTenantState } from './registry.ts';
import { newestRelease, settleRollback, type Release } from './releases.ts';
import { selectTenants } from './select-tenants.ts';
import type { RegistryTable } from './registry-table.ts';

export { ROLLBACK_RULE } from './rollback-rule.ts';

export interface RollbackOptions extends TenantCommandOptions {
  /** Undo every tenant migration. */
  all?: boolean;
  /** Undo everything applied after this migration (a file of the tree), so it ends as the newest. */
  to?: string;
}

/**
 * Undoes a release in every tenant, one transaction per tenant:
 * - by default the newest release recorded in the ledger (releases.ts) — in every tenant that has
 *   any of its migrations, including orgs provisioned since; a tenant with none is `up-to-date`;
 * - with `to`, everything after that migration (tenants already at or before it are untouched);
 * - with `all`, everything.
 * The ledger is updated only when every tenant succeeded (and no `tenants` filter was given), so a
 * failed or interrupted rollback is finished by running it again.
 *
 * @example
 *   await rollbackTenants(knex);                                         // the newest release
 *   await rollbackTenants(knex, { to: '20260101000002_notes.ts' });      // back to that migration
 */
/**
 * What a rollback undoes: every migration (`all`), those after `to`, or else the newest release
 * (undefined when no release is recorded: nothing to undo).
 */
export async function rollbackRuleOf(knex: Knex, registry: RegistryTable, source: MigrationSource, options: { all?: boolean; to?: string }): Promise<UndoRule | undefined> {
  if (options.all && options.to !== undefined) {
    throw new UsageError('--all and --to cannot be combined: --all undoes every migration, --to stops at one. Nothing was changed.');
  }
  const to = options.to === undefined ? undefined : undoTarget(source.names, options.to, 'tenant');
  return ruleOf(options.all, to, options.all || to !== undefined ? undefined : await newestRelease(knex, registry));
}

function ruleOf(all: boolean | undefined, to: string | undefined, release: Release | undefined): UndoRule | undefined {
  if (all) return { kind: 'all' };
  if (to !== undefined) return { kind: 'to', migration: to };
  return release ? { kind: 'names', names: release.migrations } : undefined;
}

export async function rollbackTenants(knex: Knex, options: RollbackOptions = {}): Promise<FleetResult> {
  const started = performance.now();
  const live = fleetLiveOf(knex, options);
  const registry = registryOf(options);
  const source = directorySource(path.resolve(tenantDirectoryOf(options)));
  if (options.all && options.to !== undefined) {
    throw new UsageError('--all and --to cannot be combined: --all undoes every migration, --to stops at one. Nothing was changed.');
  }
  const to = options.to === undefined ? undefined : undoTarget(source.names, options.to, 'tenant');
  const tenants = await selectTenants(knex, options.tenants, registry);
  const { warnings, warn } = collectWarnings(options);
  // An applied file edited since stops the run here, before anything is written.
  const checksums = await checkTree(knex, 'tenant', source, tenantApplied(registry), warn, 'down');
  const concurrency = fleetConcurrency(knex, options, warn);

  const release = options.all || to !== undefined ? undefined : await newestRelease(knex, registry);
  const rule = ruleOf(options.all, to, release);
  if (!rule) {
    warn(
      'no release is recorded to roll back (only the baseline every tenant was provisioned with): nothing was undone. ' +
        'To undo older migrations, name the one to go back to: rollback:tenants --to <migration>.',
    );
    options.onStart?.(tenants.length);
    const untouched = tenants.map((tenant): TenantResult => ({ orgId: tenant.orgId, schema: tenant.schema, status: 'up-to-date', migrations: [], ms: 0 }));
    for (const result of untouched) options.onTenantDone?.(result);
    return fleetResult('rollback:tenants', tenants, untouched, started, warnings);
  }

  options.onStart?.(tenants.length);
  const results = await runFleet(
    tenants,
    async (tenant) => {
      const { plan } = await runSchema(knex, {
        schema: tenant.schema,
        source,
        direction: 'down',
        undo: rule,
        hasBookkeeping: true, // provisioning created it
        recorded: tenant,
        finish: recordTenantState(registry, tenant.schema),
        onWarning: warn,
      });
      return { status: plan.steps.length > 0 ? 'rolled-back' : 'up-to-date', migrations: plan.steps };
    },
    { ...live, concurrency, continueOnError: options.continueOnError, onTenantDone: options.onTenantDone },
  );

  const everyTenant = !options.tenants || options.tenants.length === 0;
  const allSucceeded = results.every((result) => result.status !== 'failed' && result.status !== 'skipped');
  if (everyTenant && allSucceeded) {
    await settleRollback(knex, registry, release ? { release } : to !== undefined ? { to } : { all: true });
  }
  await checksums.sync(knex);
  return fleetResult('rollback:tenants', tenants, results, started, warnings);
}
