/**
 * A tenant role's grants name the schema's objects one by one (found through pg_depend, so the
 * statement does not read all of pg_class at every tenant): they must reach exactly what
 * `GRANT … ON ALL TABLES / SEQUENCES / ROUTINES IN SCHEMA` reaches, whatever a migration made —
 * partitions, views, materialized views, standalone and owned sequences, overloaded functions,
 * procedures, aggregates, awkward names, a table moved into the schema and one moved out of it.
 */
import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { tenantGrants } from '../../src/roles/grants.ts';
import { useFreshDatabase } from '../support/database.ts';

const db = useFreshDatabase({ prefix: 'tm_grants' });
const suffix = crypto.randomBytes(4).toString('hex');
const named = `tm_test_named_${suffix}`; // gets the product's grants
const onAll = `tm_test_onall_${suffix}`; // gets ON ALL … IN SCHEMA, the reference
const schema = 'tid_grants_probe';

afterAll(async () => {
  const knex = db.knex();
  for (const role of [named, onAll]) {
    await knex.raw(`drop owned by "${role}"`).catch(() => {});
    await knex.raw(`drop role if exists "${role}"`).catch(() => {});
  }
});

/** Every privilege the role holds on an object of the schema, as `kind name: privilege` lines. */
async function privilegesOf(role: string): Promise<string[]> {
  const { rows } = await db.knex().raw<{ rows: { line: string }[] }>(
    `select o.kind || ' ' || o.name || ': ' || a.privilege_type as line
       from (select case when c.relkind = 'S' then 'sequence' else 'relation' end as kind, c.relname::text as name, c.relacl as acl, c.relowner as owner
               from pg_class c where c.relnamespace = ?::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
             union all
             select 'routine', p.oid::regprocedure::text, p.proacl, p.proowner from pg_proc p where p.pronamespace = ?::regnamespace) o
       cross join lateral aclexplode(coalesce(o.acl, acldefault(case when o.kind = 'routine' then 'f' when o.kind = 'sequence' then 's' else 'r' end::"char", o.owner))) a
      where a.grantee = ?::regrole
      order by 1`,
    [schema, schema, role],
  );
  return rows.map((row) => row.line);
}

describe("a tenant role's grants, object by object", { timeout: 120_000 }, () => {
  it('reach the same objects with the same privileges as GRANT … ON ALL … IN SCHEMA, and nothing on the bookkeeping', async () => {
    const knex = db.knex();
    await knex.raw(`create role "${named}" nologin; create role "${onAll}" nologin`);
    await knex.raw(`
      create schema elsewhere;
      create schema ${schema};
      set search_path = ${schema};
      create table knex_migrations (id serial primary key, name text);
      create table knex_migrations_lock (index serial primary key, is_locked int);
      create table notes (id bigserial primary key, body text);
      create table "Odd ""Name"" here" (id int generated always as identity, v text);
      create table events (at date not null, payload jsonb) partition by range (at);
      create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
      create view recent_notes as select * from notes where id > 10;
      create materialized view note_count as select count(*) as n from notes;
      create sequence invoice_numbers;
      create function note_total() returns bigint language sql as 'select count(*) from notes';
      create function note_total(min_id bigint) returns bigint language sql as 'select count(*) from notes where id >= min_id';
      create procedure touch_notes() language sql as 'update notes set body = body';
      create aggregate text_concat(text) (sfunc = textcat, stype = text, initcond = '');
      revoke execute on function note_total() from public;
      create table elsewhere.moved_in (id int);
      alter table elsewhere.moved_in set schema ${schema};
      create table moved_out (id int);
      alter table moved_out set schema elsewhere;
      create table elsewhere.never_here (id int);
      reset search_path;
    `);

    await knex.raw(tenantGrants(schema, named).statements.join(';\n'));
    await knex.raw(`
      grant usage on schema ${schema} to "${onAll}";
      grant select, insert, update, delete on all tables in schema ${schema} to "${onAll}";
      grant usage, select on all sequences in schema ${schema} to "${onAll}";
      grant execute on all routines in schema ${schema} to "${onAll}";
      revoke all on table ${schema}.knex_migrations, ${schema}.knex_migrations_lock from "${onAll}";
      revoke all on sequence ${schema}.knex_migrations_id_seq, ${schema}.knex_migrations_lock_index_seq from "${onAll}";
    `);

    const granted = await privilegesOf(named);
    expect(granted).toEqual(await privilegesOf(onAll));
    // Not vacuous: every kind of object got its privileges …
    for (const line of [
      'relation notes: DELETE',
      'relation Odd "Name" here: INSERT',
      'relation events: SELECT',
      'relation events_2026: UPDATE',
      'relation recent_notes: SELECT',
      'relation note_count: SELECT',
      'relation moved_in: SELECT',
      'sequence notes_id_seq: USAGE',
      'sequence invoice_numbers: SELECT',
      `routine ${schema}.note_total(): EXECUTE`,
      `routine ${schema}.note_total(bigint): EXECUTE`,
      `routine ${schema}.touch_notes(): EXECUTE`,
      `routine ${schema}.text_concat(text): EXECUTE`,
    ]) {
      expect(granted).toContain(line);
    }
    // … nothing on the bookkeeping, no TRUNCATE, and nothing outside the schema.
    expect(granted.filter((line) => /knex_migrations|TRUNCATE|REFERENCES|TRIGGER/.test(line))).toEqual([]);
    const { rows } = await knex.raw<{ rows: { n: number }[] }>(
      `select count(*)::int as n from pg_class c, aclexplode(c.relacl) a where c.relnamespace = 'elsewhere'::regnamespace and a.grantee = ?::regrole`,
      [named],
    );
    expect(rows[0]!.n).toBe(0);
  });

  it('an empty schema (no tables, sequences or routines yet) is granted USAGE and nothing fails', async () => {
    const knex = db.knex();
    await knex.raw('create schema tid_grants_empty');
    await knex.raw(tenantGrants('tid_grants_empty', named).statements.slice(0, 2).join(';\n'));
    const { rows } = await knex.raw<{ rows: { usage: boolean }[] }>(`select has_schema_privilege(?, 'tid_grants_empty', 'USAGE') as usage`, [named]);
    expect(rows[0]!.usage).toBe(true);
  });
});
