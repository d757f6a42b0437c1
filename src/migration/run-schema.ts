/**
 * The executor: applies (or undoes) one schema's plan. Lock, DDL and bookkeeping share one
 * transaction on one connection, so a schema ends fully at the new version or untouched — even if
 * the process is killed mid-run. Used for every tenant and for the master tree (`public`).
 */
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { quoteIdentifier, searchPathFor } from '../db/quote.ts';
import { bookkeepingStatement, createBookkeeping, MIGRATIONS_TABLE, readApplied } from './bookkeeping.ts';
import { holdStatements, isHeldBackFailure, type StatementBatch } from './ddl-batch.ts';
import { runAsOneScript, type Expectation } from './one-script.ts';
import { planDown, planUp, stateAfter, type AppliedMigration, type AppliedState, type Plan, type UndoRule } from './plan.ts';
import { isTransactional, type MigrationModule, type MigrationSource } from './source.ts';

export interface SchemaRun {
  schema: string;
  source: MigrationSource;
  direction: 'up' | 'down';
  /** With `down`: which applied migrations to undo (default: the newest batch). */
  undo?: UndoRule;
  /**
   * True when the schema is known to have its bookkeeping tables (a registered tenant): its state
   * is then read in the same round trip as the lock.
   */
  hasBookkeeping?: boolean;
  /** Runs first, inside the (first) transaction, under the lock — e.g. create the schema. */
  prepare?(trx: Knex.Transaction): Promise<void>;
  /**
   * What the caller predicts the schema holds (up only): when every pending migration's DDL is
   * already known, the schema is migrated in one round trip (one-script.ts), `prepare` replaced by
   * the expectation's set-up. A wrong prediction costs a fallback to the ordinary path, never a
   * migration applied twice.
   */
  expect?: Expectation;
  /**
   * The statement that records what a transaction did beyond the schema's own bookkeeping (the
   * tenant registry), given the applied state afterwards. It must include `bookkeeping`, when given
   * (say as a CTE): the executor sends the one statement, bound or — in batched mode — inlined by Knex's
   * escaping, so it must bind no user input (key rows by schema name, not org id).
   */
  finish?(knex: Knex, state: AppliedState, bookkeeping?: Knex.QueryBuilder): Knex.QueryBuilder;
  /**
   * What the registry says the schema has applied. When the run finds otherwise with nothing to
   * do, `finish` is called without bookkeeping to correct it.
   */
  recorded?: AppliedState;
  onWarning?(message: string): void;
}

export interface SchemaRunResult {
  plan: Plan;
  /**
   * How it ran: `one-script` (the fast path: nothing of `prepare` ran, the expectation's set-up
   * did), `transaction` (one transaction, the DDL batched or statement by statement), or
   * `segments` (a plan with a `transaction: false` migration).
   */
  via: 'one-script' | 'transaction' | 'segments';
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
 * Runs a schema's plan in one transaction holding `pg_advisory_xact_lock` (released by PostgreSQL
 * at commit, rollback or disconnect).
 *
 * When the caller predicts the schema's state and every pending migration's DDL is already known
 * from an earlier tenant, the whole transaction is one script, one round trip (one-script.ts);
 * otherwise, or if that script fails, the ordinary path below.
 *
 * First with statements held back (ddl-batch.ts): BEGIN travels with the lock and the read of the
 * schema's state, the bookkeeping is written up front (the transaction makes order irrelevant), and
 * all the DDL travels with COMMIT — two or three round trips a tenant. If a round trip carrying
 * held-back statements fails, that attempt has rolled back entirely; it runs again one statement at
 * a time, so the error names the migration at fault (a transient failure simply succeeds then).
 * A plan with a `transaction: false` migration goes through {@link runInSegments} instead.
 */
export async function runSchema(knex: Knex, run: SchemaRun): Promise<SchemaRunResult> {
  if (run.expect && run.direction === 'up') {
    const plan = await runAsOneScript(knex, { schema: run.schema, source: run.source, expect: run.expect, finish: run.finish });
    if (plan) return { plan, via: 'one-script' };
  }
  try {
    return await runInOneTransaction(knex, run, 'batched');
  } catch (error) {
    if (error instanceof NeedsSeparateSteps) return runInSegments(knex, run);
    if (!isHeldBackFailure(error)) throw error;
  }
  try {
    return await runInOneTransaction(knex, run, 'statement-by-statement');
  } catch (error) {
    if (error instanceof NeedsSeparateSteps) return runInSegments(knex, run);
    throw error;
  }
}

