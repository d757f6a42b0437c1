/**
 * The executor: applies (or undoes) one schema's plan. Lock, DDL and bookkeeping share one
 * transaction on one connection, so a schema ends fully at the new version or untouched — even if
 * the process is killed mid-run. Used for every tenant and for the master tree (`public`).
 */
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { bookkeepingStatement, createBookkeeping, MIGRATIONS_TABLE, readApplied } from './bookkeeping.ts';
import { batchDdl, type DdlBatch } from './ddl-batch.ts';
import { planDown, planUp, stateAfter, type AppliedMigration, type AppliedState, type Plan } from './plan.ts';
import { isTransactional, type MigrationModule, type MigrationSource } from './source.ts';

export interface SchemaRun {
  schema: string;
  source: MigrationSource;
  direction: 'up' | 'down';
  /** With `down`: undo every batch instead of the newest. */
  all?: boolean;
  /** Runs first, inside the (first) transaction, under the lock — e.g. create the schema. */
  prepare?(trx: Knex.Transaction): Promise<void>;
  /**
   * Records what a transaction did beyond the schema's own bookkeeping (the tenant registry), given
   * the applied state afterwards. It must run `bookkeeping` too — in the same statement, say as a
   * CTE — so each transaction ends with one round trip. Without `finish`, the executor runs it.
   */
  finish?(trx: Knex.Transaction, state: AppliedState, bookkeeping: Knex.QueryBuilder): Promise<void>;
  onWarning?(message: string): void;
}

export interface SchemaRunResult {
  plan: Plan;
}

/** A migration that failed, named; the database's error is the cause. */
export class StepError extends Error {
  override readonly name = 'StepError';
  constructor(
    readonly migration: string,
    readonly direction: 'up' | 'down',
    override readonly cause: unknown,
  ) {
    super(`${migration} (${direction}) failed`, { cause });
  }
}

/** Thrown inside the one-transaction path when the plan holds a `transaction: false` migration. */
class NeedsSeparateSteps extends Error {}

/**
 * Runs a schema's plan. Common case: one transaction holding `pg_advisory_xact_lock`; released by
 * PostgreSQL at commit, rollback or disconnect. A plan with a `transaction: false` migration goes
 * through {@link runInSegments} instead.
 */
export async function runSchema(knex: Knex, run: SchemaRun): Promise<SchemaRunResult> {
  try {
    return await knex.transaction((trx) =>
      withDdlBatching(trx, async (batch) => {
        const { plan, applied } = await readPlan(trx, run, { lock: true });
        const modules = await Promise.all(plan.steps.map((name) => run.source.load(name)));
        if (modules.some((module) => !isTransactional(module))) throw new NeedsSeparateSteps();
        await runSteps(trx, run, plan.steps, modules, batch);
        await record(trx, run, plan, applied, plan.steps, []);
        return { plan };
      }),
    );
  } catch (error) {
    if (error instanceof NeedsSeparateSteps) return runInSegments(knex, run);
    throw error;
  }
}

// The target list runs left to right: the lock is granted before anything else is looked at.
const LOCK_AND_POINT = `select pg_advisory_xact_lock(?, ?)::text as locked, set_config('search_path', ?, true) as path,
                              to_regclass(?) is not null as "hasBookkeeping"`;
const POINT = `select set_config('search_path', ?, true) as path, to_regclass(?) is not null as "hasBookkeeping"`;

/**
 * Lock (when asked), point search_path at the schema, prepare, and plan from what the schema has
 * applied. The lock, the path and the bookkeeping check share one round trip: at thousands of
 * tenants, round trips are what a run spends besides the DDL itself.
 */
async function readPlan(
  trx: Knex.Transaction,
  run: SchemaRun,
  options: { lock: boolean },
): Promise<{ plan: Plan; applied: AppliedMigration[] }> {
  const bookkeeping = `${quoteIdentifier(run.schema)}.${MIGRATIONS_TABLE}`;
  const { rows } = options.lock
    ? await trx.raw<{ rows: { hasBookkeeping: boolean }[] }>(LOCK_AND_POINT, [...schemaLockKey(run.schema), searchPathFor(run.schema), bookkeeping])
    : await trx.raw<{ rows: { hasBookkeeping: boolean }[] }>(POINT, [searchPathFor(run.schema), bookkeeping]);
  await run.prepare?.(trx);
  let applied: AppliedMigration[] = []; // a schema without bookkeeping has applied nothing
  if (rows[0]?.hasBookkeeping) applied = await readApplied(trx, run.schema);
  else await createBookkeeping(trx, run.schema);
  const plan = run.direction === 'up' ? planUp(run.source.names, applied) : planDown(run.source.names, applied, run.all ?? false);
  return { plan, applied };
}

/**
 * `SET LOCAL`: the path ends with the transaction, so a pooled connection never carries one tenant's
 * path into another's query. `public` second, so extension types installed there (pgvector's
 * `vector`) resolve.
 */
export async function setLocalSearchPath(trx: Knex.Transaction, schema: string): Promise<void> {
  await trx.raw("select set_config('search_path', ?, true)", [searchPathFor(schema)]);
}

