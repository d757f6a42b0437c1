/**
 * The SQL migrations really send, without keeping anything: they run for one schema, under its
 * lock, inside a transaction that is then rolled back, and every statement is noted through Knex's
 * `query` event (sent-statements.ts) — so what is captured is what PostgreSQL was asked to run, not
 * a guess from the source. Used by `--dry-run` and by `lint`.
 */
import { currentAttempt, timeoutsSql } from '../db/lock-settings.ts';
import type { Knex } from 'knex';
import { noteSchemasServed } from '../db/recycle-connections.ts';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { READ_COMMITTED } from '../db/isolation.ts';
import { sessionFingerprintSql } from '../db/session-fingerprint.ts';
import { describeError } from './describe-error.ts';
import { setLocalSearchPath } from './run-schema.ts';
import { logStatements, type SentStatement } from './sent-statements.ts';
import { isTransactional, type MigrationSource } from './source.ts';
import { ENDS_TRANSACTION, holdBackTransactionEnd } from './transaction-end.ts';

export interface CaptureRun {
  schema: string;
  source: MigrationSource;
  direction: 'up' | 'down';
  steps: readonly string[];
  /** Create the schema first (inside the same transaction): a new org, or a scratch schema. */
  createSchema?: boolean;
}

export interface Captured {
  /** Per migration: the statements it sent, bindings inlined. A failing migration's are kept too. */
  sql: Record<string, string[]>;
  /** Migrations that could not run in the rolled-back transaction, and why. */
  notCaptured: Record<string, string>;
}

class RolledBack extends Error {}

/**
 * Runs `steps` and rolls everything back. A migration already in `into.sql` is not noted again.
 *
 * Two kinds of migration cannot be captured, and the steps after them are then not run either (they
 * may need what those did): a `transaction: false` one — unless nothing after it fails — and one that
 * ends the transaction itself (`COMMIT`, as in the "create index concurrently" pattern): that
 * statement is never sent, since it would keep everything before it.
 * @throws an Error naming the migration that failed (what it sent up to the failure is in `into.sql`).
 */
export async function captureSql(knex: Knex, run: CaptureRun, into: Captured): Promise<void> {
  // A connection of its own, rolled back whatever happened: a migration that ends the transaction
  // through Knex (knex.commit(), held back below) leaves Knex thinking it is over while the
  // server's transaction is still open on the connection. (From the pool: the embedded server
  // serves one connection at a time.) Its session's fingerprint is read before and after: the
  // migrations may leave something in it (a PREPARE, a setting), and then it is closed.
  const connection: unknown = await knex.client.acquireConnection();
  const fingerprint = () =>
    knex
      .raw<{ rows: { fingerprint: string }[] }>(`select ${sessionFingerprintSql(schemaLockKey(run.schema))}`)
      .connection(connection)
      .then(({ rows }) => rows[0]?.fingerprint, () => undefined);
  const before = await fingerprint();
  let running: { name: string; guard: { heldBack: string | undefined } } | undefined;
  try {
    await knex.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?, ?)', [...schemaLockKey(run.schema)]);
      // A dry run's DDL takes the same table locks on a live tenant: it waits no longer than a run would.
      await trx.raw(timeoutsSql(currentAttempt().settings));
      if (run.createSchema) await trx.raw('create schema ??', [run.schema]);
      await setLocalSearchPath(trx, run.schema);
      let skipped: string | undefined; // the first transaction:false migration of this run
      for (const [index, name] of run.steps.entries()) {
        const migration = await run.source.load(name);
        if (!isTransactional(migration)) {
          into.notCaptured[name] ??= 'config.transaction = false: it runs outside a transaction, so it cannot run in the rolled-back one';
          skipped ??= name;
          continue;
        }
        // Registered before the log, so a statement held back is not shown as sent.
        const guard = await holdBackTransactionEnd(trx, ENDS_TRANSACTION, (sql) => `a dry run does not send "${sql}": it would end the transaction that keeps the dry run from changing anything`);
        running = { name, guard };
        const log = logStatements(trx);
        let failure: unknown;
        try {
          await (run.direction === 'up' ? migration.up(trx) : migration.down?.(trx));
        } catch (error) {
          failure = error;
        } finally {
          log.stop();
          guard.stop();
          into.sql[name] ??= log.sent.map((statement) => inline(knex, statement));
        }
        const why =
          guard.heldBack !== undefined
            ? heldBackWhy(guard.heldBack)
            : failure !== undefined && skipped !== undefined
              ? `it failed in the rolled-back transaction (${describeError(failure)}), probably because it needs ${skipped}, which a dry run does not run`
              : undefined;
        if (why === undefined) {
          if (failure !== undefined) throw new Error(`${name} (${run.direction}) failed: ${describeError(failure)}`, { cause: failure });
          continue;
        }
        notCapturedFrom(index, why);
        break;
      }
      throw new RolledBack();
    }, { ...READ_COMMITTED, connection });
  } catch (error) {
    if (error instanceof RolledBack) return;
    // knex.commit() held back: Knex settles the transaction with that refusal while the migration runs on.
    if (running?.guard.heldBack !== undefined) return notCapturedFrom(run.steps.indexOf(running.name), heldBackWhy(running.guard.heldBack));
    throw error;
  } finally {
    await knex.raw('rollback').connection(connection).catch(() => {});
    const after = await fingerprint();
    if (before === undefined || after !== before) await (connection as { end(): Promise<void> }).end().catch(() => {});
    noteSchemasServed(connection); // recycled between tenants once it has served its share
    await knex.client.releaseConnection(connection);
  }

  function notCapturedFrom(index: number, why: string): void {
    const name = run.steps[index]!;
    into.notCaptured[name] ??= why;
    for (const later of run.steps.slice(index + 1)) into.notCaptured[later] ??= `not run: it comes after ${name}, which the dry run could not run to its end`;
  }
}

function heldBackWhy(statement: string): string {
  return `it ends the transaction itself (${statement.trim()}): the dry run did not send that statement, which would have kept everything before it, and stopped this migration there`;
}

/**
 * A statement as it would run: the driver's `$n` placeholders replaced by the bindings, escaped by
 * Knex's own literal escaping.
 */
function inline(knex: Knex, statement: SentStatement): string {
  if (statement.bindings.length === 0) return statement.sql;
  return statement.sql.replace(/\$(\d+)\b/g, (placeholder, index: string) => {
    const value = statement.bindings[Number(index) - 1];
    return value === undefined && Number(index) > statement.bindings.length ? placeholder : knex.raw('?', [value as Knex.Value]).toQuery();
  });
}
