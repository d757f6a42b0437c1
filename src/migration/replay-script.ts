/**
 * The fast path of a fleet run: one round trip per tenant.
 *
 * Once a tenant of this process has run a migration as a module and every statement it sent was
 * plain DDL (replayable.ts), its SQL is known (`source.replays`). A later tenant whose pending
 * migrations are all known, and whose state the caller can predict (the registry says what it has
 * applied; a new tenant has nothing), is migrated with ONE simple-protocol script — what the
 * plain-SQL floor of `pnpm bench` sends:
 *
 *   begin isolation level read committed; <advisory lock>; <search_path>; <guard>; <set-up>;
 *   <DDL…>; <bookkeeping + registry>; commit
 *
 * The guard runs under the lock and raises unless the schema is in the predicted state, so a
 * concurrent run, a stale registry row or a hand-made change can never make a migration apply
 * twice: the script rolls back whole, and the caller's ordinary path (which reads the state under
 * the lock) takes over. Any other failure falls back the same way, and the ordinary path then names
 * the migration at fault. Either way the tenant is all-or-nothing: one transaction — and it counts
 * as done only when the server answered the script's COMMIT with COMMIT.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { noteSchemasServed } from '../db/recycle-connections.ts';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { quoteIdentifier, quoteLiteral, searchPathFor } from '../db/quote.ts';
import { sessionFingerprintSql } from '../db/session-fingerprint.ts';
import { isServerError } from '../db/transaction-outcome.ts';
import { currentAttempt, timeoutsSql } from '../db/lock-settings.ts';
import { lockFailureOf } from '../db/lock-errors.ts';
import { bookkeepingStatement, MIGRATIONS_TABLE } from './bookkeeping.ts';
import { stateAfter, type AppliedState, type Plan } from './plan.ts';
import type { MigrationSource } from './source.ts';
import type { TenantGrants } from '../roles/grants.ts';

/** What a caller predicts about a schema, and how to check it in the database. */
export interface Expectation {
  /** The migrations the schema should have applied (names, any order); [] for a new schema. */
  applied: readonly string[];
  /** A boolean SQL expression that holds only when the prediction is right (checked under the lock). */
  holds: string;
  /** Statements that run after the guard and before the migrations (e.g. create the schema). */
  setUp?: readonly string[];
}

/**
 * The SQLSTATE the guard raises. {@link runReplayScript} falls back on any error alike; the code
 * only makes a guard failure recognisable in the server's log.
 */
const GUARD_FAILED = 'TMXPT';
const DOLLAR_TAG = '$tm_guard$';

/**
 * Between statements: a newline first, so that a statement ending in a `--` comment cannot swallow
 * the separator (every recorded statement was parsed whole by PostgreSQL's parser, so nothing else
 * of it — a string, a dollar-quoted body, a block comment — is left open at its end).
 */
const SEPARATOR = '\n;\n';

/** How the session fingerprint reads in a script (db/session-fingerprint.ts): present only with a DO block. */
const FINGERPRINT_ALIAS = ') as fingerprint';

/** First line of every script: names the fast path in pg_stat_activity and the server's log. */
const REPLAY_MARKER = '-- tenant-migrate: replay of learned DDL';

/** Predicts that a schema has applied exactly `names` (its `knex_migrations`, compared by digest). */
export function expectApplied(schema: string, names: readonly string[]): Expectation {
  const digest = createHash('md5').update([...names].sort().join('/')).digest('hex');
  return {
    applied: names,
    holds: `(select md5(coalesce(string_agg(name, '/' order by name), '')) from ${quoteIdentifier(schema)}.${MIGRATIONS_TABLE}) = '${digest}'`,
  };
}

/** Predicts that a schema does not exist yet; `setUp` creates it (and whatever goes with it). */
export function expectNewSchema(schema: string, setUp: readonly string[]): Expectation {
  return {
    applied: [],
    holds: `not exists (select 1 from pg_catalog.pg_namespace where nspname = ${quoteLiteral(schema)})`,
    setUp,
  };
}

export interface ReplayRun {
  schema: string;
  source: MigrationSource;
  expect: Expectation;
  /** As in {@link import('./run-schema.ts').SchemaRun.finish}: the registry update around the bookkeeping. */
  finish?(knex: Knex, state: AppliedState, bookkeeping?: Knex.QueryBuilder): Knex.QueryBuilder;
  /** The tenant role's grants (src/roles/grants.ts), after the DDL and before the bookkeeping. */
  grants?: TenantGrants;
}

interface PgResult {
  command?: string | null;
  rows: unknown[];
}
interface PgClient {
  query(text: string): Promise<PgResult | PgResult[]>;
  end(): Promise<void>;
}

/**
 * The script for `run`, or undefined when a pending migration's SQL is not known (yet).
 */
export function replayScript(knex: Knex, run: ReplayRun): { plan: Plan; script: string } | undefined {
  const applied = new Set(run.expect.applied);
  const steps = run.source.names.filter((name) => !applied.has(name));
  const ddl: string[] = [];
  for (const name of steps) {
    const known = run.source.replays.get(name);
    if (!known) return undefined;
    ddl.push(...known);
  }
  const plan: Plan = { direction: 'up', steps, batch: 0 };
  return { plan, script: buildScript(knex, run, plan, ddl) };
}