type Mode = 'batched' | 'statement-by-statement';

async function runInOneTransaction(knex: Knex, run: SchemaRun, mode: Mode): Promise<SchemaRunResult> {
  const connection: unknown = await knex.client.acquireConnection();
  const held = mode === 'batched' ? holdStatements(connection) : undefined;
  const learned = new Map<string, readonly string[]>();
  let failed = false;
  try {
    const result = await knex.transaction(
      async (trx) => {
        const batched = mode === 'batched';
        const { plan, applied } = await readPlan(trx, run, { lock: true, inline: batched, readWithLock: run.hasBookkeeping });
        const modules = await Promise.all(plan.steps.map((name) => run.source.load(name)));
        if (modules.some((module) => !isTransactional(module))) throw new NeedsSeparateSteps();
        if (batched) {
          // Held back like DDL: it travels with COMMIT; the transaction makes its place irrelevant.
          await record(trx, run, plan, applied, plan.steps, [], held);
          await runSteps(trx, run, plan.steps, modules, { held: held!, learned });
        } else {
          await runSteps(trx, run, plan.steps, modules);
          await record(trx, run, plan, applied, plan.steps, []);
        }
        return { plan, via: 'transaction' as const };
      },
      { connection },
    );
    // Only DDL that committed is replayed for other tenants.
    for (const [key, statements] of learned) run.source.replays.set(key, statements);
    return result;
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    held?.release();
    // A COMMIT that failed behind held-back DDL leaves the transaction open: close it before the
    // connection goes back to the pool ("no transaction in progress" is harmless otherwise).
    if (failed) await knex.raw('rollback').connection(connection).catch(() => {});
    await knex.client.releaseConnection(connection);
  }
}

/** The lock, the search_path and (when the schema may lack it) a bookkeeping check, in one statement. */
const LOCK_AND_POINT = `select pg_advisory_xact_lock(?, ?)::text as locked, set_config('search_path', ?, true) as path,
                              to_regclass(?) is not null as "hasBookkeeping"`;
const POINT = `select set_config('search_path', ?, true) as path, to_regclass(?) is not null as "hasBookkeeping"`;

/**
 * Lock (when asked), point search_path at the schema, prepare, and plan from what the schema has
 * applied.
 *
 * `inline` sends the lock statement as a simple-protocol query, so that a held-back BEGIN rides
 * with it; with `readWithLock` (a registered tenant: its bookkeeping exists) the read of
 * `knex_migrations` joins it as a second statement — in READ COMMITTED each statement takes its own
 * snapshot, so the read still sees everything committed before the lock was granted. The values
 * inlined by Knex's escaping are lock numbers and the schema's own name, never user input.
 */
async function readPlan(
  trx: Knex.Transaction,
  run: SchemaRun,
  options: { lock: boolean; inline?: boolean; readWithLock?: boolean },
): Promise<{ plan: Plan; applied: AppliedMigration[] }> {
  const bookkeeping = `${quoteIdentifier(run.schema)}.${MIGRATIONS_TABLE}`;
  const point = options.lock
    ? trx.raw(LOCK_AND_POINT, [...schemaLockKey(run.schema), searchPathFor(run.schema), bookkeeping])
    : trx.raw(POINT, [searchPathFor(run.schema), bookkeeping]);
  let applied: AppliedMigration[] = [];
  if (options.inline && options.readWithLock) {
    const read = trx.withSchema(run.schema).from(MIGRATIONS_TABLE).select('name', 'batch').orderBy('id');
    const results = (await trx.raw([point.toQuery(), read.toQuery()].join(';\n'))) as unknown as { rows: AppliedMigration[] }[];
    applied = results[1]!.rows;
    await run.prepare?.(trx);
  } else {
    const { rows } = (await (options.inline ? trx.raw(point.toQuery()) : point)) as { rows: { hasBookkeeping: boolean }[] };
    await run.prepare?.(trx);
    // A schema without bookkeeping has applied nothing.
    if (rows[0]?.hasBookkeeping) applied = await readApplied(trx, run.schema);
    else await createBookkeeping(trx, run.schema);
  }
  const plan = run.direction === 'up' ? planUp(run.source.names, applied) : planDown(run.source.names, applied, run.undo);
  return { plan, applied };
}

