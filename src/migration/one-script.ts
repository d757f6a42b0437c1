/**
 * The fast path of a fleet run: one round trip per tenant.
 *
 * Once a tenant of this process has run a migration and it sent nothing but plain DDL, its
 * statements are known (`source.replays`, see run-schema.ts). A later tenant whose pending
 * migrations are all known, and whose state the caller can predict (the registry says what it has
 * applied; a new tenant has nothing), is migrated with ONE simple-protocol script — what the
 * plain-SQL floor of `pnpm bench` sends:
 *
 *   begin; <advisory lock>; <search_path>; <guard>; <set-up>; <DDL…>; <bookkeeping + registry>; commit
 *
 * The guard runs under the lock and raises unless the schema is in the predicted state, so a
 * concurrent run, a stale registry row or a hand-made change can never make a migration apply
 * twice: the script rolls back whole, and the caller's ordinary path (which reads the state under
 * the lock) takes over. Any other failure falls back the same way, and the ordinary path then
 * names the migration at fault. Either way the tenant is all-or-nothing: one transaction.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { quoteIdentifier, quoteLiteral, searchPathFor } from '../db/quote.ts';
import { bookkeepingStatement, MIGRATIONS_TABLE } from './bookkeeping.ts';
import { stateAfter, type AppliedState, type Plan } from './plan.ts';
import type { MigrationSource } from './source.ts';

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
 * The SQLSTATE the guard raises. {@link runAsOneScript} falls back on any error alike; the code
 * only makes a guard failure recognisable in the server's log.
 */
const GUARD_FAILED = 'TMXPT';
const DOLLAR_TAG = '$tm_guard$';

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

export interface OneScriptRun {
  schema: string;
  source: MigrationSource;
  expect: Expectation;
  /** As in {@link import('./run-schema.ts').SchemaRun.finish}: the registry update around the bookkeeping. */
  finish?(knex: Knex, state: AppliedState, bookkeeping?: Knex.QueryBuilder): Knex.QueryBuilder;
}

interface PgClient {
  query(text: string): Promise<unknown>;
}

/**
 * Applies the pending migrations in one script, or returns undefined — without a trace in the
 * database — when it cannot: a pending migration's DDL is not known yet, the prediction was wrong,
 * or the script failed. The caller then takes its ordinary path.
 */
export async function runAsOneScript(knex: Knex, run: OneScriptRun): Promise<Plan | undefined> {
  const applied = new Set(run.expect.applied);
  const steps = run.source.names.filter((name) => !applied.has(name));
  const ddl: string[] = [];
  for (const name of steps) {
    const known = run.source.replays.get(`up:${name}`);
    if (!known) return undefined;
    ddl.push(...known);
  }
  const plan: Plan = { direction: 'up', steps, batch: 0 };
  const script = buildScript(knex, run, plan, ddl);

  const connection = (await knex.client.acquireConnection()) as PgClient;
  try {
    await connection.query(script);
    return plan;
  } catch {
    // The script stopped at its first error inside the transaction: close it before the
    // connection goes back to the pool, then let the ordinary path redo (or report) the tenant.
    await connection.query('rollback').catch(() => {});
    return undefined;
  } finally {
    await knex.client.releaseConnection(connection);
  }
}

function buildScript(knex: Knex, run: OneScriptRun, plan: Plan, ddl: readonly string[]): string {
  if (run.expect.holds.includes(DOLLAR_TAG)) throw new Error(`a guard must not contain ${DOLLAR_TAG}`);
  const [lockClass, lockId] = schemaLockKey(run.schema);
  // The batch number comes from the table itself: the prediction says which migrations are
  // applied, not under which batches.
  const batch = knex.raw('(select coalesce(max(batch), 0) + 1 from ??.??)', [run.schema, MIGRATIONS_TABLE]);
  const bookkeeping = bookkeepingStatement(knex, run.schema, 'up', plan.steps, batch);
  const state = stateAfter(plan, run.expect.applied.map((name) => ({ name, batch: 0 })));
  const record = run.finish ? run.finish(knex, state, bookkeeping) : bookkeeping;
  return [
    'begin',
    `select pg_advisory_xact_lock(${lockClass}, ${lockId})`,
    `select set_config('search_path', ${quoteLiteral(searchPathFor(run.schema))}, true)`,
    `do ${DOLLAR_TAG} begin if not (${run.expect.holds}) then ` +
      `raise exception 'tenant-migrate: % is not in the state the run expected', ${quoteLiteral(run.schema)} using errcode = '${GUARD_FAILED}'; ` +
      `end if; end ${DOLLAR_TAG}`,
    ...(run.expect.setUp ?? []),
    ...ddl,
    record.toQuery(),
    'commit',
  ].join(';\n');
}
