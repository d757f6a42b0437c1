/**
 * The executor: applies (or undoes) one schema's plan. Lock, DDL and bookkeeping share one
 * transaction on one connection, so a schema ends fully at the new version or untouched — even if
 * the process is killed mid-run. Used for every tenant and for the master tree (`public`).
 *
 * A schema's run takes one of two routes, chosen by data, not by trial:
 *
 * - `replay` — every pending migration's SQL is already known from an earlier tenant of this
 *   process, all of it plain DDL (replayable.ts), and the caller predicts the schema's state: one
 *   script, one round trip (replay-script.ts). If the prediction is wrong or anything fails, the
 *   script leaves no trace and the run takes the `modules` route instead.
 * - `modules` — what plain Knex does: the migration modules run for this schema, every statement
 *   sent as Knex sends it, inside one transaction. A plan holding a `transaction: false` migration
 *   is cut into units (consecutive transactional migrations share a transaction; each
 *   `transaction: false` one runs alone), under a session lock held across them.
 *
 * Every transaction states READ COMMITTED (lock-then-read relies on it: each statement sees what
 * committed before it started, so the state read after the lock is current), and counts as done
 * only once the server confirms that it committed.
 */
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { quoteIdentifier, searchPathFor } from '../db/quote.ts';
import { bookkeepingStatement, createBookkeeping, MIGRATIONS_TABLE } from './bookkeeping.ts';
import { planDown, planUp, stateAfter, type AppliedMigration, type AppliedState, type Plan, type UndoRule } from './plan.ts';
import { replayableSql } from './replayable.ts';
import { replayScript, runReplayScript, type Expectation } from './replay-script.ts';
import { logStatements, type SentStatement } from './sent-statements.ts';
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
   * The fast path (up only): replay SQL learned from earlier tenants, and learn it from this one.
   * Off, every migration module runs for every schema. Default off.
   */
  replay?: boolean;
  /**
   * What the caller predicts the schema holds: with `replay`, when every pending migration's SQL is
   * known, the schema is migrated in one round trip, `prepare` replaced by the expectation's set-up.
   * A wrong prediction costs a fallback to the `modules` route, never a migration applied twice.
   */
  expect?: Expectation;
  /**
   * The statement that records what a transaction did beyond the schema's own bookkeeping (the
   * tenant registry), given the applied state afterwards. It must include `bookkeeping`, when given
   * (say as a CTE): the executor sends the one statement — bound, or in a replay script inlined by
   * Knex's escaping — so it must bind no user input (key rows by schema name, not org id).
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
   * The route taken: `replay` (one script; nothing of `prepare` ran, the expectation's set-up did),
   * `modules` (one transaction), or `units` (a plan with a `transaction: false` migration).
   */
  via: 'replay' | 'modules' | 'units';
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

/** The server answered a COMMIT without committing (the transaction had been aborted). */
export class NotCommittedError extends Error {
  override readonly name = 'NotCommittedError';
}

/**
 * Runs a schema's plan. See the module comment for the two routes.
 *
 * @example
 *   const { plan, via } = await runSchema(knex, { schema: 'tid_cf4116b064', source, direction: 'up', hasBookkeeping: true });
 */
export async function runSchema(knex: Knex, run: SchemaRun): Promise<SchemaRunResult> {
  if (run.replay && run.expect && run.direction === 'up') {
    const replay = replayScript(knex, { schema: run.schema, source: run.source, expect: run.expect, finish: run.finish });
    if (replay && (await runReplayScript(knex, replay.script))) return { plan: replay.plan, via: 'replay' };
  }
  return runModules(knex, run);
}

/** A run of migrations that share a transaction, or one `transaction: false` migration alone. */
interface Unit {
  transactional: boolean;
  names: string[];
  modules: MigrationModule[];
}

/**
 * The `modules` route, on one pinned connection. The first transaction locks, prepares, reads the
 * state and plans; when the plan starts with transactional migrations they run in it too — for the
 * usual plan that is the whole run. Units after a `transaction: false` migration each get their own
 * transaction, under a session lock taken before the first transaction lets its lock go.
 */
