/**
 * The pure part of migrating: from the files on disk and what a schema has applied, decide what to
 * run — or refuse, with a message that says what to do. No database access here, so the same plan
 * serves migrate, rollback, status and tests.
 */
export interface AppliedMigration {
  name: string;
  batch: number;
}

export interface Plan {
  direction: 'up' | 'down';
  /** Migration names in the order they run. */
  steps: string[];
  /** The batch number the steps are recorded under (up) or removed from (down). */
  batch: number;
}

export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/**
 * Pending files named before the newest applied one: they would run out of order. Shared by the plan
 * of one schema and the fleet-wide check made before a run (checksums.ts).
 */
export function outOfOrder(files: readonly string[], appliedNames: readonly string[]): { early: string[]; newestApplied: string | undefined } {
  const done = new Set(appliedNames);
  const newestApplied = appliedNames.reduce<string | undefined>((max, name) => (max === undefined || name > max ? name : max), undefined);
  return { early: newestApplied === undefined ? [] : files.filter((name) => !done.has(name) && name < newestApplied), newestApplied };
}

/**
 * Pending migrations, oldest first.
 *
 * @throws PlanError when an applied migration's file is gone, or when a pending file sorts before
 *   the newest applied one (it would run out of order).
 */
export function planUp(files: readonly string[], applied: readonly AppliedMigration[]): Plan {
  const known = new Set(files);
  const missing = applied.filter((row) => !known.has(row.name)).map((row) => row.name);
  if (missing.length > 0) {
    throw new PlanError(
      `applied migration${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'have' : 'has'} no file in the migrations directory — restore the file (was it renamed or deleted?), never edit knex_migrations by hand`,
    );
  }
  const done = new Set(applied.map((row) => row.name));
  const steps = files.filter((name) => !done.has(name));
  const { early, newestApplied } = outOfOrder(files, [...done]);
  if (early.length > 0) {
    throw new PlanError(
      `${early.join(', ')} ${early.length > 1 ? 'are' : 'is'} pending but sort${early.length > 1 ? '' : 's'} before the already applied ${newestApplied} — a new migration must have a name (timestamp) that comes after the last applied one; give it a newer timestamp (migrate:make:tenant and migrate:make:master name new files correctly)`,
    );
  }
  return { direction: 'up', steps, batch: maxBatch(applied) + 1 };
}

/**
 * Which applied migrations a rollback undoes — data, so the executor has one down path whatever
 * the command asked for:
 * - `newest-batch`: the schema's newest batch (Knex's rule; the master tree's default);
 * - `all`: every applied migration;
 * - `names`: exactly these, where applied (a fleet release: see rollback-tenants.ts) — refused when
 *   a migration that stays applied sorts after one it would undo;
 * - `to`: everything applied after `migration`, so that it ends as the newest applied one.
 */
export type UndoRule =
  | { kind: 'newest-batch' }
  | { kind: 'all' }
  | { kind: 'names'; names: readonly string[]; release?: number }
  | { kind: 'to'; migration: string };

/**
 * What a rollback undoes under `rule`, newest first.
 *
 * @throws PlanError when a migration to undo has no file any more.
 */
export function planDown(files: readonly string[], applied: readonly AppliedMigration[], rule: UndoRule = { kind: 'newest-batch' }): Plan {
  const batch = maxBatch(applied);
  const undo = undoFilter(rule, batch);
  const steps = applied
    .filter(undo)
    .map((row) => row.name)
    .sort()
    .reverse();
  const known = new Set(files);
  const missing = steps.filter((name) => !known.has(name));
  if (missing.length > 0) {
    throw new PlanError(`cannot roll back ${missing.join(', ')}: no such file in the migrations directory — restore it first`);
  }
  if (rule.kind === 'names') refuseUndoBeneath(applied, steps, rule.release);
  return { direction: 'down', steps, batch };
}

/**
 * A release is undone only from the top: a migration that stays applied and sorts after one the
 * rollback would undo (a newer release that another run applied to this tenant after the rollback
 * chose what to undo, or one applied by hand) may build on it. Issue 20, item 5.
 */
function refuseUndoBeneath(applied: readonly AppliedMigration[], steps: readonly string[], release: number | undefined): void {
  const oldest = steps.at(-1);
  if (oldest === undefined) return;
  const undone = new Set(steps);
  const above = applied.map((row) => row.name).filter((name) => !undone.has(name) && name > oldest);
  if (above.length === 0) return;
  const what = release === undefined ? 'the release' : `release #${release}`;
  throw new PlanError(
    `${above.join(', ')} ${above.length > 1 ? 'are' : 'is'} applied here, newer than ${oldest} of ${what} being undone, and not part of it ` +
      '(applied meanwhile by another run, or by hand): undoing the release beneath it would leave the migrations out of order, so nothing was undone in this tenant. ' +
      'Run rollback:tenants again (it undoes the newest release a tenant holds first), or go back with rollback:tenants --to <migration>',
  );
}

function undoFilter(rule: UndoRule, newestBatch: number): (row: AppliedMigration) => boolean {
  switch (rule.kind) {
    case 'newest-batch':
      return (row) => row.batch === newestBatch;
    case 'all':
      return () => true;
    case 'names': {
      const names = new Set(rule.names);
      return (row) => names.has(row.name);
    }
    case 'to':
      return (row) => row.name > rule.migration;
  }
}

/** What the registry records of a schema: its newest applied migration and how many are applied. */
export interface AppliedState {
  version: string | null;
  count: number;
}

/** The applied state after `steps` of a plan have run. */
export function stateAfter(plan: Plan, applied: readonly AppliedMigration[], steps: readonly string[] = plan.steps): AppliedState {
  const names = new Set(applied.map((row) => row.name));
  for (const step of steps) {
    if (plan.direction === 'up') names.add(step);
    else names.delete(step);
  }
  return { version: [...names].sort().at(-1) ?? null, count: names.size };
}

function maxBatch(applied: readonly AppliedMigration[]): number {
  return applied.reduce((max, row) => Math.max(max, row.batch), 0);
}
