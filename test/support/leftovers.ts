/**
 * What an executor must never leave behind: a session of the database `idle in transaction` (a
 * connection back in the pool with its transaction open, still holding its locks) or an advisory
 * lock still held (a tenant nobody can migrate until that session ends). Call it in `afterEach` of
 * any test that runs the executor.
 *
 * @example
 *   afterEach(() => expectNoLeftovers(db.knex()));
 */
import type { Knex } from 'knex';
import { expect } from 'vitest';

export interface Leftovers {
  /** Sessions of this database, other than the caller's, that are `idle in transaction` (pid: last statement). */
  idleInTransaction: string[];
  /** Advisory locks held in this database (pid: lock key). */
  advisoryLocks: string[];
}

/** Reads the leftovers of `knex`'s database (see {@link expectNoLeftovers}). */
export async function findLeftovers(knex: Knex): Promise<Leftovers> {
  const { idle, locks } = await readLeftovers(knex);
  return {
    idleInTransaction: idle.map((row) => `${row.pid}: ${row.query}`),
    advisoryLocks: locks.map((row) => `${row.pid}: (${row.classid}, ${row.objid})${row.granted ? '' : ' waiting'}`),
  };
}

async function readLeftovers(knex: Knex) {
  const idle = await knex.raw<{ rows: { pid: number; query: string }[] }>(
    `select pid, query from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and state in ('idle in transaction', 'idle in transaction (aborted)')
      order by pid`,
  );
  const locks = await knex.raw<{ rows: { pid: number; classid: string; objid: string; granted: boolean }[] }>(
    `select pid, classid::int8::text as classid, objid::int8::text as objid, granted from pg_locks
      where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())
      order by pid`,
  );
  return { idle: idle.rows, locks: locks.rows };
}

/**
 * Ends the sessions that hold leftovers (see {@link findLeftovers}) — after a test has recorded
 * them — so that one broken case does not leave later tests waiting on its locks. The pool notices
 * the terminated connections and replaces them.
 */
export async function clearLeftovers(knex: Knex): Promise<void> {
  const { idle, locks } = await readLeftovers(knex);
  const pids = [...new Set([...idle.map((row) => row.pid), ...locks.filter((row) => row.granted).map((row) => row.pid)])];
  if (pids.length > 0) await knex.raw('select pg_terminate_backend(pid) from unnest(?::int[]) as pid', [pids]);
}

/** Fails the test when a session is left `idle in transaction` or an advisory lock is held. */
export async function expectNoLeftovers(knex: Knex): Promise<void> {
  expect(await findLeftovers(knex), 'sessions left idle in transaction / advisory locks left held').toEqual({
    idleInTransaction: [],
    advisoryLocks: [],
  });
}