async function runModules(knex: Knex, run: SchemaRun): Promise<SchemaRunResult> {
  const connection: unknown = await knex.client.acquireConnection();
  const key = schemaLockKey(run.schema);
  let sessionLocked = false;
  try {
    const learned = new Map<string, SentStatement[]>();
    const { plan, applied, rest, done } = await inTransaction(knex, connection, run, { lock: true, read: run.hasBookkeeping ?? false }, async (trx, opened) => {
      const { plan, applied } = await readPlan(trx, run, opened);
      const units = unitsOf(plan.steps, await Promise.all(plan.steps.map((name) => run.source.load(name))));
      const first = units[0]?.transactional ? units.shift()! : { transactional: true, names: [], modules: [] };
      await runSteps(trx, run, first, run.replay && plan.direction === 'up' ? learned : undefined);
      await record(trx, run, plan, applied, first.names, []);
      if (units.length > 0) {
        // Taken while the transaction's lock is still held, so no other run slips in between.
        await trx.raw('select pg_advisory_lock(?, ?)', key);
        sessionLocked = true;
      }
      return { plan, applied, rest: units, done: first.names };
    });
    // Only SQL that committed is replayed for other tenants.
    await learn(run.source, learned);
    if (rest.length === 0) return { plan, via: 'modules' };

    for (const unit of rest) {
      if (unit.transactional) {
        await inTransaction(knex, connection, run, { lock: false, read: false }, async (trx) => {
          await runSteps(trx, run, unit);
          await record(trx, run, plan, applied, unit.names, done);
        });
      } else {
        run.onWarning?.(
          `${unit.names[0]} has config.transaction = false: it runs alone, outside ${run.schema}'s transaction; if it fails, the migrations before it stay applied.`,
        );
        await runAlone(knex, connection, run, unit);
        await inTransaction(knex, connection, run, { lock: false, read: false }, (trx) => record(trx, run, plan, applied, unit.names, done));
      }
      done.push(...unit.names);
    }
    return { plan, via: 'units' };
  } finally {
    if (sessionLocked) await knex.raw('select pg_advisory_unlock(?, ?)', key).connection(connection).catch(() => {});
    await knex.client.releaseConnection(connection);
  }
}

interface Opened {
  hasBookkeeping: boolean;
  /** The schema's applied migrations, when read with the lock. */
  applied?: AppliedMigration[];
}

/**
 * One transaction of the executor on the pinned connection: BEGIN with READ COMMITTED stated; then,
 * in one round trip, the schema's advisory lock (when asked), its search_path, the transaction id,
 * and — as a second statement, so that it reads with a snapshot taken after the lock was granted —
 * the schema's applied migrations. After Knex's COMMIT, the server is asked whether that
 * transaction id committed: a COMMIT answered by ROLLBACK is a failure, never a success.
 */
async function inTransaction<T>(
  knex: Knex,
  connection: unknown,
  run: Pick<SchemaRun, 'schema'>,
  open: { lock: boolean; read: boolean },
  body: (trx: Knex.Transaction, opened: Opened) => Promise<T>,
): Promise<T> {
  let xid = '';
  const value = await knex.transaction(
    async (trx) => {
      const opened = await openTransaction(trx, run.schema, open);
      xid = opened.xid;
      return body(trx, opened);
    },
    { connection, isolationLevel: 'read committed' },
  );
  const { rows } = await knex.raw<{ rows: { status: string | null }[] }>('select txid_status(?::bigint) as status', [xid]).connection(connection);
  if (rows[0]?.status !== 'committed') {
    throw new NotCommittedError(`${run.schema}: the server did not commit the transaction (status: ${rows[0]?.status ?? 'unknown'}); nothing of it was applied`);
  }
  return value;
}

async function openTransaction(
  trx: Knex.Transaction,
  schema: string,
  open: { lock: boolean; read: boolean },
): Promise<Opened & { xid: string }> {
  const bookkeeping = `${quoteIdentifier(schema)}.${MIGRATIONS_TABLE}`;
  const lock = open.lock ? trx.raw('pg_advisory_xact_lock(?, ?)::text as locked,', [...schemaLockKey(schema)]).toQuery() : '';
  // Values inlined by Knex's escaping: lock numbers and the schema's own name, never user input.
  const point = trx
    .raw(`select ${lock} set_config('search_path', ?, true) as path, txid_current()::text as xid, to_regclass(?) is not null as "hasBookkeeping"`, [
      searchPathFor(schema),
      bookkeeping,
    ])
    .toQuery();
  if (!open.read) {
    const { rows } = (await trx.raw(point)) as { rows: { xid: string; hasBookkeeping: boolean }[] };
    return { xid: rows[0]!.xid, hasBookkeeping: rows[0]!.hasBookkeeping };
  }
  const read = trx.withSchema(schema).from(MIGRATIONS_TABLE).select('name', 'batch').orderBy('id').toQuery();
  const [pointed, applied] = (await trx.raw(`${point};\n${read}`)) as unknown as [
    { rows: { xid: string; hasBookkeeping: boolean }[] },
    { rows: AppliedMigration[] },
  ];
  return { xid: pointed.rows[0]!.xid, hasBookkeeping: true, applied: applied.rows };
}