/**
 * Sends the script: `committed`, or `not-committed` — without a trace in the database — when the
 * prediction was wrong, a statement failed, or the server did not answer COMMIT with COMMIT; or
 * `connection-lost` when the connection went before the answer came, so only the server knows
 * whether it committed. The caller then takes its ordinary path, which reads the tenant's state.
 * A lock timeout, deadlock or cancel is thrown instead (after the rollback): see db/lock-errors.ts.
 */
export async function runReplayScript(knex: Knex, script: string): Promise<'committed' | 'not-committed' | 'connection-lost'> {
  const connection = (await knex.client.acquireConnection()) as PgClient;
  currentAttempt().onBackend?.(backendPidOf(connection));
  let outcome: 'committed' | 'not-committed' | 'connection-lost' = 'not-committed';
  let heldUp: unknown;
  let sessionKept = false;
  try {
    const results = [await connection.query(script)].flat();
    const fingerprints = results.map((result) => (result.rows[0] as { fingerprint?: string } | undefined)?.fingerprint).filter((text) => text !== undefined);
    const commit = fingerprints.length > 0 ? results.at(-2) : results.at(-1);
    if (commit?.command === 'COMMIT') outcome = 'committed';
    sessionKept = outcome === 'committed' && (fingerprints.length === 0 || (fingerprints.length === 2 && fingerprints[0] === fingerprints[1]));
  } catch (error) {
    // The script stopped at its first error inside the transaction (closed below), or the connection went.
    if (!isServerError(error)) outcome = 'connection-lost';
    // Held up by a lock (or stopped by a limit): the modules route would only wait again — the
    // fleet re-queues the tenant instead (issue #20).
    else if (lockFailureOf(error)) heldUp = error;
  } finally {
    // Before the connection goes back to the pool, no transaction may be left open on it, nor any
    // session state the script left (a failed script may have left a session lock): else it is closed.
    if (outcome !== 'committed') await connection.query('rollback').catch(() => {});
    // Held up by a lock: the rollback undid everything a script without a DO block can do to the
    // session (its lock, path and limits are the transaction's), so the connection is kept — a
    // tenant retried again and again would otherwise cost a connection each time.
    if (heldUp !== undefined && !script.includes(FINGERPRINT_ALIAS)) sessionKept = true;
    if (!sessionKept) await connection.end().catch(() => {});
    // Recycled between tenants once it has served its share; a script that did not commit is
    // followed by the modules route, which counts the tenant.
    if (outcome === 'committed') noteSchemasServed(connection);
    await knex.client.releaseConnection(connection);
  }
  if (heldUp !== undefined) throw heldUp;
  return outcome;
}

/**
 * The server process behind a pooled pg connection — the `processID` Knex's own pg dialect cancels
 * queries by (`cancelQuery`); undefined on a connection that has none.
 */
export function backendPidOf(connection: unknown): number {
  return (connection as { processID?: number }).processID ?? 0;
}

function buildScript(knex: Knex, run: ReplayRun, plan: Plan, ddl: readonly string[]): string {
  if (run.expect.holds.includes(DOLLAR_TAG)) throw new Error(`a guard must not contain ${DOLLAR_TAG}`);
  const [lockClass, lockId] = schemaLockKey(run.schema);
  // The batch number comes from the table itself: the prediction says which migrations are
  // applied, not under which batches.
  const batch = knex.raw('(select coalesce(max(batch), 0) + 1 from ??.??)', [run.schema, MIGRATIONS_TABLE]);
  const bookkeeping = bookkeepingStatement(knex, run.schema, 'up', plan.steps, batch);
  const state = stateAfter(plan, run.expect.applied.map((name) => ({ name, batch: 0 })));
  const record = run.finish ? run.finish(knex, state, bookkeeping) : bookkeeping;
  // Plain DDL leaves nothing in the session; a DO block runs code that may (more than its text
  // shows): then the session's fingerprint is read before and after (db/session-fingerprint.ts), and
  // a connection whose session changed is closed, not handed to the next tenant.
  const fingerprint = ddl.some((sql) => /\bdo\b/i.test(sql)) ? [`select ${sessionFingerprintSql([lockClass, lockId])}`] : [];
  const statements = [
    ...fingerprint,
    // READ COMMITTED stated, not assumed: the guard must see what committed before the lock was granted.
    'begin isolation level read committed',
    `select pg_advisory_xact_lock(${lockClass}, ${lockId})`,
    // After the tool's own lock (which keeps waiting): the tables' locks wait at most this long.
    timeoutsSql(currentAttempt().settings),
    `select set_config('search_path', ${quoteLiteral(searchPathFor(run.schema))}, true)`,
    `do ${DOLLAR_TAG} begin if not (${run.expect.holds}) then ` +
      `raise exception 'tenant-migrate: % is not in the state the run expected', ${quoteLiteral(run.schema)} using errcode = '${GUARD_FAILED}'; ` +
      `end if; end ${DOLLAR_TAG}`,
    ...(run.expect.setUp ?? []),
    ...ddl,
    ...(run.grants?.statements ?? []),
    record.toQuery(),
    'commit',
    ...fingerprint,
  ];
  return `${REPLAY_MARKER}\n${statements.join(SEPARATOR)}`;
}
