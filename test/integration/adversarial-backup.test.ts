/**
 * Adversarial probes of the catalog dumper (TENANT_BACKUP_DUMPER=tool): a tenant schema holding
 * what real teams create — identity and shared sequences, NOT VALID and deferrable constraints,
 * odd indexes, storage settings, enums with late values, views with options, overloaded functions,
 * triggers of every kind, RLS, column grants, awkward names and awkward data — is dumped with
 * `pg_dump -n` (text A), deprovisioned with the catalog dumper, restored, dumped again (B): A must
 * equal B. On a leg whose pg_dump is older than the server (embedded PostgreSQL 17 with Debian's 15
 * client) the catalog dumper's own dump of the original and of the restored schema are compared,
 * together with the rows read by queries.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { deprovisionTenant } from '../../src/backup/deprovision.ts';
import { restoreTenant } from '../../src/backup/restore.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { quoteIdent, useFreshDatabase, withAdminClient } from '../support/database.ts';
import { dropAllTenants, tenantSchemas } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { runCli } from '../support/cli.ts';
import { catalogDumpText, pgDumpMajor, pgDumpText } from '../support/schema-dump-text.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

// DROP DATABASE waits for a checkpoint: on a server under load that took two minutes here.
vi.setConfig({ hookTimeout: 240_000 });
const db = useFreshDatabase({ prefix: 'tm_advdump' });
afterEach(() => expectNoLeftovers(db.knex()));

let backupDir: string;
beforeEach(async () => {
  await dropAllTenants(db.knex());
  backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-advdump-'));
});

const role = `tm_advdump_r_${process.pid}`;
const tree = copyTree('tenant-basic');
let comparable = false;


beforeAll(async () => {
  await withAdminClient(async (client) => {
    await client.query(`drop role if exists ${quoteIdent(role)}`);
    await client.query(`create role ${quoteIdent(role)} nologin`);
  });
  const major = Math.floor(Number((await db.knex().raw("select current_setting('server_version_num') as n")).rows[0].n) / 10000);
  comparable = pgDumpMajor() >= major;
});

afterAll(async () => {
  // Before the database goes (hooks run in reverse): the schemas granting to the role first.
  await dropAllTenants(db.knex());
  await withAdminClient((client) => client.query(`drop role if exists ${quoteIdent(role)}`));
}, 60_000);



const snapshot = (schema: string) => (comparable ? Promise.resolve(pgDumpText(db.connection, schema)) : catalogDumpText(db.knex(), schema, backupDir));

/** The grants of one object in a stable order (pg_dump prints them in aclitem order, which is the order they were granted in). */
function sortGrants(text: string): string {
  return text
    .split('\n\n')
    .map((block) => (/^(GRANT|REVOKE) /m.test(block) ? block.split('\n').sort().join('\n') : block))
    .join('\n\n');
}

function showDiff(rawA: string, rawB: string): string {
  const a = sortGrants(rawA);
  const b = sortGrants(rawB);
  const fa = path.join(backupDir, 'a.txt');
  const fb = path.join(backupDir, 'b.txt');
  fs.writeFileSync(fa, a);
  fs.writeFileSync(fb, b);
  try {
    execFileSync('diff', ['-u', fa, fb], { encoding: 'utf8' });
    return '';
  } catch (error) {
    return String((error as { stdout?: string }).stdout).slice(0, 6000);
  }
}

/** Runs statements in the tenant's schema (search_path set), one round trip each. */
async function inSchema(schema: string, statements: string[]): Promise<void> {
  const k = db.knex();
  const client = (await k.client.acquireConnection()) as import('pg').ClientBase;
  try {
    await client.query(`set search_path = ${quoteIdent(schema)}, public`);
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.query('reset search_path');
    await k.client.releaseConnection(client);
  }
}

