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
 *
 * Live traffic (issue #20): once the schema's advisory lock is granted — that wait is the tool's
 * own and stays unbounded, so overlapping runs both finish — every transaction sets `lock_timeout`
 * (and `statement_timeout`) LOCAL, from the attempt's settings (db/lock-settings.ts). A lock wait
 * then fails the attempt whole with 55P03, and the fleet layer re-queues the tenant.
 */
import type { Knex } from 'knex';
import { noteSchemasServed } from '../db/recycle-connections.ts';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { READ_COMMITTED } from '../db/isolation.ts';
import { sessionFingerprintSql } from '../db/session-fingerprint.ts';
import { isConnectionError, isServerError, transactionOutcome } from '../db/transaction-outcome.ts';
import { relationExists } from '../db/relation-exists.ts';
import { applyTenantGrants, tenantRoleRefusal, type TenantGrants } from '../roles/grants.ts';
import { quoteIdentifier, searchPathFor } from '../db/quote.ts';
import { bookkeepingStatement, createBookkeeping, MIGRATIONS_TABLE } from './bookkeeping.ts';
import { describeError } from './describe-error.ts';
import { planDown, planUp, stateAfter, type AppliedMigration, type AppliedState, type Plan, type UndoRule } from './plan.ts';
import { replayableSql, sessionChange } from './replayable.ts';
import { backendPidOf, replayScript, runReplayScript, type Expectation } from './replay-script.ts';
import { currentAttempt, RESET_TIMEOUTS_SQL, timeoutsSql } from '../db/lock-settings.ts';
import { lockFailureOf, NotRetryableError } from '../db/lock-errors.ts';
import { logStatements, type SentStatement } from './sent-statements.ts';
import { isTransactional, type MigrationModule, type MigrationSource } from './source.ts';
import { COMMITS_TRANSACTION, firstTransactionEnd, holdBackTransactionEnd, UNDOES_TRANSACTION } from './transaction-end.ts';

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
  /**
   * Runs last, in the transaction that records the plan's final unit — for the usual plan, the one
   * transaction of the run (`provision:tenant --seed`: an org is never visible unseeded). Its
   * presence rules out the replay route, which runs no module.
   */
  complete?(trx: Knex.Transaction): Promise<void>;
  /**
   * With per-tenant roles (src/roles/): the tenant role's grants, sent after each unit's DDL and
   * before its bookkeeping, on both routes. Never part of what is learned for replay.
   */
  grants?: TenantGrants;
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

function undoRefusal(sql: string): string {
  return (
    `it sent "${sql}", which was not sent on: it would undo the tenant's transaction and leave the rest to commit without it. ` +
    'To fail a migration, throw an error (the tenant keeps nothing); to undo part of one, use a nested knex.transaction().'
  );
}

/** A migration called knex.commit() or knex.rollback() on the transaction it was given. */
class EndedItsTransactionError extends Error {
  override readonly name = 'EndedItsTransactionError';
  constructor(cause: unknown) {
    super(
      'it ended its transaction itself (knex.commit() or knex.rollback()): what it sent before that was committed or rolled back there, and it is not recorded as applied' +
        (cause instanceof Error ? ` (then: ${cause.message})` : '') +
        '. Run what cannot run in a transaction in a migration with `export const config = { transaction: false }`; ' +
          'then undo what was committed in this tenant by hand (or, for an org just provisioned, deprovision:tenant <orgId> --no-backup and provision it again).',
      { cause },
    );
  }
}

function lostScriptError(schema: string, error: unknown): unknown {
  if (!isConnectionError(error)) return error;
  return new CommitUnknownError(
    `${schema}: the connection was lost while its migration script ran, and the server could not be asked whether it committed ` +
      `(${error instanceof Error ? error.message : String(error)}). Run status --verify: a tenant it shows drifted is caught up by migrate:tenants --verify.`,
  );
}

/** A migration that sent COMMIT itself, then failed: what it sent before the COMMIT is kept. */
class CommittedBeforeFailingError extends Error {
  override readonly name = 'CommittedBeforeFailingError';
  constructor(commit: string, cause: unknown) {
    super(
      `${describeError(cause)} — after it had sent "${commit}" itself: what it sent before that committed, what came after ran outside a transaction, and all of it stays, not recorded as applied. ` +
        'Fix the migration, then undo that part in this tenant by hand (or, for an org just provisioned, deprovision:tenant <orgId> --no-backup and provision it again).',
      { cause },
    );
  }
}

/** The connection was lost at COMMIT and the server could not tell whether the transaction committed. */
export class CommitUnknownError extends Error {
  override readonly name = 'CommitUnknownError';
}

/**
 * Runs a schema's plan. See the module comment for the two routes.
 *
 * @example
 *   const { plan, via } = await runSchema(knex, { schema: 'tid_cf4116b064', source, direction: 'up', hasBookkeeping: true });
 */
export async function runSchema(knex: Knex, run: SchemaRun): Promise<SchemaRunResult> {
  if (run.replay && run.expect && run.direction === 'up' && !run.complete) {
    const replay = replayScript(knex, { schema: run.schema, source: run.source, expect: run.expect, finish: run.finish, grants: run.grants });
    const sent = replay ? await runReplayScript(knex, replay.script) : undefined;
    if (replay && sent === 'committed') return { plan: replay.plan, via: 'replay' };
    // The modules route reads the tenant's state under its lock and does what is left: nothing, if
    // a script whose answer was lost committed. When the server cannot be reached again, nobody here can tell.
    if (sent === 'connection-lost') return runModules(knex, run).catch((error: unknown) => Promise.reject(lostScriptError(run.schema, error)));
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
  currentAttempt().onBackend?.(backendPidOf(connection));
  const key = schemaLockKey(run.schema);
  const session: Session = { schema: run.schema, previousPath: undefined, sent: [], fingerprint: {} };
  let sessionLocked = false;
  let finished = false;
  try {
    const learned = new Map<string, SentStatement[]>();
    const first = await inTransaction(knex, connection, session, { lock: true, read: run.hasBookkeeping ?? false }, async (trx, opened) => {
      const { plan, applied } = await readPlan(trx, run, opened);
      const units = unitsOf(plan.steps, await Promise.all(plan.steps.map((name) => run.source.load(name))));
      const unit = units[0]?.transactional ? units.shift()! : { transactional: true, names: [], modules: [] };
      await runSteps(trx, run, unit, session, run.replay && plan.direction === 'up' ? learned : undefined);
      await record(trx, run, plan, applied, unit.names, [], session.caughtLockError);
      if (units.length === 0) await run.complete?.(trx);
      if (units.length > 0) {
        // Taken while the transaction's lock is still held, so no other run slips in between.
        await trx.raw('select pg_advisory_lock(?, ?)', key);
        sessionLocked = true;
      }
      return { plan, applied, rest: units, done: [...unit.names] };
    });
    // Only SQL that committed is replayed for other tenants.
    await learn(run.source, learned);
    const { plan, applied, rest } = first;
    for (const unit of rest) {
      if (unit.transactional) {
        await inTransaction(knex, connection, session, { lock: false, read: false }, async (trx) => {
          await runSteps(trx, run, unit, session);
          await record(trx, run, plan, applied, unit.names, first.done, session.caughtLockError);
        });
      } else {
        run.onWarning?.(
          `${unit.names[0]} has config.transaction = false: it runs alone, outside ${run.schema}'s transaction; if it fails, the migrations before it stay applied.`,
        );
        await runAlone(knex, connection, run, unit, session);
        await inTransaction(knex, connection, session, { lock: false, read: false }, (trx) => record(trx, run, plan, applied, unit.names, first.done));
      }
      first.done.push(...unit.names);
    }
    // A plan with a `transaction: false` migration commits in parts: `complete` comes after the last.
    if (rest.length > 0 && run.complete) await inTransaction(knex, connection, session, { lock: false, read: false }, (trx) => run.complete!(trx));
    finished = true;
    return { plan, via: rest.length === 0 ? 'modules' : 'units' };
  } finally {
    await endSession(knex, connection, run, session, { finished, sessionLocked });
  }
}

/**
 * What a tenant's run did to its pinned connection's session: the search_path it found there (the
 * run sets the tenant's path for the session, so that statements a migration sends after ending
 * the transaction itself still land in the tenant's schema, as with plain Knex), and every
 * statement the migrations sent.
 */
interface Session {
  schema: string;
  previousPath: string | undefined;
  sent: SentStatement[];
  /**
   * A lock timeout or deadlock that a statement of the migrations met and a migration caught without
   * a savepoint: the transaction was aborted by it, so the tenant's failure is that lock's (retried).
   */
  caughtLockError?: Error;
  /** The session's fingerprint (db/session-fingerprint.ts) before the run, and after its last transaction. */
  fingerprint: { before?: string; after?: string };
}

/**
 * Hands the connection back as the run found it. A migration that changed the session beyond its
 * transaction (a SET without LOCAL, a temporary table, a COMMIT of its own …) gets its connection
 * closed instead — the pool then opens a fresh one — so no other tenant's run inherits the change.
 * Otherwise the path is put back when a failure left it set (a rolled-back transaction already
 * undid it), and the session lock let go.
 */
async function endSession(
  knex: Knex,
  connection: unknown,
  run: SchemaRun,
  session: Session,
  state: { finished: boolean; sessionLocked: boolean },
): Promise<void> {
  const { before, after } = session.fingerprint;
  // What the statements show, else what the session itself shows (a function that called
  // set_config, dynamic SQL in a DO block …).
  const change =
    (session.sent.length > 0 ? await sessionChange(session.sent) : undefined) ??
    (before !== undefined && after !== undefined && before !== after ? `the session itself differs: before, ${before}; after, ${after}` : undefined);
  try {
    if (change) {
      warnOnce(run, `${run.schema}: a migration changed the database session beyond its transaction (${change}); its connection was closed so no other tenant inherits that.`);
      await (connection as { end(): Promise<void> }).end().catch(() => {});
      return;
    }
    if (!state.finished && session.previousPath !== undefined) {
      await knex.raw("select set_config('search_path', ?, false)", [session.previousPath]).connection(connection).catch(() => {});
    }
    if (state.sessionLocked) await knex.raw('select pg_advisory_unlock(?, ?)', schemaLockKey(run.schema)).connection(connection).catch(() => {});
  } finally {
    noteSchemasServed(connection); // recycled between tenants once it has served its share
    await knex.client.releaseConnection(connection);
  }
}

const warned = new WeakMap<MigrationSource, Set<string>>();

/** One warning per message and tree in a run (not one per tenant). */
function warnOnce(run: SchemaRun, message: string): void {
  const key = message.replace(run.schema, '');
  const seen = warned.get(run.source) ?? new Set<string>();
  warned.set(run.source, seen);
  if (seen.has(key)) return;
  seen.add(key);
  run.onWarning?.(message);
}

interface Opened {
  hasBookkeeping: boolean;
  /** The schema's applied migrations, when read with the lock. */
  applied?: AppliedMigration[];
}

/**
 * One transaction of the executor on the pinned connection: BEGIN with READ COMMITTED stated; then,
 * in one round trip, the schema's advisory lock (when asked), its search_path, the transaction id,
 * and — as a further statement, so that it reads with a snapshot taken after the lock was granted —
 * the schema's applied migrations. After Knex's COMMIT, one more round trip asks the server whether
 * that transaction id committed (a COMMIT answered by ROLLBACK is a failure, never a success) and
 * puts back the search_path the session had. When the connection is lost after the body finished —
 * at COMMIT, or before its answer came back — the server is asked on a fresh connection whether
 * the transaction committed, and the run reports that, not the lost connection.
 */
async function inTransaction<T>(
  knex: Knex,
  connection: unknown,
  session: Session,
  open: { lock: boolean; read: boolean },
  body: (trx: Knex.Transaction, opened: Opened) => Promise<T>,
): Promise<T> {
  let xid = '';
  let finished: { value: T } | undefined;
  let bodyRun: Promise<T> | undefined;
  try {
    await knex.transaction(
      async (trx) => {
        const opened = await openTransaction(trx, session.schema, open);
        session.previousPath ??= opened.previousPath;
        session.fingerprint.before ??= opened.fingerprint;
        xid = opened.xid;
        bodyRun = body(trx, opened).then((value) => (finished = { value }).value);
        bodyRun.catch(() => {}); // awaited below; Knex may settle the transaction before the body ends
        return bodyRun;
      },
      { ...READ_COMMITTED, connection },
    );
    // A migration that ends the transaction through Knex (knex.commit()) settles it while the body
    // still runs: the body's outcome, not the transaction's, is the tenant's.
    const value = await bodyRun!;
    const { rows } = await knex
      .raw<{ rows: { status: string | null; fingerprint: string }[] }>(
        `select txid_status(?::bigint) as status, set_config('search_path', ?, false) as path, ${sessionFingerprintSql(schemaLockKey(session.schema))}`,
        [xid, session.previousPath!],
      )
      .connection(connection);
    session.fingerprint.after = rows[0]?.fingerprint;
    if (rows[0]?.status !== 'committed') {
      throw new NotCommittedError(`${session.schema}: the server did not commit the transaction (status: ${rows[0]?.status ?? 'unknown'}); nothing of it was applied`);
    }
    return value;
  } catch (error) {
    // The body did not finish: its own error says why (a migration that called knex.rollback()
    // rejects Knex's transaction before the body can say that it did).
    if (finished === undefined) throw (await bodyRun?.then(() => undefined, (bodyError: unknown) => bodyError)) ?? error;
    // An answer from the server (a deferred constraint at COMMIT): the transaction did not commit.
    // Otherwise the connection went while committing: ask the server.
    if (error instanceof NotCommittedError || isServerError(error)) throw error;
    const outcome = await transactionOutcome(knex, xid);
    if (outcome === 'committed') return finished.value;
    const lost = error instanceof Error ? error.message : String(error);
    if (outcome === 'aborted') throw new NotCommittedError(`${session.schema}: the connection was lost at COMMIT (${lost}) and the server aborted the transaction; nothing of it was applied`);
    throw new CommitUnknownError(
      `${session.schema}: the connection was lost at COMMIT (${lost}) and the server could not be asked whether the transaction committed. ` +
        `Run status --verify: a tenant it shows drifted is caught up by migrate:tenants --verify.`,
    );
  }
}

const POINT = `select set_config('search_path', ?, false) as path, txid_current()::text as xid, to_regclass(?) is not null as "hasBookkeeping"`;
const POINT_WITH_LOCK = `select pg_advisory_xact_lock(?, ?)::text as locked, set_config('search_path', ?, false) as path,
                               txid_current()::text as xid, to_regclass(?) is not null as "hasBookkeeping"`;

async function openTransaction(
  trx: Knex.Transaction,
  schema: string,
  open: { lock: boolean; read: boolean },
): Promise<Opened & { xid: string; previousPath: string; fingerprint?: string }> {
  const bookkeeping = `${quoteIdentifier(schema)}.${MIGRATIONS_TABLE}`;
  // Values inlined by Knex's escaping: lock numbers and the schema's own name, never user input.
  // The path is set for the session (not LOCAL): a rollback undoes it, a commit keeps it until
  // inTransaction puts the previous one back.
  const point = open.lock
    ? trx.raw(POINT_WITH_LOCK, [...schemaLockKey(schema), searchPathFor(schema), bookkeeping])
    : trx.raw(POINT, [searchPathFor(schema), bookkeeping]);
  // The session's fingerprint is read in the first transaction of a tenant's run (the one that locks).
  const first = open.lock ? `, ${sessionFingerprintSql(schemaLockKey(schema))}` : '';
  // Sent after the statement that takes the lock, so it applies only once the lock is granted.
  const statements = [`select current_setting('search_path') as previous${first}`, point.toQuery(), timeoutsSql(currentAttempt().settings)];
  if (open.read) statements.push(trx.withSchema(schema).from(MIGRATIONS_TABLE).select('name', 'batch').orderBy('id').toQuery());
  const [previous, pointed, , applied] = (await trx.raw(statements.join(';\n'))) as unknown as [
    { rows: { previous: string; fingerprint?: string }[] },
    { rows: { xid: string; hasBookkeeping: boolean }[] },
    unknown,
    { rows: AppliedMigration[] } | undefined,
  ];
  return {
    previousPath: previous.rows[0]!.previous,
    fingerprint: previous.rows[0]!.fingerprint,
    xid: pointed.rows[0]!.xid,
    hasBookkeeping: pointed.rows[0]!.hasBookkeeping,
    ...(applied ? { applied: applied.rows } : {}),
  };
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

/**
 * Asked again after `prepare`, which may have created the schema, and after the lock: the answer of
 * the statement that took the lock was read before the lock was granted (relation-exists.ts).
 */
async function hasBookkeepingTable(trx: Knex.Transaction, schema: string): Promise<boolean> {
  return relationExists(trx, schema, MIGRATIONS_TABLE);
}

/**
 * `SET LOCAL`: the path ends with the transaction, so a pooled connection never carries one tenant's
 * path into another's query.
 */
export async function setLocalSearchPath(trx: Knex.Transaction, schema: string): Promise<void> {
  await trx.raw("select set_config('search_path', ?, true)", [searchPathFor(schema)]);
}

/**
 * Runs a unit's migrations in order, naming the one that fails. Notes every statement they send in
 * `session` (see {@link endSession}) and, with `learned`, what each migration sent, for {@link learn}.
 */
async function runSteps(knex: Knex, run: SchemaRun, unit: Unit, session: Session, learned?: Map<string, SentStatement[]>): Promise<void> {
  const log = logStatements(knex);
  session.caughtLockError = undefined; // per transaction: an earlier unit's, caught in a savepoint, committed
  const noteLockError = (error: unknown) => {
    if (lockFailureOf(error)?.retryable && error instanceof Error) session.caughtLockError ??= error;
  };
  knex.on('query-error', noteLockError);
  try {
    for (const [i, name] of unit.names.entries()) {
      const module = unit.modules[i]!;
      const step = run.direction === 'up' ? module.up : module.down;
      if (!step) throw new StepError(name, run.direction, new Error('the migration has no down function'));
      const from = log.sent.length;
      let failure: unknown;
      // Not sent at all: a ROLLBACK would leave the bookkeeping to commit without the work.
      const guard = (knex as Knex.Transaction).isTransaction ? await holdBackTransactionEnd(knex, UNDOES_TRANSACTION, undoRefusal) : undefined;
      try {
        await step.call(module, knex);
      } catch (error) {
        failure = error;
      } finally {
        guard?.stop();
      }
      if ((knex as Knex.Transaction).isCompleted?.()) {
        // Plain Knex ends up in the same place: nothing after that can run or be recorded in it.
        throw new StepError(name, run.direction, new EndedItsTransactionError(failure));
      }
      // Refused even when the migration caught the refusal: it meant to undo its work.
      if (guard?.heldBack !== undefined) throw new StepError(name, run.direction, new Error(undoRefusal(guard.heldBack.trim())));
      failure ??= tenantRoleRefusal(run.grants, log.sent.slice(from)); // per-tenant roles: src/roles/grants.ts
      if (failure !== undefined && codeOf(failure) === IN_FAILED_TRANSACTION && session.caughtLockError) failure = swallowedLockError(session.caughtLockError);
      if (failure !== undefined) {
        // After a COMMIT of its own, what it sent before that stays: the tenant is not untouched.
        const committed = await firstTransactionEnd(log.sent.slice(from), COMMITS_TRANSACTION);
        throw new StepError(name, run.direction, committed === undefined ? failure : new CommittedBeforeFailingError(committed, failure));
      }
      if (learned && !run.source.replays.has(name)) learned.set(name, log.sent.slice(from));
    }
  } finally {
    knex.off('query-error', noteLockError);
    log.stop();
    session.sent.push(...log.sent);
  }
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | undefined)?.code;
}

/** The lock error a migration caught, as the cause of the abort it left (so the tenant is re-queued). */
function swallowedLockError(lockError: Error): Error {
  return new Error(
    `${lockError.message} — caught inside the migration, but PostgreSQL had aborted the transaction; the tenant is tried again whole. ` +
      'To go on after a failed statement, send it inside a nested knex.transaction() (a savepoint).',
    { cause: lockError },
  );
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
  caughtLockError?: Error,
): Promise<void> {
  const state = stateAfter(plan, applied, [...before, ...names]);
  try {
    await applyTenantGrants(trx, run.grants);
    if (names.length === 0) {
      // Nothing to record — unless the registry disagrees with the schema's own bookkeeping (say a
      // tenant was migrated with stock Knex): correct it, or every run would find it "behind" again.
      if (run.finish && run.recorded && !sameState(run.recorded, state)) await run.finish(trx, state);
      return;
    }
    const bookkeeping = bookkeepingStatement(trx, run.schema, plan.direction, names, plan.batch);
    await (run.finish ? run.finish(trx, state, bookkeeping) : bookkeeping);
  } catch (error) {
    // 25P02: a statement of the migrations failed and the migration caught the error, but the
    // transaction was already aborted — name the migration, not the bookkeeping statement.
    if (codeOf(error) !== IN_FAILED_TRANSACTION || names.length === 0) throw error;
    const which = names.length === 1 ? names[0]! : `one of ${names.join(', ')}`;
    if (caughtLockError) throw new StepError(which, plan.direction, swallowedLockError(caughtLockError));
    throw new StepError(
      which,
      plan.direction,
      new Error(
        'an error inside it was caught, but PostgreSQL had already aborted the transaction, so nothing of it can be recorded (current transaction is aborted). ' +
          'Let the error through, or send the statement that may fail inside a nested knex.transaction() (a savepoint) and catch it there.',
      ),
    );
  }
}

/** SQLSTATE in_failed_sql_transaction: "current transaction is aborted, commands ignored until end of transaction block". */
const IN_FAILED_TRANSACTION = '25P02';

function sameState(a: AppliedState, b: AppliedState): boolean {
  return a.version === b.version && a.count === b.count;
}

/**
 * Runs a `transaction: false` migration outside any transaction, on the pinned connection that
 * holds the schema's session lock (a second connection would deadlock a single-session server such
 * as PGlite), with the schema's search_path for the duration and the session's own put back after.
 */
async function runAlone(knex: Knex, connection: unknown, run: SchemaRun, unit: Unit, session: Session): Promise<void> {
  const pinned = knexOnConnection(knex, connection);
  // No transaction to scope them to: the limits are set for the session, and reset after.
  await pinned.raw("select set_config('search_path', ?, false)", [searchPathFor(run.schema)]);
  await pinned.raw(timeoutsSql(currentAttempt().settings, false));
  try {
    await runSteps(pinned, run, unit, session);
  } catch (error) {
    throw notRetried(error, unit.names[0]!, session.sent.at(-1)?.sql);
  } finally {
    await pinned.raw("select set_config('search_path', ?, false)", [session.previousPath ?? '"$user", public']);
    await pinned.raw(RESET_TIMEOUTS_SQL);
  }
}

/**
 * A `transaction: false` migration held up by a lock is not tried again by the run: what it did
 * before the timeout committed (a CREATE INDEX CONCURRENTLY that times out leaves an INVALID index).
 */
function notRetried(error: unknown, name: string, lastSent: string | undefined): unknown {
  const failure = lockFailureOf(error);
  if (!failure) return error;
  // Judged by the statement that was stopped (the last one the migration sent), not by its file name.
  const index = /\bindex\s+concurrently\b/i.test(lastSent ?? '')
    ? ' A CREATE INDEX CONCURRENTLY stopped this way leaves an INVALID index: drop it (DROP INDEX CONCURRENTLY <name>; see pg_index.indisvalid) before the next run.'
    : '';
  return new NotRetryableError(
    `${name} runs outside a transaction (config.transaction = false), so it is not retried automatically (${failure.reason}: ${failure.error.message}).${index} Then run the command again.`,
    error,
  );
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
