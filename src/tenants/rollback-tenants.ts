import path from 'node:path';
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { runFleet } from '../fleet/run-fleet.ts';
import type { UndoRule } from '../migration/plan.ts';
import { runSchema } from '../migration/run-schema.ts';
import { checkTree, tenantApplied } from '../migration/checksums.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import { undoTarget } from '../migration/undo-target.ts';
import type { FleetResult } from '../report/results.ts';
import { fleetResult } from './migrate-tenants.ts';
import { collectWarnings, fleetConcurrency, fleetLiveOf, registryOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { recordTenantState } from './registry.ts';
import { newestHeldRelease, retireReleaseIfUndone, settleRollback, type Release } from './releases.ts';
import { selectTenants } from './select-tenants.ts';
import type { RegistryTable } from './registry-table.ts';
import { fleetRoles } from '../roles/fleet-roles.ts';

export { ROLLBACK_RULE } from './rollback-rule.ts';

export interface RollbackOptions extends TenantCommandOptions {
  /** Undo every tenant migration. */
  all?: boolean;
  /** Undo everything applied after this migration (a file of the tree), so it ends as the newest. */
  to?: string;
}

/**
 * What a rollback undoes: every migration (`all`), those after `to`, or else the newest release that
 * one of `schemas` still holds (undefined when none holds one: nothing to undo), with that release.
 */
export async function rollbackRuleOf(
  knex: Knex,
  registry: RegistryTable,
  source: MigrationSource,
  schemas: readonly string[],
  options: { all?: boolean; to?: string },
): Promise<{ rule: UndoRule; release: Release | undefined }> {
  if (options.all && options.to !== undefined) {
    throw new UsageError('--all and --to cannot be combined: --all undoes every migration, --to stops at one. Nothing was changed.');
  }
  if (options.all) return { rule: { kind: 'all' }, release: undefined };
  if (options.to !== undefined) return { rule: { kind: 'to', migration: undoTarget(source.names, options.to, 'tenant') }, release: undefined };
  const release = await newestHeldRelease(knex, registry, schemas);
  // None held: every tenant is still opened (and found unchanged), so one whose bookkeeping is gone
  // fails as it fails a rollback that has something to undo — never a silent "unchanged".
  return { rule: release ? { kind: 'names', names: release.migrations, release: release.id } : { kind: 'names', names: [] }, release };
}

/**
 * Undoes a release in every tenant, one transaction per tenant under its lock:
 * - by default the newest release that a tenant of the run still holds, judged from their own
 *   knex_migrations (releases.ts) — in every tenant that holds any of it, including orgs
 *   provisioned since; typed twice, it undoes two releases;
 * - with `to`, everything after that migration;
 * - with `all`, everything.
 * A tenant with nothing to undo is `unchanged` (never `up-to-date`). A plain rollback retires the
 * release in the ledger once no tenant holds it (also after `tenants`); `to` and `all` settle the
 * ledger when every tenant succeeded and no `tenants` filter was given. A failed or interrupted
 * rollback is finished by running it again.
 *
 * @example
 *   await rollbackTenants(knex);                                         // the newest release
 *   await rollbackTenants(knex, { to: '20260101000002_notes.ts' });      // back to that migration
 */
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
  // TENANT_ROLES=on: the preflight refuses (exit 2) before anything is written.
  const roles = await fleetRoles(knex, options, tenants.map((tenant) => tenant.schema));
  const { warnings, warn } = collectWarnings(options);
  // An applied file edited since stops the run here, before anything is written.
  const checksums = await checkTree(knex, 'tenant', source, tenantApplied(registry), warn, 'down');
  const concurrency = fleetConcurrency(knex, options, warn);

  const plain = !options.all && to === undefined;
  const { rule, release } = await rollbackRuleOf(knex, registry, source, tenants.map((tenant) => tenant.schema), { all: options.all, to });
  // The release a plain rollback undid (or null: none held), so the JSON and the text say what was done.
  const said = plain ? { release: release ? { id: release.id, migrations: release.migrations } : null } : {};
  options.onStart?.(tenants.length);
  const results = await runFleet(
    tenants,
    async (tenant) => {
      const role = roles.missing.has(tenant.schema) ? await roles.ensure(tenant.schema) : undefined;
      const { plan } = await runSchema(knex, {
        schema: tenant.schema,
        source,
        direction: 'down',
        undo: rule,
        hasBookkeeping: true, // provisioning created it
        recorded: tenant,
        finish: recordTenantState(registry, tenant.schema),
        grants: roles.grantsOf(tenant.schema),
        onWarning: warn,
      });
      return { status: plan.steps.length > 0 ? 'rolled-back' : 'unchanged', migrations: plan.steps, ...(role ? { role } : {}) };
    },
    { ...live, concurrency, continueOnError: options.continueOnError, onTenantDone: options.onTenantDone },
  );

  if (release) await retireReleaseIfUndone(knex, registry, release);
  else {
    const everyTenant = !options.tenants || options.tenants.length === 0;
    const allSucceeded = results.every((result) => result.status !== 'failed' && result.status !== 'skipped');
    if (everyTenant && allSucceeded) await settleRollback(knex, registry, to !== undefined ? { to } : { all: true });
  }
  await checksums.sync(knex);
  return { ...fleetResult('rollback:tenants', tenants, results, started, warnings), ...said };
}