/** Prepare (under the lock), make sure the bookkeeping exists, and plan from what the schema has applied. */
async function readPlan(trx: Knex.Transaction, run: SchemaRun, opened: Opened): Promise<{ plan: Plan; applied: AppliedMigration[] }> {
  await run.prepare?.(trx);
  let applied = opened.applied;
  if (!applied) {
    // A schema without bookkeeping (a new tenant, a fresh database) has applied nothing.
    const exists = opened.hasBookkeeping || (await hasBookkeepingTable(trx, run.schema));
    if (exists) applied = (await trx.withSchema(run.schema).from(MIGRATIONS_TABLE).select('name', 'batch').orderBy('id')) as AppliedMigration[];
    else await createBookkeeping(trx, run.schema);
  }
  applied ??= [];
  const plan = run.direction === 'up' ? planUp(run.source.names, applied) : planDown(run.source.names, applied, run.undo);
  return { plan, applied };
}

/** Asked again after `prepare`, which may have created the schema. */
async function hasBookkeepingTable(trx: Knex.Transaction, schema: string): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: { exists: boolean }[] }>('select to_regclass(?) is not null as exists', [
    `${quoteIdentifier(schema)}.${MIGRATIONS_TABLE}`,
  ]);
  return rows[0]!.exists;
}

/**
 * `SET LOCAL`: the path ends with the transaction, so a pooled connection never carries one tenant's
 * path into another's query.
 */
export async function setLocalSearchPath(trx: Knex.Transaction, schema: string): Promise<void> {
  await trx.raw("select set_config('search_path', ?, true)", [searchPathFor(schema)]);
}

/**
 * Runs a unit's migrations in order, naming the one that fails. With `learned`, notes what each
 * migration sent, for {@link learn}.
 */
async function runSteps(knex: Knex, run: SchemaRun, unit: Unit, learned?: Map<string, SentStatement[]>): Promise<void> {
  const log = learned ? logStatements(knex as Knex.Transaction) : undefined;
  try {
    for (const [i, name] of unit.names.entries()) {
      const module = unit.modules[i]!;
      const step = run.direction === 'up' ? module.up : module.down;
      if (!step) throw new StepError(name, run.direction, new Error('the migration has no down function'));
      const from = log?.sent.length ?? 0;
      try {
        await step.call(module, knex);
      } catch (error) {
        throw new StepError(name, run.direction, error);
      }
      if (log && !run.source.replays.has(name)) learned!.set(name, log.sent.slice(from));
    }
  } finally {
    log?.stop();
  }
}

/** Keeps, for later tenants, the SQL of each migration that sent nothing but plain DDL. */
async function learn(source: MigrationSource, learned: ReadonlyMap<string, SentStatement[]>): Promise<void> {
  for (const [name, sent] of learned) {
    const sql = await replayableSql(sent);
    if (sql) source.replays.set(name, sql);
  }
}

/**
 * Writes the bookkeeping of `names` and, through `finish`, the registry, in one statement — the
 * last the transaction sends, so it also proves the transaction is not aborted.
 */
async function record(
  trx: Knex.Transaction,
  run: SchemaRun,
  plan: Plan,
  applied: readonly AppliedMigration[],
  names: readonly string[],
  before: readonly string[],
): Promise<void> {
  const state = stateAfter(plan, applied, [...before, ...names]);
  if (names.length === 0) {
    // Nothing to record — unless the registry disagrees with the schema's own bookkeeping (say a
    // tenant was migrated with stock Knex): correct it, or every run would find it "behind" again.
    if (run.finish && run.recorded && !sameState(run.recorded, state)) await run.finish(trx, state);
    return;
  }
  const bookkeeping = bookkeepingStatement(trx, run.schema, plan.direction, names, plan.batch);
  await (run.finish ? run.finish(trx, state, bookkeeping) : bookkeeping);
}

function sameState(a: AppliedState, b: AppliedState): boolean {
  return a.version === b.version && a.count === b.count;
}

/**
 * Runs a `transaction: false` migration outside any transaction, on the pinned connection that
 * holds the schema's session lock (a second connection would deadlock a single-session server such
 * as PGlite), with the schema's search_path for the duration and reset afterwards.
 */
async function runAlone(knex: Knex, connection: unknown, run: SchemaRun, unit: Unit): Promise<void> {
  const pinned = knexOnConnection(knex, connection);
  if (run.schema === 'public') await pinned.raw('set search_path to public');
  else await pinned.raw('set search_path to ??, public', [run.schema]);
  try {
    await runSteps(pinned, run, unit);
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

/** Groups consecutive transactional migrations; every `transaction: false` one stands alone. */
function unitsOf(names: readonly string[], modules: readonly MigrationModule[]): Unit[] {
  const units: Unit[] = [];
  for (const [i, name] of names.entries()) {
    const module = modules[i]!;
    const transactional = isTransactional(module);
    const last = units.at(-1);
    if (transactional && last?.transactional) {
      last.names.push(name);
      last.modules.push(module);
    } else {
      units.push({ transactional, names: [name], modules: [module] });
    }
  }
  return units;
}
