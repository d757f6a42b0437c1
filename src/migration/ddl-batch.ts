/**
 * One round trip for a migration's DDL. A migration's schema-builder calls await each statement
 * (`create table`, `create index`, `alter table … add constraint` …) although nobody reads their
 * results; sent one by one, a tenant costs a dozen round trips, each with its own client and server
 * overhead — at thousands of tenants, the largest cost after the DDL itself.
 *
 * Inside a tenant's transaction, statements that are plain DDL without bindings are held back and
 * sent together, as one simple-protocol query, ahead of the next statement that returns something
 * (a `select`, an `insert`, `hasTable`, a savepoint, the commit…) and at the end of each migration.
 * They run in the same transaction, in the same order, so a tenant stays all-or-nothing; an error
 * still names the migration it came from, with PostgreSQL's position pointing into the batch.
 *
 * The hook sits on the transaction's pinned `pg` connection, not on Knex's client, so statements
 * of nested transactions (savepoints) queue behind the held-back DDL in order too.
 */
import type { Knex } from 'knex';

/** Statements whose result nobody reads; anything else runs at once, after what is held back. */
const DEFERRABLE = /^\s*(create|alter|drop|comment)\s/i;

interface PgQueryConfig {
  text?: string;
  values?: readonly unknown[];
}
type Callback = (error: Error | null, result?: unknown) => void;
type PgQuery = (config: unknown, callback?: unknown) => unknown;
interface PgConnection {
  query: PgQuery;
}

/** An empty result of the shape Knex's pg dialect expects back from a statement. */
const DEFERRED_RESULT = Object.freeze({ command: 'DEFERRED', rowCount: 0, rows: [], fields: [] });

export interface DdlBatch {
  /** Sends the statements held back so far (at the end of each migration). */
  flush(): Promise<void>;
  /** Puts the connection back as it was (in `finally`). */
  release(): void;
}

/**
 * Starts batching DDL on a transaction's connection.
 *
 * @example
 *   const batch = await batchDdl(trx);
 *   try { await migration.up(trx); await batch.flush(); } finally { batch.release(); }
 */
export async function batchDdl(trx: Knex.Transaction): Promise<DdlBatch> {
  const connection = (await trx.client.acquireConnection()) as PgConnection;
  const original = connection.query;
  const hadOwnQuery = Object.hasOwn(connection, 'query');
  let pending: string[] = [];

  /** Queues the held-back statements; pg runs its queue in order, so they precede what follows. */
  const sendPending = (onDone: (error: Error | null) => void): void => {
    const sql = pending.join(';\n');
    pending = [];
    original.call(connection, { text: sql, values: [] }, (error: Error | null) => {
      // The shape Knex gives query errors ("<sql> - <message>"), so describeError shows the SQL.
      if (error) error.message = `${sql} - ${error.message}`;
      onDone(error);
    });
  };

  connection.query = function batchingQuery(config: unknown, callback?: unknown) {
    const { text, values } = (config ?? {}) as PgQueryConfig;
    if (typeof callback !== 'function' || typeof text !== 'string') return original.call(connection, config, callback);
    const done = callback as Callback;
    if (DEFERRABLE.test(text) && (values?.length ?? 0) === 0) {
      pending.push(text);
      process.nextTick(done, null, DEFERRED_RESULT);
      return undefined;
    }
    if (pending.length === 0) return original.call(connection, config, callback);
    let batchError: Error | null = null;
    sendPending((error) => (batchError = error));
    // After a failed batch the transaction is aborted; report the batch's error, not the echo.
    return original.call(connection, config, (error: Error | null, result?: unknown) => done(batchError ?? error, result));
  };

  return {
    flush: () =>
      new Promise<void>((resolve, reject) => {
        if (pending.length === 0) return resolve();
        sendPending((error) => (error ? reject(error) : resolve()));
      }),
    release() {
      if (hadOwnQuery) connection.query = original;
      else delete (connection as Partial<PgConnection>).query; // back to pg's own method
    },
  };
}
