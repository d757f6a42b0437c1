/**
 * Whether a table exists, read from pg_class with the statement's own MVCC snapshot.
 *
 * Not `to_regclass`: it looks the name up through the session's catalog cache, and a cache entry
 * that says "no such table" is only corrected when the session processes invalidation messages —
 * which taking an advisory lock does not do. So a session that looked the name up before another
 * session created the table, then waited on that session's advisory lock, can still be told "absent"
 * after the lock is granted and the table committed (seen: the master tree applied twice by two
 * concurrent migrate:master runs). Scanning pg_class in a new statement under READ COMMITTED sees
 * every commit before it started, and locking pg_class for the scan refreshes the cache too.
 */
import type { Knex } from 'knex';

export const RELATION_EXISTS_SQL = 'select exists (select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = ? and c.relname = ?) as found';

/**
 * @example
 *   if (!(await relationExists(trx, 'public', 'knex_migrations'))) await createBookkeeping(trx, 'public');
 */
export async function relationExists(knex: Knex | Knex.Transaction, schema: string, table: string): Promise<boolean> {
  const { rows } = await knex.raw<{ rows: { found: boolean }[] }>(RELATION_EXISTS_SQL, [schema, table]);
  return Boolean(rows[0]?.found);
}
