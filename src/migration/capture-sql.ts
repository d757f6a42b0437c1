/**
 * The SQL migrations really send, without keeping anything: they run for one schema, under its
 * lock, inside a transaction that is then rolled back, and every statement is noted through Knex's
 * `query` event (sent-statements.ts) — so what is captured is what PostgreSQL was asked to run, not
 * a guess from the source. Used by `--dry-run` and by `lint`.
 */
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { READ_COMMITTED } from '../db/isolation.ts';
import { describeError } from './describe-error.ts';
import { setLocalSearchPath } from './run-schema.ts';
import { logStatements, type SentStatement } from './sent-statements.ts';
import { isTransactional, type MigrationSource } from './source.ts';

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
 * @throws an Error naming the migration that failed (what it sent up to the failure is in `into.sql`).
 */
export async function captureSql(knex: Knex, run: CaptureRun, into: Captured): Promise<void> {
  try {
    await knex.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?, ?)', [...schemaLockKey(run.schema)]);
      if (run.createSchema) await trx.raw('create schema ??', [run.schema]);
      await setLocalSearchPath(trx, run.schema);
      for (const name of run.steps) {
        const migration = await run.source.load(name);
        if (!isTransactional(migration)) {
          into.notCaptured[name] ??= 'config.transaction = false: it runs outside a transaction, so it cannot run in the rolled-back one';
          continue;
        }
        const log = logStatements(trx);
        try {
          await (run.direction === 'up' ? migration.up(trx) : migration.down?.(trx));
        } catch (error) {
          throw new Error(`${name} (${run.direction}) failed: ${describeError(error)}`, { cause: error });
        } finally {
          log.stop();
          into.sql[name] ??= log.sent.map((statement) => inline(knex, statement));
        }
      }
      throw new RolledBack();
    }, READ_COMMITTED);
  } catch (error) {
    if (!(error instanceof RolledBack)) throw error;
  }
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
