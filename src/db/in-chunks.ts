/**
 * Reading something from every tenant at once: one statement per chunk of schemas (a UNION ALL of
 * that many selects), a few chunks at a time. Statements, not one long transaction: each holds a
 * lock per table it reads until it ends, and 10,000 tables in one transaction would overflow the
 * server's lock table (max_locks_per_transaction).
 */
import type { Knex } from 'knex';
import pLimit from 'p-limit';
import { poolSizeOf } from './connection.ts';
import { noteSchemasServed } from './recycle-connections.ts';

/**
 * Schemas per statement when reading every tenant's bookkeeping. Not more: the backend plans the
 * whole UNION ALL at once, and at 500 its private memory peaked at 76 MB (PostgreSQL 15; 36 MB at
 * 200, for the same time over the fleet).
 */
export const SCHEMAS_PER_STATEMENT = 200;

/**
 * Runs `read` on each chunk of `items`, in a transaction of its own without parallel workers, on up
 * to four connections at once; the rows of every chunk, in chunk order.
 */
export async function readInChunks<T, Row>(knex: Knex, items: readonly T[], read: (trx: Knex.Transaction, chunk: readonly T[]) => Promise<Row[]>): Promise<Row[]> {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += SCHEMAS_PER_STATEMENT) chunks.push(items.slice(i, i + SCHEMAS_PER_STATEMENT));
  // Most of a chunk's cost is the server opening and planning 200 tables: chunks on a few
  // connections at once keep more than one server core busy.
  const limit = pLimit(Math.max(1, Math.min(4, poolSizeOf(knex))));
  const rows = await Promise.all(
    chunks.map((chunk) =>
      limit(async () => {
        // A connection of our own for the chunk, so that the schemas it opened count towards its
        // retirement (recycle-connections.ts): each table opened stays in the backend's caches.
        const connection: unknown = await knex.client.acquireConnection();
        try {
          return await knex.transaction(
            async (trx) => {
              // A parallel plan over 200 tiny tables costs more in starting workers (each opens every
              // table again) than the reads themselves: 2 to 7 times the serial time, measured on PG15.
              await trx.raw('set local max_parallel_workers_per_gather = 0');
              return read(trx, chunk);
            },
            { connection },
          );
        } finally {
          noteSchemasServed(connection, chunk.length);
          await knex.client.releaseConnection(connection);
        }
      }),
    ),
  );
  return rows.flat();
}
