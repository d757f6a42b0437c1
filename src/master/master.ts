/**
 * The master tree: shared tables in `public`, one transaction per run, under the same advisory lock
 * scheme as tenants (no Knex lock row), with bookkeeping in `public.knex_migrations` so the stock
 * `knex` CLI agrees with us.
 */
import path from 'node:path';
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { describeError } from '../migration/describe-error.ts';
import type { UndoRule } from '../migration/plan.ts';
import { undoTarget } from '../migration/undo-target.ts';
import { runSchema, StepError, type SchemaRun } from '../migration/run-schema.ts';
import { checkTree, masterApplied } from '../migration/checksums.ts';
import { directorySource } from '../migration/source.ts';
import type { MasterResult } from '../report/results.ts';
import { ensureRegistry } from '../tenants/registry.ts';
import { liveSettingsOf, type LiveOptions } from '../db/lock-settings.ts';
import { describeBlockers, type Blocker } from '../db/blocker-monitor.ts';
import { heldUpOf, withLockRetries } from '../fleet/with-lock-retries.ts';
import type { RetryEvent } from '../fleet/run-fleet.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { ensureGroupRole } from '../roles/tenant-role.ts';
import { preflightRoles } from '../roles/preflight.ts';
import { rolesOf, type RolesSettings } from '../roles/settings.ts';

export interface MasterOptions extends LiveOptions {
  /** While the run waits for a lock: who holds it up. */
  onHeldUp?(blockers: Blocker[]): void;
  /** The run was held up, rolled back, and is tried again after `pauseMs`. */
  onRetry?(event: RetryEvent): void;
  /** The master migrations directory. Defaults to `migrations/master`. */
  directory?: string;
  onWarning?(message: string): void;
  /** The tenant registry (created by migrate:master). Default public.tenants. */
  registry?: RegistryTable;
  /**
   * Per-tenant roles: with TENANT_ROLES=on, migrate:master checks the roles first (exit 2) and
   * creates the group, so master migrations can grant shared tables to it. Default from the environment.
   */
  roles?: RolesSettings;
}

/**
 * Applies pending master migrations to `public`, after making sure the registry exists (the master
 * tree may add columns to it).
 *
 * @example
 *   const result = await migrateMaster(knex, { directory: 'migrations/master' });
 *   result.migrations; // ['20260101000000_enable_vector.ts', …]
 */
export async function migrateMaster(knex: Knex, options: MasterOptions = {}): Promise<MasterResult> {
  const roles = rolesOf(options);
  if (roles.enabled) await ensureGroupRole(knex, await preflightRoles(knex, roles));
  await ensureRegistry(knex, options.registry);
  return runMaster(knex, 'migrate:master', { direction: 'up' }, options);
}

/**
 * Undoes the newest master batch, every batch with `all`, or everything applied after the
 * migration `to` (a file of the master tree; checked before anything runs).
 *
 * @example
 *   await rollbackMaster(knex, { all: true });
 *   await rollbackMaster(knex, { to: '20260101000000_plans.ts' });
 */
export async function rollbackMaster(knex: Knex, options: MasterOptions & { all?: boolean; to?: string } = {}): Promise<MasterResult> {
  if (options.all && options.to !== undefined) {
    throw new UsageError('--all and --to cannot be combined: --all undoes every migration, --to stops at one. Nothing was changed.');
  }
  let undo: UndoRule = options.all ? { kind: 'all' } : { kind: 'newest-batch' };
  if (options.to !== undefined) {
    const names = directorySource(path.resolve(options.directory ?? 'migrations/master')).names;
    undo = { kind: 'to', migration: undoTarget(names, options.to, 'master') };
  }
  return runMaster(knex, 'rollback:master', { direction: 'down', undo }, options);
}

async function runMaster(
  knex: Knex,
  command: MasterResult['command'],
  intent: Pick<SchemaRun, 'direction' | 'undo'>,
  options: MasterOptions,
): Promise<MasterResult> {
  const started = performance.now();
  const source = directorySource(path.resolve(options.directory ?? 'migrations/master'));
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    options.onWarning?.(message);
  };
  const base = { command, schema: 'public' as const };
  const ms = () => Math.round(performance.now() - started);
  const settings = liveSettingsOf(options); // exit 2 for a bad setting, before anything runs
  // An applied file edited since stops the run here, before anything is written.
  const checksums = await checkTree(knex, 'master', source, masterApplied, warn, intent.direction);
  try {
    const { value: { plan }, attempts } = await withLockRetries(
      knex,
      settings,
      () => runSchema(knex, { schema: 'public', source, ...intent, onWarning: warn }),
      { onHeldUp: options.onHeldUp, onRetry: options.onRetry },
    );
    await checksums.sync(knex);
    const changed = intent.direction === 'up' ? 'migrated' : 'rolled-back';
    return {
      ...base,
      ok: true,
      // A rollback with nothing to undo did not find public "up to date": it left it unchanged.
      status: plan.steps.length > 0 ? changed : intent.direction === 'up' ? 'up-to-date' : 'unchanged',
      migrations: plan.steps,
      ...(attempts > 1 ? { attempts } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
      ms: ms(),
    };
  } catch (error) {
    const message =
      error instanceof StepError
        ? `public: migration ${error.migration} (${error.direction}) failed: ${describeError(error.cause)}`
        : `public: ${describeError(error)}`;
    const heldUp = heldUpOf(error);
    if (!heldUp && !(error instanceof StepError) && !(error instanceof Error && error.name === 'PlanError')) throw error;
    await checksums.sync(knex);
    const note = heldUp
      ? `${heldUp.failure.retryable ? ` after ${heldUp.attempts} attempts (lock timeout ${settings.lockTimeoutMs} ms, ${settings.lockRetries} retries): nothing of it was applied` : ''}${heldUp.blockedBy.length > 0 ? ` — ${describeBlockers(heldUp.blockedBy)}` : ''}`
      : '';
    return {
      ...base,
      ok: false,
      status: 'failed',
      migrations: [],
      error: message + note,
      ...(heldUp ? { reason: heldUp.failure.reason, attempts: heldUp.attempts, blockedBy: heldUp.blockedBy } : {}),
      ms: ms(),
    };
  }
}