/** The search_path value for a schema: the schema (quoted), then `public`. */
function searchPathFor(schema: string): string {
  return schema === 'public' ? 'public' : `${quoteIdentifier(schema)}, public`;
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Runs migrations in order. With a DDL batch (inside a transaction), each migration's held-back
 * DDL is sent when it ends, so a failure is reported against the migration it belongs to.
 */
async function runSteps(
  knex: Knex,
  run: SchemaRun,
  names: readonly string[],
  modules: readonly MigrationModule[],
  batch?: DdlBatch,
): Promise<void> {
  for (const [i, name] of names.entries()) {
    const module = modules[i]!;
    const step = run.direction === 'up' ? module.up : module.down;
    if (!step) throw new StepError(name, run.direction, new Error('the migration has no down function'));
    try {
      await step.call(module, knex);
      await batch?.flush();
    } catch (error) {
      throw new StepError(name, run.direction, error);
    }
  }
}

/**
 * Holds back DDL for the whole transaction body (so the bookkeeping tables of a new schema travel
 * with its first migration's DDL), sends what is left before the commit, and always unhooks.
 */
async function withDdlBatching<T>(trx: Knex.Transaction, body: (batch: DdlBatch) => Promise<T>): Promise<T> {
  const batch = await batchDdl(trx);
  try {
    const result = await body(batch);
    await batch.flush();
    return result;
  } finally {
    batch.release();
  }
}

/** Writes the bookkeeping of `names` (and, through `finish`, the registry) in one statement. */
async function record(
  trx: Knex.Transaction,
  run: SchemaRun,
  plan: Plan,
  applied: readonly AppliedMigration[],
  names: readonly string[],
  before: readonly string[],
): Promise<void> {
  if (names.length === 0) return;
  const bookkeeping = bookkeepingStatement(trx, run.schema, plan.direction, names, plan.batch);
  if (run.finish) await run.finish(trx, stateAfter(plan, applied, [...before, ...names]), bookkeeping);
  else await bookkeeping;
}

/**
 * The opt-out path: a session advisory lock on one pinned connection for the whole plan; runs of
 * transactional migrations share a transaction; each `transaction: false` migration runs alone
 * (e.g. `CREATE INDEX CONCURRENTLY`), with its bookkeeping written right after it succeeds.
 */
async function runInSegments(knex: Knex, run: SchemaRun): Promise<SchemaRunResult> {
  const connection: unknown = await knex.client.acquireConnection();
  const key = schemaLockKey(run.schema);
  try {
    await knex.raw('select pg_advisory_lock(?, ?)', key).connection(connection);
    try {
      return await runSegmentsLocked(knex, connection, run);
    } finally {
      await knex.raw('select pg_advisory_unlock(?, ?)', key).connection(connection);
    }
  } finally {
    await knex.client.releaseConnection(connection);
  }
}

async function runSegmentsLocked(knex: Knex, connection: unknown, run: SchemaRun): Promise<SchemaRunResult> {
  const onConnection = <T>(fn: (trx: Knex.Transaction) => Promise<T>) => knex.transaction(fn, { connection });
  let applied: AppliedMigration[] = [];
  let plan!: Plan;
  const modules: MigrationModule[] = [];
  await onConnection(async (trx) => {
    ({ plan, applied } = await withDdlBatching(trx, () => readPlan(trx, run, { lock: false }))); // the session lock is held
    modules.push(...(await Promise.all(plan.steps.map((name) => run.source.load(name)))));
    // Commit what prepare did (e.g. the new schema) before the first step that cannot share it.
  });
  const done: string[] = [];
  const progress = (): Plan => ({ ...plan, steps: [...done] });
  for (const segment of segmentsOf(plan.steps, modules)) {
    if (segment.transactional) {
      await onConnection((trx) =>
        withDdlBatching(trx, async (batch) => {
          await setLocalSearchPath(trx, run.schema);
          await runSteps(trx, run, segment.names, segment.modules, batch);
          await record(trx, run, plan, applied, segment.names, done);
        }),
      );
    } else {
      const name = segment.names[0]!;
      run.onWarning?.(
        `${name} has config.transaction = false: it runs alone, outside ${run.schema}'s transaction; if it fails, the migrations before it stay applied.`,
      );
      await runAlone(knex, connection, run, segment.names, segment.modules);
      await onConnection(async (trx) => {
        await record(trx, run, plan, applied, segment.names, done);
      });
    }
    done.push(...segment.names);
  }
  return { plan: progress() };
}

/**
 * Runs migrations outside any transaction, on the pinned connection that holds the schema's
 * session lock (a second connection would deadlock a single-session server such as PGlite), with
 * the schema's search_path for the duration and reset afterwards.
 */
async function runAlone(
  knex: Knex,
  connection: unknown,
  run: SchemaRun,
  names: readonly string[],
  modules: readonly MigrationModule[],
): Promise<void> {
  const pinned = knexOnConnection(knex, connection);
  if (run.schema === 'public') await pinned.raw('set search_path to public');
  else await pinned.raw('set search_path to ??, public', [run.schema]);
  try {
    await runSteps(pinned, run, names, modules);
  } finally {
    await pinned.raw('reset search_path');
  }
}

/**
 * A Knex whose every query runs on `connection` (no transaction): Knex's own clone of the instance
 * (`withUserParams`) with a client that hands out that one connection and never releases it.
 */
function knexOnConnection(knex: Knex, connection: unknown): Knex {
  const pinned = knex.withUserParams({});
  pinned.client.acquireConnection = async () => connection;
  pinned.client.releaseConnection = async () => {};
  return pinned;
}

interface Segment {
  transactional: boolean;
  names: string[];
  modules: MigrationModule[];
}

/** Groups consecutive transactional migrations; every `transaction: false` one stands alone. */
function segmentsOf(names: readonly string[], modules: readonly MigrationModule[]): Segment[] {
  const segments: Segment[] = [];
  for (const [i, name] of names.entries()) {
    const module = modules[i]!;
    const transactional = isTransactional(module);
    const last = segments.at(-1);
    if (transactional && last?.transactional) {
      last.names.push(name);
      last.modules.push(module);
    } else {
      segments.push({ transactional, names: [name], modules: [module] });
    }
  }
  return segments;
}