/** Provision, build, snapshot A, deprovision (catalog dumper), restore, snapshot B. */
async function roundTrip(org: string, statements: (s: string) => string[]) {
  const schema = tenantSchemaName(org);
  await provisionTenant(db.knex(), [org], { directory: tree });
  await inSchema(schema, statements(quoteIdent(schema)));
  const before = await snapshot(schema);
  const gone = await deprovisionTenant(db.knex(), [org], { backupDir, connection: db.connection, dumper: 'tool' });
  const tenant = gone.tenants[0]!;
  expect(tenant.status, JSON.stringify(tenant)).toBe('deprovisioned');
  expect(await tenantSchemas(db.knex())).not.toContain(schema);
  const manifest = JSON.parse(fs.readFileSync(tenant.manifest!, 'utf8'));
  await restoreTenant(db.knex(), tenant.manifest!, { connection: db.connection });
  const after = await snapshot(schema);
  return { schema, before, after, manifest, tenant, diff: showDiff(before, after) };
}

describe('adversarial catalog-dump round trips', { timeout: 300_000 }, () => {
  it('sequences and identity', async () => {
    const r = await roundTrip('org_adv_seq', () => [
      'create table idw (id int generated always as identity (start with 100 increment by 7 minvalue 50 maxvalue 100000 cache 5 cycle), v text)',
      "insert into idw (v) values ('a'),('b'),('c')",
      'alter table idw alter column id restart with 555',
      "insert into idw (v) values ('d')",
      'create table idd (id bigint generated by default as identity, v text)',
      "insert into idd (id, v) values (1000, 'x')",
      "insert into idd (v) values ('y')",
      'create sequence shared_seq start 5 increment -1 minvalue -1000 maxvalue 5',
      "create table sh1 (id int default nextval('shared_seq'), v text)",
      "create table sh2 (id int default nextval('shared_seq'), w text)",
      "insert into sh1 (v) values ('1'),('2')",
      "insert into sh2 (w) values ('3')",
      'create sequence loose_seq as smallint',
      "select nextval('loose_seq')",
      'create sequence never_used',
      'create table ser (id serial primary key, v text)',
      "insert into ser (v) select 'r' || g from generate_series(1,10) g",
      'delete from ser where id > 5',
      "select setval('ser_id_seq', 500, false)",
    ]);
    expect(r.diff).toBe('');
  });

  it('constraints', async () => {
    const r = await roundTrip('org_adv_con', () => [
      'create table parent (id int primary key, code text unique)',
      'insert into parent values (1, \'a\'), (2, \'b\')',
      'create table kid (id int primary key, parent_id int, code text, n int)',
      'insert into kid values (1, 99, \'a\', -1)',
      'alter table kid add constraint kid_n_pos check (n > 0) not valid',
      'alter table kid add constraint kid_parent_fk foreign key (parent_id) references parent (id) not valid',
      'alter table kid add constraint kid_code_fk foreign key (code) references parent (code) on update cascade on delete set null deferrable initially deferred',
      'create table tree (id int primary key, parent int references tree (id))',
      'insert into tree values (2, null), (5, 2), (3, 5), (1, 3)',
      'create table ca (id int primary key, b_id int)',
      'create table cb (id int primary key, a_id int references ca (id))',
      'alter table ca add constraint ca_b_fk foreign key (b_id) references cb (id) deferrable initially deferred',
      'begin',
      'insert into ca values (1, 1)',
      'insert into cb values (1, 1)',
      'commit',
      'create table nnd (a int, b int, constraint nnd_u unique nulls not distinct (a, b))',
      'insert into nnd values (1, null), (null, null)',
      'create table booking (id int, during int4range, exclude using gist (during with &&))',
      "insert into booking values (1, '[1,5)'), (2, '[5,9)')",
      'create table fkset (id int primary key, p int, constraint fkset_p foreign key (p) references parent(id) match full on delete set default on update restrict)',
    ]);
    expect(r.diff).toBe('');
  });

  it('indexes and storage', async () => {
    const r = await roundTrip('org_adv_idx', () => [
      'create table ix (id int primary key, a text, b text, c int, d jsonb)',
      "insert into ix select g, 'a' || g, 'b' || g, g % 7, jsonb_build_object('k', g) from generate_series(1, 50) g",
      'create index ix_incl on ix (a) include (b, c)',
      'create index ix_partial on ix (c) where c > 3',
      "create index ix_expr on ix ((d ->> 'k'), lower(a))",
      'create index ix_desc on ix (c desc nulls first, a asc nulls last)',
      'create index ix_ops on ix (a text_pattern_ops)',
      'create unique index ix_uniq on ix (b)',
      'create index ix_ff on ix (c) with (fillfactor = 70)',
      'cluster ix using ix_ff',
      'create index ix_gin on ix using gin (d jsonb_path_ops)',
      'create index ix_hash on ix using hash (a)',
      'create table st (id int, payload text) with (fillfactor = 60, autovacuum_enabled = false, autovacuum_vacuum_scale_factor = 0.05)',
      'alter table st alter column payload set statistics 1000',
      'alter table st alter column payload set storage external',
      "alter table st alter column id set (n_distinct = -1)",
      "insert into st values (1, 'x')",
      'create unlogged table ul (id int primary key, v text)',
      "insert into ul values (1, 'u')",
      'create table nocols ()',
      'insert into nocols default values',
      'insert into nocols default values',
      'create table dropped (a int, b text, c int)',
      "insert into dropped values (1, 'b', 3)",
      'alter table dropped drop column b',
      'insert into dropped values (4, 6)',
      'alter table dropped add column e text default \'late\'',
      'create table colls (a text collate "C", b text collate "POSIX", c varchar(5) collate "en-x-icu")',
      "insert into colls values ('a', 'b', 'c')",
    ]);
    expect(r.diff).toBe('');
  });

  it('types', async () => {
    const r = await roundTrip('org_adv_types', () => [
      "create type status as enum ('new', 'done')",
      "alter type status add value 'doing' before 'done'",
      "alter type status add value 'archived'",
      "alter type status rename value 'new' to 'fresh'",
      "create domain email as text not null default 'x@y' check (value like '%@%') constraint email_len check (length(value) < 300)",
      'create type pair as (l int, r text)',
      "create table ty (id int, s status, ss status[], e email, p pair, pp pair[])",
      "insert into ty values (1, 'doing', array['fresh','archived']::status[], 'a@b', row(1, 'x'), array[row(2,'y')::pair])",
      'create table ty2 (id int, e email)',
      "insert into ty2 (id) values (1)",
    ]);
    expect(r.diff).toBe('');
  });
  it('views, functions, triggers', async () => {
    const r = await roundTrip('org_adv_code', () => [
      'create table acct (id int primary key, name text, bal numeric default 0, updated_at timestamptz, n int)',
      "insert into acct values (1, 'a', 10), (2, 'b', 20)",
      "create function fmt(n numeric) returns text language sql immutable as $$ select 'N=' || n::text $$",
      "create function fmt(t text, pad int default 3) returns text language sql as $$ select lpad(t, pad) $$",
      "create function secret() returns int language plpgsql security definer set search_path = pg_catalog, pg_temp as $$ begin return 42; end $$",
      "create function rows_of(min_bal numeric default 0) returns table (id int, name text) language sql stable as $$ select id, name from acct where bal >= min_bal $$",
      "create procedure bump(by_ numeric) language plpgsql as $$ begin update acct set bal = bal + by_; end $$",
      "create function strict_costly(a int) returns int language sql immutable strict parallel safe cost 1000 as 'select a + 1'",
      "create function setof_ids() returns setof int language sql rows 5 as 'select id from acct'",
      'revoke execute on function secret() from public',
      'create view v_check as select id, name from acct where bal > 0 with local check option',
      'create view v_casc with (check_option = cascaded, security_barrier = true) as select * from acct where id > 0',
      'create view v_inv with (security_invoker = true) as select id, fmt(bal) as f from acct',
      'create view v_on_v as select id from v_inv where f is not null',
      'create recursive view nums (n) as values (1) union all select n + 1 from nums where n < 5',
      "create function touch() returns trigger language plpgsql as $$ begin new.updated_at := now(); return new; end $$",
      "create function noop() returns trigger language plpgsql as $$ begin return null; end $$",
      "create function v_ins() returns trigger language plpgsql as $$ begin insert into acct (id, name) values (new.id, new.name); return new; end $$",
      'create trigger t_before before insert or update on acct for each row when (new.name is not null) execute function touch()',
      'create trigger t_after_stmt after delete on acct for each statement execute function noop()',
      'create trigger t_cols before update of name, bal on acct for each row execute function touch()',
      'create constraint trigger t_con after insert on acct deferrable initially deferred for each row execute function noop()',
      'create trigger t_disabled after update on acct for each row execute function noop()',
      'alter table acct disable trigger t_disabled',
      'create trigger t_replica after insert on acct for each row execute function noop()',
      'alter table acct enable replica trigger t_replica',
      'create trigger t_always after insert on acct for each row execute function noop()',
      'alter table acct enable always trigger t_always',
      'create trigger v_instead instead of insert on v_on_v for each row execute function v_ins()',
      'create trigger t_trans after update on acct referencing old table as o new table as nw for each statement execute function noop()',
      'create view v_default as select * from acct',
    ]);
    expect(r.diff).toBe('');
  });

  it('rls, comments, grants', async () => {
    const r = await roundTrip('org_adv_acl', () => [
      'create table doc (id int primary key, owner text, body text, secret text)',
      "insert into doc values (1, 'me', 'b', 's')",
      'alter table doc enable row level security',
      'alter table doc force row level security',
      `create policy p_perm on doc as permissive for select to ${quoteIdent(role)}, public using (owner = current_user)`,
      `create policy p_restr on doc as restrictive for update to ${quoteIdent(role)} using (true) with check (owner is not null)`,
      'create policy p_all on doc using (true)',
      "comment on table doc is 'it''s a \"doc\"\nsecond line $$ and $q$ \\ backslash'",
      "comment on column doc.body is ''",
      "comment on constraint doc_pkey on doc is 'the pk'",
      "comment on policy p_all on doc is 'all'",
      'create function f() returns int language sql as $$ select 1 $$',
      "comment on function f() is 'func'",
      "create type e as enum ('a')",
      "comment on type e is 'enum'",
      'create sequence sq',
      "comment on sequence sq is 'seq'",
      'create view dv as select id from doc',
      "comment on view dv is 'view'",
      "comment on column dv.id is 'view col'",
      "create trigger tr before insert on doc for each row execute function suppress_redundant_updates_trigger()",
      "comment on trigger tr on doc is 'trig'",
      'create index doc_owner on doc (owner)',
      "comment on index doc_owner is 'idx'",
      "create domain d as int constraint d_pos check (value > 0)",
      "comment on domain d is 'dom'",
      "comment on constraint d_pos on domain d is 'dom con'",
      `grant select (id, body), update (body) on doc to ${quoteIdent(role)}`,
      `grant insert on doc to ${quoteIdent(role)} with grant option`,
      'grant select on doc to public',
      `grant usage, select on sequence sq to ${quoteIdent(role)}`,
      `grant execute on function f() to ${quoteIdent(role)} with grant option`,
      'revoke execute on function f() from public',
      'revoke usage on type e from public',
      `grant usage on type e to ${quoteIdent(role)}`,
      `grant select on dv to ${quoteIdent(role)}`,
    ]);
    expect(r.diff).toBe('');
  });

  it('awkward names', async () => {
    const r = await roundTrip('org_adv_names', () => [
      'create table "MixedCase" ("Id" int primary key, "select" text, "from" int, "with space" text, "dot.ted" text, "quo""te" text, "ünï🎉" text)',
      `insert into "MixedCase" values (1, 'a', 2, 'b', 'c', 'd', 'e')`,
      'create table "table" ("column" int, "user" text)',
      'insert into "table" values (1, \'u\')',
      'create table "with space.and dot" ("a""b" int)',
      'insert into "with space.and dot" values (1)',
      'create index "Idx ""q""" on "MixedCase" ("with space")',
      'create sequence "Seq.Name"',
      'create type "En um" as enum (\'a b\', \'c\'\'d\', \'é\')',
      'create table "ÜberTable" (e "En um", id serial)',
      "insert into \"ÜberTable\" (e) values ('c''d')",
      'create view "View ""1""" as select "Id" from "MixedCase"',
      'create function "Fn ""x"""("Arg" int) returns int language sql as $$ select "Arg" $$',
    ]);
    expect(r.diff).toBe('');
  });

  it('awkward data', async () => {
    const r = await roundTrip('org_adv_data', () => [
      'create table bin (id int, b bytea)',
      "insert into bin select 1, decode(string_agg(lpad(to_hex(g), 2, '0'), ''), 'hex') from generate_series(0, 255) g",
      'create table txt (id int, t text, a text[], j jsonb, js json)',
      String.raw`insert into txt values (1, E'\\N', array[null, 'a"b', 'c,d', '{x}', E'back\\slash', 'NULL', ''], '{"u": "\u00e9\u2603 \ud83c\udf89", "nul": "x"}', '{"dup": 1, "dup": 2,  "sp" : true}')`,
      String.raw`insert into txt values (2, E'tab\there\nnl\rcr\\bs 🎉 \\.', '{}', '[]', 'null')`,
      String.raw`insert into txt values (3, '\.', null, 'null', null)`,
      "insert into txt values (4, repeat('x', 10 * 1024 * 1024), null, null, null)",
      'create table nums (id int, n numeric, f float8, r real, m money, bits bit(5), vb varbit)',
      "insert into nums values (1, 'NaN', '-0', '-0', 1.23, B'10101', B'1'), (2, 'Infinity', 'NaN', 'Infinity', -0.01, B'00000', B''), (3, '-Infinity', '-Infinity', '1e-45', 0, null, null), (4, 1e-100, 1.7976931348623157e308, 3.4028235e38, 92233720368547758.07, null, null)",
      'create table times (id int, ts timestamp, tz timestamptz, d date, i interval, t time, ttz timetz)',
      "insert into times values (1, 'infinity', '-infinity', 'infinity', '1 year 2 mons -3 days 04:05:06.789', '24:00', '23:59:59.999999+14'), (2, '4713-01-01 BC', '294276-12-31 23:59:59.999999+00', '-infinity', '-178000000 years', '00:00', '00:00-15:59')",
      'create table misc (id int, u uuid, ip inet, c cidr, mac macaddr, mac8 macaddr8, x xml, tv tsvector, tq tsquery, r int4range, mr int4multirange, tr tstzrange, pt point, bx box, pg pg_lsn, bo boolean, ch "char", nm name, oi oid)',
      "insert into misc values (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '::ffff:1.2.3.4/120', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '<a b=\"c\">&amp;é</a>', 'a:1A fat cat''s', 'fat & !cat', 'empty', '{[1,3), [5,7)}', '(,)', '(1.5,-0)', '((0,0),(1,1))', '16/B374D848', null, 'x', 'nm', 12)",
      'create table big (id int primary key, v text)',
      "insert into big select g, md5(g::text) from generate_series(1, 200000) g",
    ]);
    expect(r.diff).toBe('');
    const k = db.knex();
    const s = quoteIdent(r.schema);
    expect((await k.raw(`select md5(b) as m from ${s}.bin`)).rows[0].m).toBe((await k.raw(`select md5(decode(string_agg(lpad(to_hex(g), 2, '0'), ''), 'hex')) as m from generate_series(0, 255) g`)).rows[0].m);
    expect((await k.raw(`select length(t) as n from ${s}.txt where id = 4`)).rows[0].n).toBe(10 * 1024 * 1024);
  });
  it('ordering traps: typmods, index statistics, replica identity, policies without RLS', async () => {
    const r = await roundTrip('org_adv_order', () => [
      'create domain ctext as text collate "C" not null',
      "create type mood as enum ('a', 'b')",
      'create type wrap as (m mood, c ctext)',
      'create domain wraps as wrap[]',
      "create table typm (a numeric(10,2)[], b varchar(3)[], c timestamp(3), d bit varying(8), e interval day to second(2), f char(4), g ctext, h wraps, i time(0) with time zone)",
      "insert into typm values ('{1.50,null}', '{abc}', '2026-01-01 00:00:00.123', B'101', '1 day 00:00:01.25', 'ab', 'zz', array[row('a', 'x')::wrap], '12:00:00+01')",
      'create table ri (id int primary key, v text)',
      'alter table ri replica identity full',
      'create index ri_expr on ri ((lower(v)), id)',
      'alter index ri_expr alter column 1 set statistics 500',
      'create table pol (id int)',
      'create policy pol_p on pol using (id > 0)',
      'create table uc (a int, b int, constraint uc_u unique (a) include (b) with (fillfactor = 50) deferrable initially immediate, constraint uc_pk primary key (b) deferrable)',
      'create table ex (id int, during tsrange, active bool, exclude using gist (during with &&) where (active))',
      'create table fkp (id int primary key)',
      'create table fkc (id int, a int, b int, constraint fkc_fk foreign key (a) references fkp on delete set null (a))',
      'alter table fkc add constraint fkc_chk check (a > 0) no inherit',
      "create function cfg() returns int language sql set search_path = \"weird sch\", pg_temp set work_mem = '64MB' set datestyle = postgres, dmy as 'select 1'",
      'create function lk(int) returns bool language sql leakproof immutable as \'select true\'',
      'revoke delete on table ri from current_user',
      'grant select on table pol to public',
      'grant update (v) on ri to public',
    ]);
    expect(r.diff).toBe('');
  });
  it('a domain whose default calls nextval() of a sequence in the schema restores (the sequence is created before the default)', async () => {
    const r = await roundTrip('org_adv_domseq', () => [
      'create sequence ticket_seq start 900',
      "create domain ticket_no as int default nextval('ticket_seq')",
      'create table tickets (id int, n ticket_no)',
      'insert into tickets (id) values (1), (2)',
    ]);
    expect(r.diff).toBe('');
    expect((await db.knex().raw(`insert into ${quoteIdent(r.schema)}.tickets (id) values (3) returning n`)).rows[0].n).toBe(902);
  });
  it('a domain CHECK added NOT VALID over rows that break it restores, still NOT VALID (it is added after the rows)', async () => {
    const r = await roundTrip('org_adv_domnv', () => [
      'create domain pos as int',
      'create table counts (id int, p pos)',
      'insert into counts values (1, -5), (2, 3)',
      'alter domain pos add constraint pos_check check (value > 0) not valid',
    ]);
    expect(r.diff).toBe('');
    expect((await db.knex().raw(`select convalidated from pg_constraint where conname = 'pos_check' and contypid = '${r.schema}.pos'::regtype`)).rows).toEqual([{ convalidated: false }]);
  });
  it('a domain whose default calls a function of the schema, and a column default on another table\'s identity sequence, restore', async () => {
    const r = await roundTrip('org_adv_domfn', () => [
      "create function next_code() returns text language sql as $$ select 'c-' || (random() * 0)::int $$",
      'create domain code as text default next_code()',
      'create table a_orders (id int, c code)',
      'create table z_items (id int generated always as identity, v text)',
      "alter table a_orders alter column id set default nextval(pg_get_serial_sequence('z_items', 'id')::regclass)",
      "insert into z_items (v) values ('x')",
      'insert into a_orders default values',
    ]);
    expect(r.diff).toBe('');
  });
  it('rows another session commits while the tenant is being deprovisioned are in the backup, or their writes fail: none is lost', async () => {
    const org = 'org_adv_live';
    const schema = tenantSchemaName(org);
    const s = quoteIdent(schema);
    await provisionTenant(db.knex(), [org], { directory: tree });
    await db.knex().raw(`create table ${s}.feed (id bigserial primary key, at timestamptz default clock_timestamp(), pad text)`);
    await db.knex().raw(`insert into ${s}.feed (pad) select repeat('p', 200) from generate_series(1, 100000)`);
    const writer = db.createKnex({ pool: { min: 1, max: 1 } });
    let committed = 100000;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        try {
          await writer.raw(`insert into ${s}.feed (pad) values ('live')`);
          committed += 1;
        } catch {
          return; // the schema is gone (or the write waited out and failed): not committed
        }
      }
    })();
    const gone = await deprovisionTenant(db.knex(), [org], { backupDir, connection: db.connection, dumper: 'tool' });
    stop = true;
    await writing;
    await writer.destroy();
    expect(gone.tenants[0]!.status).toBe('deprovisioned');
    await restoreTenant(db.knex(), gone.tenants[0]!.manifest!, { connection: db.connection });
    const restored = Number((await db.knex().raw(`select count(*) as n from ${s}.feed`)).rows[0].n);
    expect(restored).toBe(committed);
  });

  it('a table locked by another session: the dump waits at most the lock wait, fails, and nothing is dropped', async () => {
    const org = 'org_adv_locked';
    const schema = tenantSchemaName(org);
    const s = quoteIdent(schema);
    await provisionTenant(db.knex(), [org], { directory: tree });
    await db.knex().raw(`create table ${s}.busy (id int)`);
    const holder = db.createKnex({ pool: { min: 1, max: 1 } });
    const trx = await holder.transaction();
    try {
      await trx.raw(`lock table ${s}.busy in access exclusive mode`);
      const gone = await deprovisionTenant(db.knex(), [org], { backupDir, connection: db.connection, dumper: 'tool', lockWaitTimeoutMs: 1000 });
      expect(gone.tenants[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/lock/i) });
    } finally {
      await trx.rollback();
      await holder.destroy();
    }
    expect(await tenantSchemas(db.knex())).toContain(schema);
    expect(fs.readdirSync(backupDir)).toEqual([]);
  });
  it('through the CLI: a tenant behind on a migration round-trips with --json saying which dumper wrote it; a materialized view goes to pg_dump and the line says so', async () => {
    const own = copyTree('tenant-basic');
    const env = treeEnv(db.url, { tenant: own });
    const org = 'org_adv_cli';
    const schema = tenantSchemaName(org);
    await provisionTenant(db.knex(), [org], { directory: own });
    writeMigration(own, '20260401000001_pending.ts', "await knex.raw('create table later (id int)');");
    await inSchema(schema, ["insert into org_users (email) values ('a@b.test')"]);
    const before = await snapshot(schema);
    const gone = await runCli(['deprovision:tenant', org, '--backup-dir', backupDir, '--json'], { env });
    expect(gone.code, gone.stderr + gone.stdout).toBe(0);
    const out = JSON.parse(gone.stdout);
    expect(out.tenants[0]).toMatchObject({ status: 'deprovisioned' });
    expect(out.tenants[0].pgDumpFallback).toBeUndefined();
    const manifest = JSON.parse(fs.readFileSync(out.tenants[0].manifest, 'utf8'));
    expect(manifest).toMatchObject({ format: 'sql', dumper: expect.stringMatching(/\(catalog\)$/), migrationCount: 3, newestMigration: '20260201000003_nickname.ts' });
    const back = await runCli(['restore:tenant', out.tenants[0].manifest, '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/20260401000001_pending/);
    expect(showDiff(before, await snapshot(schema))).toBe('');
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.tenants).toMatchObject({ total: 1, upToDate: 0 });

    const mv = 'org_adv_matview';
    await provisionTenant(db.knex(), [mv], { directory: tree });
    await inSchema(tenantSchemaName(mv), ['create materialized view mv as select 1 as one']);
    const fell = await runCli(['deprovision:tenant', mv, '--backup-dir', backupDir], { env: treeEnv(db.url, { tenant: tree }) });
    if (!comparable) {
      expect(fell.code).toBe(1);
      expect(fell.stdout + fell.stderr).toMatch(/mv: a materialized view.*pg_dump, which would, failed/s);
      expect(await tenantSchemas(db.knex())).toContain(tenantSchemaName(mv));
      return;
    }
    expect(fell.code, fell.stderr + fell.stdout).toBe(0);
    expect(fell.stdout).toMatch(/pg_dump wrote it: the schema holds what the catalog dumper does not write \(.*mv: a materialized view/);
  });
  it('a function whose argument default calls nextval() of a sequence of the schema restores', async () => {
    const r = await roundTrip('org_adv_fnseq', () => [
      'create sequence batch_seq start 70',
      "create function next_batch(n bigint default nextval('batch_seq')) returns bigint language sql as 'select n'",
      "select nextval('batch_seq')",
    ]);
    expect(r.diff).toBe('');
    expect(Number((await db.knex().raw(`select ${quoteIdent(r.schema)}.next_batch() as n`)).rows[0].n)).toBe(71);
  });
});