/**
 * `SET LOCAL`: the path ends with the transaction, so a pooled connection never carries one tenant's
 * path into another's query.
 */
export async function setLocalSearchPath(trx: Knex.Transaction, schema: string): Promise<void> {
  await trx.raw("select set_config('search_path', ?, true)", [searchPathFor(schema)]);
}

/**
 * Runs migrations in order, naming the one that fails.
 *
 * With `replay` (batched mode): a migration that an earlier tenant of this run ran as nothing but
 * plain DDL is not run again — its statements are held back as they were sent then (tenant
 * migrations use unqualified names, so the SQL is the same in every schema). The module's code,
 * compiling a dozen statements through Knex, is most of a tenant's client-side cost. A migration
 * that reads, binds values or opens a savepoint runs for every tenant.
 */
async function runSteps(
  knex: Knex,
  run: SchemaRun,
  names: readonly string[],
  modules: readonly MigrationModule[],
  replay?: { held: StatementBatch; learned: Map<string, readonly string[]> },
): Promise<void> {
  for (const [i, name] of names.entries()) {
    const module = modules[i]!;
    const step = run.direction === 'up' ? module.up : module.down;
    if (!step) throw new StepError(name, run.direction, new Error('the migration has no down function'));
    const key = `${run.direction}:${name}`;
    const known = replay && run.source.replays.get(key);
    if (known) {
      replay.held.hold(known);
      continue;
    }
    const recording = replay?.held.record();
    try {
      await step.call(module, knex);
    } catch (error) {
      recording?.stop();
      throw new StepError(name, run.direction, error);
    }
    const seen = recording?.stop();
    if (seen?.onlyHeld) replay!.learned.set(key, seen.statements);
  }
}

/**
 * Writes the bookkeeping of `names` (and, through `finish`, the registry) in one statement: sent
 * now, or with `held`, held back with the DDL (its values inlined by Knex's escaping: migration
 * names, counts, the schema name).
 */
async function record(
  trx: Knex.Transaction,
  run: SchemaRun,
  plan: Plan,
  applied: readonly AppliedMigration[],
  names: readonly string[],
  before: readonly string[],
  held?: StatementBatch,
): Promise<void> {
  const state = stateAfter(plan, applied, [...before, ...names]);
  if (names.length === 0) {
    // Nothing to record — unless the registry is behind the schema's own bookkeeping (say a
    // tenant was migrated with stock Knex): correct it, or every run would find it "behind" again.
    if (run.finish && run.recorded && !sameState(run.recorded, state)) await run.finish(trx, state);
    return;
  }
  const bookkeeping = bookkeepingStatement(trx, run.schema, plan.direction, names, plan.batch);
  const statement = run.finish ? run.finish(trx, state, bookkeeping) : bookkeeping;
  if (held) held.hold([statement.toQuery()]);
  else await statement;
}

function sameState(a: AppliedState, b: AppliedState): boolean {
  return a.version === b.version && a.count === b.count;
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
    ({ plan, applied } = await readPlan(trx, run, { lock: false })); // the session lock is held
    modules.push(...(await Promise.all(plan.steps.map((name) => run.source.load(name)))));
    // Commit what prepare did (e.g. the new schema) before the first step that cannot share it.
  });
  const done: string[] = [];
  const progress = (): Plan => ({ ...plan, steps: [...done] });
  for (const segment of segmentsOf(plan.steps, modules)) {
    if (segment.transactional) {
      await onConnection(async (trx) => {
        await setLocalSearchPath(trx, run.schema);
        await runSteps(trx, run, segment.names, segment.modules);
        await record(trx, run, plan, applied, segment.names, done);
      });
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
  return { plan: progress(), via: 'segments' };
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
