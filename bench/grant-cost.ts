/**
 * What one tenant's grants (TENANT_ROLES=on, sent in every tenant's transaction) cost as the
 * catalog grows: the statements tenant-migrate sends (src/roles/grants.ts: the schema's tables and
 * sequences found through pg_depend and named, its routines by ON ALL ROUTINES) against `GRANT … ON ALL TABLES / SEQUENCES / ROUTINES IN
 * SCHEMA` (which reads the whole of pg_class), alternating on one connection, each in a transaction
 * rolled back, on a tenant-like schema of ten tables, at each catalog size.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres pnpm exec tsx bench/grant-cost.ts [relations,…]
 *
 * The catalog is grown with filler tables (a serial primary key each: three relations) in a scratch
 * database `tm_bench_grant_cost`, dropped at the end; default sizes 30,000 and 300,000 relations
 * (about 1,000 and 11,000 tenants of the bench's tree).
 */
import pg from 'pg';
import { tenantGrants } from '../src/roles/grants.ts';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const sizes = (process.argv[2] ?? '30000,300000').split(',').map(Number);
const DATABASE = 'tm_bench_grant_cost';
const ROLE = 'tm_bench_grant_cost_role';
const SCHEMA = 'tid_grant_cost';
const REPS = 15;

const admin = new pg.Client({ connectionString: url });
await admin.connect();
await admin.query(`drop database if exists ${DATABASE} with (force)`);
await admin.query(`create database ${DATABASE}`);
const scratch = new URL(url);
scratch.pathname = `/${DATABASE}`;
const client = new pg.Client({ connectionString: scratch.toString() });
await client.connect();

const named = tenantGrants(SCHEMA, ROLE).statements.join(';\n');
const onAll = [
  `grant usage on schema ${SCHEMA} to ${ROLE}`,
  `grant select, insert, update, delete on all tables in schema ${SCHEMA} to ${ROLE}`,
  `grant usage, select on all sequences in schema ${SCHEMA} to ${ROLE}`,
  `grant execute on all routines in schema ${SCHEMA} to ${ROLE}`,
  `revoke all on table ${SCHEMA}.knex_migrations, ${SCHEMA}.knex_migrations_lock from ${ROLE}`,
  `revoke all on sequence ${SCHEMA}.knex_migrations_id_seq, ${SCHEMA}.knex_migrations_lock_index_seq from ${ROLE}`,
].join(';\n');

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
async function timed(sql: string): Promise<number> {
  const started = performance.now();
  await client.query(`begin; ${sql}; rollback`);
  return performance.now() - started;
}

const lines = ['| pg_class rows | `ON ALL … IN SCHEMA` (median) | named through pg_depend (median) | ratio |', '| ---: | ---: | ---: | ---: |'];
try {
  await client.query(`drop role if exists ${ROLE}; create role ${ROLE} nologin; create schema filler; create schema ${SCHEMA};
    create table ${SCHEMA}.knex_migrations (id serial primary key, name text);
    create table ${SCHEMA}.knex_migrations_lock (index serial primary key, is_locked int);`);
  for (let i = 0; i < 8; i++) await client.query(`create table ${SCHEMA}.t${i} (id bigserial primary key, body text, created_at timestamptz default now())`);
  let filler = 0;
  for (const size of sizes) {
    const relations = async () => (await client.query<{ n: number }>('select count(*)::int as n from pg_class')).rows[0]!.n;
    const missing = Math.max(0, Math.ceil((size - (await relations())) / 3));
    // In a procedure's loop with a commit every 500 tables: one transaction would run out of lock slots.
    await client.query(`do $$ begin for i in ${filler + 1}..${filler + missing} loop execute format('create table filler.f%s (id serial primary key)', i); if i % 500 = 0 then commit; end if; end loop; end $$`);
    filler += missing;
    for (const catalog of ['pg_class', 'pg_depend']) await client.query(`vacuum analyze ${catalog}`);
    const onAllTimes: number[] = [];
    const namedTimes: number[] = [];
    for (let i = 0; i < REPS; i++) {
      onAllTimes.push(await timed(onAll));
      namedTimes.push(await timed(named));
    }
    const row = [(await relations()).toLocaleString('en-US'), `${median(onAllTimes).toFixed(1)} ms`, `${median(namedTimes).toFixed(1)} ms`, `${(median(onAllTimes) / median(namedTimes)).toFixed(1)}×`];
    lines.push(`| ${row.join(' | ')} |`);
    console.error(lines.at(-1));
  }
} finally {
  await client.end();
  await admin.query(`drop database if exists ${DATABASE} with (force)`);
  await admin.query(`drop role if exists ${ROLE}`);
  await admin.end();
}
console.log(lines.join('\n'));
