/**
 * Fewer round trips per tenant. A migration's schema-builder calls await each statement (`create
 * table`, `create index`, `alter table … add constraint` …) although nobody reads their results;
 * sent one by one, with BEGIN, the lock and COMMIT around them, a tenant costs a dozen round trips,
 * and at thousands of tenants those waits are most of what a run spends beyond the DDL itself.
 *
 * On a tenant's pinned `pg` connection, `BEGIN` and plain DDL without bindings are held back and
 * travel together with the next statement: prefixed to it when it is a simple query (the lock
 * query, `COMMIT`), or sent just ahead of it otherwise (a `select` with bindings, an `insert`…).
 * Everything still runs in the same transaction, in the same order, so a tenant stays
 * all-or-nothing; `ROLLBACK` drops what was never sent. The hook sits on the connection, not on
 * Knex's client, so statements of nested transactions (savepoints) keep their order too.
 *
 * A held-back statement that fails is reported by the statement it travelled with; such errors
 * carry {@link HELD_BACK}, and the executor re-runs the tenant without holding anything back, to
 * name the migration at fault (see run-schema.ts).
 */

/** Statements whose result nobody reads; anything else runs at once, after what is held back. */
const HOLDABLE = /^\s*(begin|create|alter|drop|comment)\b/i;
const SIMPLE_STATEMENT = /^\s*(rollback)\b/i;

/** Set (true) on an error whose failing round trip included held-back statements. */
export const HELD_BACK = Symbol('tenant-migrate.heldBack');

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
const HELD_RESULT = Object.freeze({ command: 'HELD', rowCount: 0, rows: [], fields: [] });

export interface StatementBatch {
  /** Holds back statements as if the migration had sent them (a replayed migration). */
  hold(statements: readonly string[]): void;
  /**
   * Starts noting what reaches the connection; `stop()` says which statements were held back and
   * whether every one of them was (nothing read, nothing bound).
   */
  record(): { stop(): { statements: string[]; onlyHeld: boolean } };
  /** Puts the connection back as it was; anything still held back is dropped. */
  release(): void;
}

/**
 * Starts holding back BEGIN and DDL on a pinned pg connection (from `knex.client.acquireConnection()`).
 *
 * @example
 *   const batch = holdStatements(connection);
 *   try { await knex.transaction(async (trx) => { … }, { connection }); } finally { batch.release(); }
 */
export function holdStatements(rawConnection: unknown): StatementBatch {
  const connection = rawConnection as PgConnection;
  const original = connection.query;
  const hadOwnQuery = Object.hasOwn(connection, 'query');
  let held: string[] = [];
  let recording: { statements: string[]; onlyHeld: boolean } | undefined;

  const send = (text: string, heldCount: number, done: Callback): void => {
    original.call(connection, { text, values: [] }, (error: Error | null, result?: unknown) => {
      if (error) {
        if (heldCount > 0) {
          // The shape Knex gives query errors ("<sql> - <message>"), so describeError shows the SQL.
          error.message = `${text} - ${error.message}`;
          (error as Error & { [HELD_BACK]?: boolean })[HELD_BACK] = true;
        }
        return done(error);
      }
      // A multi-statement query answers with one result per statement: drop the held-back ones'.
      if (!Array.isArray(result) || heldCount === 0) return done(null, result);
      const own = result.slice(heldCount);
      done(null, own.length === 1 ? own[0] : own);
    });
  };

  const takeHeld = (): string[] => {
    const taken = held;
    held = [];
    return taken;
  };

  connection.query = function holdingQuery(config: unknown, callback?: unknown) {
    const { text, values } = (typeof config === 'string' ? { text: config } : (config ?? {})) as PgQueryConfig;
    const simple = (values?.length ?? 0) === 0;
    const holdable = typeof callback === 'function' && typeof text === 'string' && simple && HOLDABLE.test(text);
    if (recording && !holdable) recording.onlyHeld = false;
    if (typeof callback !== 'function' || typeof text !== 'string') return original.call(connection, config, callback);
    const done = callback as Callback;
    if (holdable) {
      const statement = text.replace(/;\s*$/, '');
      held.push(statement);
      recording?.statements.push(statement);
      process.nextTick(done, null, HELD_RESULT);
      return undefined;
    }
    if (simple && SIMPLE_STATEMENT.test(text)) {
      // Nothing held back needs to reach a transaction that is being thrown away.
      held = [];
      return original.call(connection, config, callback);
    }
    if (held.length === 0) return original.call(connection, config, callback);
    const before = takeHeld();
    if (simple) {
      send([...before, text].join(';\n'), before.length, done);
      return undefined;
    }
    let heldError: Error | null = null;
    send(before.join(';\n'), before.length, (error) => (heldError = error));
    // pg runs its queue in order: after a failed batch the transaction is aborted, so report the batch's error.
    return original.call(connection, config, (error: Error | null, result?: unknown) => done(heldError ?? error, result));
  };

  return {
    hold(statements) {
      held.push(...statements);
    },
    record() {
      const current = { statements: [] as string[], onlyHeld: true };
      recording = current;
      return {
        stop() {
          if (recording === current) recording = undefined;
          return current;
        },
      };
    },
    release() {
      held = [];
      if (hadOwnQuery) connection.query = original;
      else delete (connection as Partial<PgConnection>).query; // back to pg's own method
    },
  };
}

/** Whether an error came from a round trip that carried held-back statements. */
export function isHeldBackFailure(error: unknown): boolean {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return Boolean((error as { [HELD_BACK]?: boolean } | undefined)?.[HELD_BACK]) || (cause !== undefined && isHeldBackFailure(cause));
}
