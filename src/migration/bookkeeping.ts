/**
 * Per-schema bookkeeping in Knex's own format (`knex_migrations` and `knex_migrations_lock`), so the
 * stock Knex migrator can read any tenant's state. tenant-migrate never uses the lock row: it locks
 * with advisory locks, which a crash cannot leave behind.
 */
import type { Knex } from 'knex';
import { readInChunks } from '../db/in-chunks.ts';
import type { AppliedMigration } from './plan.ts';

export const MIGRATIONS_TABLE = 'knex_migrations';
export const MIGRATIONS_LOCK_TABLE = 'knex_migrations_lock';

/** Creates both tables unconditionally (a brand-new schema has neither). Same DDL as Knex's. */
export async function createBookkeeping(trx: Knex.Transaction | Knex, schema: string): Promise<void> {
  await trx.raw(bookkeepingDdl(trx, schema));
}

/**
 * The SQL that creates a schema's bookkeeping tables (identifiers quoted by Knex, nothing bound).
 * The lock row is inserted with its `index` spelled out (1, what Knex's own first insert gets):
 * on Citus this INSERT … SELECT runs on the worker holding the schema, and a worker cannot take
 * the next value of an `int` serial sequence (only of bigint ones).
 */
export function bookkeepingDdl(knex: Knex, schema: string): string {
  return knex
    .raw(
      `create table if not exists ??.?? (id serial primary key, name varchar(255), batch integer, migration_time timestamptz);
       create table if not exists ??.?? ("index" serial primary key, is_locked integer);
       insert into ??.?? ("index", is_locked) select 1, 0 where not exists (select 1 from ??.??)`,
      [schema, MIGRATIONS_TABLE, schema, MIGRATIONS_LOCK_TABLE, schema, MIGRATIONS_LOCK_TABLE, schema, MIGRATIONS_LOCK_TABLE],
    )
    .toQuery();
}

export async function readApplied(trx: Knex.Transaction | Knex, schema: string): Promise<AppliedMigration[]> {
  return (await trx.withSchema(schema).from(MIGRATIONS_TABLE).select('name', 'batch').orderBy('id')) as AppliedMigration[];
}

/**
 * The statement that records a step of a plan: inserting applied migrations (up) or deleting
 * rolled-back ones (down), in one statement. Returned unexecuted, so the caller can run it on its
 * own or fold it into another statement (the registry update) and save a round trip.
 */
export function bookkeepingStatement(
  trx: Knex,
  schema: string,
  direction: 'up' | 'down',
  names: readonly string[],
  batch: number | Knex.Raw,
): Knex.QueryBuilder {
  const table = trx.withSchema(schema).from(MIGRATIONS_TABLE);
  if (direction === 'up') return table.insert(names.map((name) => ({ name, batch, migration_time: trx.fn.now() })));
  return table.whereIn('name', [...names]).delete();
}

/**
 * Many schemas' applied migrations, read without a lock a chunk of schemas per statement
 * (db/in-chunks.ts): for a plan that must not take the registry's word for them (a dry run). A
 * schema without `knex_migrations` maps to null; a schema that does not exist is left out.
 */
export async function readAppliedOfSchemas(knex: Knex, schemas: readonly string[]): Promise<Map<string, AppliedMigration[] | null>> {
  const applied = new Map<string, AppliedMigration[] | null>();
  if (schemas.length === 0) return applied;
  const { rows: present } = await knex.raw<{ rows: { schema: string; hasTable: boolean }[] }>(
    `select n.nspname as schema,
            exists (select 1 from pg_class c where c.relnamespace = n.oid and c.relname = ? and c.relkind in ('r', 'p')) as "hasTable"
       from pg_namespace n where n.nspname = any(?::text[])`,
    [MIGRATIONS_TABLE, [...schemas]],
  );
  for (const { schema, hasTable } of present) if (!hasTable) applied.set(schema, null);
  const readable = present.filter((row) => row.hasTable).map((row) => row.schema);
  const rows = await readInChunks(knex, readable, async (trx, chunk) => {
    const sql = chunk
      .map(() => `select ?::text as schema, coalesce(json_agg(json_build_object('name', name, 'batch', batch) order by id), '[]'::json) as applied from ??.??`)
      .join('\nunion all\n');
    const bindings = chunk.flatMap((schema) => [schema, schema, MIGRATIONS_TABLE]);
    return (await trx.raw<{ rows: { schema: string; applied: AppliedMigration[] }[] }>(sql, bindings)).rows;
  });
  for (const row of rows) applied.set(row.schema, row.applied);
  return applied;
}
