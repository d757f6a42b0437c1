/**
 * What a migration sends, seen through Knex's own `query` event. Knex emits it for every statement
 * a transaction sends — and a savepoint inside it, whose events bubble up to the outer transaction —
 * with the final SQL text, its bindings and its query options, streams included. Listening changes
 * nothing on the wire and works with whatever Knex instance a library caller brings: no driver
 * object is patched, no statement is held back or rewritten.
 */
import type { Knex } from 'knex';

export interface SentStatement {
  sql: string;
  bindings: readonly unknown[];
  /** pg query options the statement carried (`rowMode`, `types`, `name` …). */
  options: Readonly<Record<string, unknown>>;
}

export interface StatementLog {
  /** Statements sent so far. */
  readonly sent: readonly SentStatement[];
  stop(): void;
}

interface QueryEvent {
  sql?: unknown;
  bindings?: unknown;
  options?: unknown;
}

/**
 * Starts noting every statement `trx` (a transaction, or a Knex instance) sends, until `stop()`.
 *
 * @example
 *   const log = logStatements(trx);
 *   await migration.up(trx);
 *   log.stop();
 *   log.sent; // [{ sql: 'create table "projects" (…)', bindings: [], options: {} }, …]
 */
export function logStatements(trx: Knex | Knex.Transaction): StatementLog {
  const sent: SentStatement[] = [];
  const listener = (event: QueryEvent) => {
    sent.push({
      sql: typeof event.sql === 'string' ? event.sql : '',
      bindings: Array.isArray(event.bindings) ? event.bindings : [],
      options: event.options && typeof event.options === 'object' ? (event.options as Record<string, unknown>) : {},
    });
  };
  trx.on('query', listener);
  return {
    sent,
    stop: () => void trx.off('query', listener),
  };
}
