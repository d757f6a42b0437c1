/**
 * Adversarial black-box tests of the executor (issue 8): migrations a real team writes, run over
 * four tenants so the later ones take the fast path, compared with what plain Knex gives (the first
 * tenant runs the modules as plain Knex does; `fastPath: false` runs them all that way).
 * A failing test here is a break: the fast path (or the executor) diverges from plain Knex.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { startCli } from '../support/cli.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_adversarial' });

beforeEach(() => dropAllTenants(db.knex()));
afterEach(() => dropAllTenants(db.knex()));

const orgs = ['org_a', 'org_b', 'org_c', 'org_d'];

/**
 * Everything a user can observe of a tenant schema, with the schema name itself masked:
 * columns, functions, enum labels, triggers, sequences and every table's rows.
 */
async function snapshot(orgId: string): Promise<unknown> {
  const knex = db.knex();
  const schema = tenantSchemaName(orgId);
  const mask = (value: unknown) => JSON.parse(JSON.stringify(value ?? null).split(schema).join('<schema>'));
  const columns = (await knex.raw(
    'select table_name, column_name, data_type, column_default from information_schema.columns where table_schema = ? order by 1, 2',
    [schema],
  )).rows;
  const functions = (await knex.raw(
    'select p.proname, p.prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = ? order by 1',
    [schema],
  )).rows;
  const enums = (await knex.raw(
    `select t.typname, array_agg(e.enumlabel order by e.enumsortorder) as labels from pg_type t
       join pg_namespace n on n.oid = t.typnamespace join pg_enum e on e.enumtypid = t.oid where n.nspname = ? group by 1 order by 1`,
    [schema],
  )).rows;
  const triggers = (await knex.raw(
    'select trigger_name, event_manipulation, event_object_table from information_schema.triggers where trigger_schema = ? order by 1, 2',
    [schema],
  )).rows;
  const sequences = (await knex.raw('select sequencename, last_value from pg_sequences where schemaname = ? order by 1', [schema])).rows;
  const tables = (await knex.raw("select tablename from pg_tables where schemaname = ? order by 1", [schema])).rows as { tablename: string }[];
  const rows: Record<string, unknown> = {};
  for (const { tablename } of tables) {
    const data = await knex.withSchema(schema).from(tablename).select('*');
    rows[tablename] = tablename === 'knex_migrations' ? data.map((row: { name: string; batch: number }) => [row.name, row.batch]) : data.map((row: Record<string, unknown>) => { const { created_at: _c, migration_time: _m, ...rest } = row; return rest; });
  }
  return mask({ columns, functions, enums, triggers, sequences, rows });
}

/** Sessions idle in transaction and advisory locks held, from other backends. */
async function leftovers(): Promise<{ idle: number; locks: number }> {
  const idle = (await db.knex().raw("select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'")).rows[0].n;
  const locks = (await db.knex().raw("select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())")).rows[0].n;
  return { idle, locks };
}

type Migration = [name: string, up: string];

/**
 * Provisions four tenants at the base tree, adds `migrations`, migrates the fleet (fast path on),
 * and returns the result and each tenant's snapshot.
 */
async function runFleet(migrations: Migration[], options: { concurrency: number; fastPath?: boolean }) {
  const tree = copyTree('tenant-basic', 1);
  await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
  for (const [name, up] of migrations) writeMigration(tree, name, up);
  const result = await migrateTenants(db.knex(), { directory: tree, concurrency: options.concurrency, fastPath: options.fastPath, continueOnError: true });
  const snapshots = [];
  for (const orgId of orgs) snapshots.push(await snapshot(orgId));
  return { result, snapshots, tree };
}

/** Runs the shape fast (concurrency 1 and 4) and plain, and asserts every tenant ends as plain Knex leaves it. */
async function expectSameAsPlain(migrations: Migration[], check?: (snapshot: any) => void): Promise<void> {
  const plain = await runFleet(migrations, { concurrency: 1, fastPath: false });
  expect(plain.result.tenants.map((t) => [t.orgId, t.status, t.error])).toEqual(orgs.map((o) => [o, 'migrated', undefined]));
  const reference = plain.snapshots[0];
  check?.(reference);
  for (const concurrency of [1, 4]) {
    await dropAllTenants(db.knex());
    const fast = await runFleet(migrations, { concurrency, fastPath: true });
    expect(fast.result.tenants.map((t) => [t.orgId, t.status, t.error])).toEqual(orgs.map((o) => [o, 'migrated', undefined]));
    for (const [index, snap] of fast.snapshots.entries()) expect({ org: orgs[index], concurrency, snap }).toEqual({ org: orgs[index], concurrency, snap: reference });
    expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
  }
}

const M = (n: number) => `2026030100000${n}_m${n}.ts`;

describe('shapes a team writes, fast path vs plain Knex', () => {
  it('a swallowed error inside a savepoint in the middle of a migration leaves the later DDL applied', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
try { await knex.transaction(async (sp) => { await sp.raw('create table a (id int)'); }); } catch {}
await knex.schema.createTable('b', (t) => { t.increments('id'); });`],
    ], (snap) => expect(Object.keys(snap.rows)).toEqual(['a', 'b', 'knex_migrations', 'knex_migrations_lock', 'org_users']));
  });

  it('a swallowed error inside a savepoint at the end of a migration does not fail the tenant', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
try { await knex.transaction(async (sp) => { await sp.raw('select 1/0'); }); } catch {}`],
      [M(2), `await knex.schema.createTable('b', (t) => { t.increments('id'); });`],
    ]);
  });

  it('reads right after DDL (with and without bindings) see the new table and drive later DDL', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.schema.createTable('plans', (t) => { t.text('code'); });
await knex('plans').insert([{ code: 'free' }, { code: 'pro' }]);
const { rows } = await knex.raw('select count(*)::int as n from plans');
const pro = await knex.raw('select code from plans where code = ?', ['pro']);
await knex.schema.createTable('seen_' + rows[0].n + '_' + pro.rows.length, (t) => { t.text('x'); });`],
    ], (snap) => expect(Object.keys(snap.rows)).toContain('seen_2_1'));
  });

  it('several statements in one knex.raw, with $$ bodies holding semicolons and -- comments, functions and triggers', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.raw(\`
-- leading comment; with a semicolon
create table audited (id serial primary key, note text, touched int default 0); /* block ; comment */
create function touch() returns trigger language plpgsql as $$
begin
  -- bump; always
  new.touched := coalesce(new.touched, 0) + 1; -- trailing ; comment
  return new;
end $$;
create trigger audited_touch before insert or update on audited for each row execute function touch();
insert into audited (note) values ('x;y'), ('-- not a comment');
-- trailing comment with no newline\`);`],
    ], (snap) => expect(snap.rows.audited).toEqual([{ id: 1, note: 'x;y', touched: 1 }, { id: 2, note: '-- not a comment', touched: 1 }]));
  });

  it('native enums and alter type … add value in the same run', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.schema.createTable('tickets', (t) => { t.increments('id'); t.enu('state', ['open', 'closed'], { useNative: true, enumName: 'ticket_state' }); });`],
      [M(2), `await knex.raw("alter type ticket_state add value 'pending' before 'closed'");`],
    ], (snap) => expect(snap.enums).toEqual([{ typname: 'ticket_state', labels: '{open,pending,closed}' }]));
  });

  it('query options (rowMode array, custom types) and create table as select', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.schema.createTable('src', (t) => { t.integer('n'); });
await knex('src').insert([{ n: 1 }, { n: 2 }]);
const res = await knex.raw('select sum(n)::int as s from src').options({ rowMode: 'array' });
await knex.raw('create table copy as select n, ' + Number(res.rows[0][0]) + ' as total from src');
const typed = await knex.raw('select 42::int8 as big').options({ types: { getTypeParser: () => (v) => 'p' + v } });
await knex('src').insert({ n: typed.rows[0].big === 'p42' ? 100 : -1 });`],
    ], (snap) => expect(snap.rows.src).toEqual([{ n: 1 }, { n: 2 }, { n: 100 }]));
  });

  it('DO blocks and sequences with setval', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.raw("do $$ begin if not exists (select 1 from pg_class where relname = 'counters' and relnamespace = current_schema()::regnamespace) then create table counters (id serial, v int); end if; end $$");
await knex.raw('create sequence invoice_no start 1000');
await knex.raw("select setval('invoice_no', 5000)");
await knex.raw("select nextval('invoice_no')");`],
    ], (snap) => expect(snap.sequences).toContainEqual({ sequencename: 'invoice_no', last_value: 5001 }));
  });

  it("a migration reading its own schema name records each tenant's own schema", async () => {
    const plain = await runFleet([[M(1), `const { rows } = await knex.raw('select current_schema() as s');
await knex.schema.createTable('whoami', (t) => { t.text('s'); });
await knex('whoami').insert({ s: rows[0].s });`]], { concurrency: 1, fastPath: true });
    for (const orgId of orgs) {
      expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('whoami').pluck('s')).toEqual([tenantSchemaName(orgId)]);
    }
    expect(plain.result.ok).toBe(true);
  });

  it('set vs set local: a session setting in a migration does not leak into the next tenant', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.raw("set local statement_timeout = '5s'");
await knex.raw("set application_name = 'team_migration'");
await knex.schema.createTable('s', (t) => { t.text('tz'); });
const { rows } = await knex.raw("select current_setting('search_path') as p");
await knex('s').insert({ tz: rows[0].p.includes('public') ? 'with public' : 'no public' });`],
    ], (snap) => expect(snap.rows.s).toEqual([{ tz: 'with public' }]));
  });

  it('a session-level set in one tenant\'s migration is not seen by the next tenant\'s migration', async () => {
    // Plain Knex runs each tenant's migrations in a transaction of their own: lock_timeout starts at
    // its default — here the tool's own (1 s, SET LOCAL in every tenant's transaction), never the
    // 4321ms an earlier tenant's migration set for its session.
    const migration: Migration = [M(1), `await knex.schema.createTable('seen', (t) => { t.text('lock_timeout'); });
const { rows } = await knex.raw("select current_setting('lock_timeout') as v");
await knex('seen').insert({ lock_timeout: rows[0].v });
await knex.raw("set lock_timeout = '4321ms'");`];
    const fresh = db.createKnex({ pool: { min: 1, max: 1 } });
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(fresh, orgs, { directory: tree, concurrency: 1 });
    writeMigration(tree, ...migration);
    const result = await migrateTenants(fresh, { directory: tree, concurrency: 1, fastPath: false });
    expect(result.ok).toBe(true);
    const seen = [];
    for (const orgId of orgs) seen.push(await db.knex().withSchema(tenantSchemaName(orgId)).from('seen').pluck('lock_timeout'));
    expect(seen).toEqual(orgs.map(() => ['1s']));
  });

  it('a prepared statement (.options({ name })) works on every tenant', async () => {
    await expectSameAsPlain([
      [M(1), `await knex.schema.createTable('p', (t) => { t.integer('v'); });
await knex.raw('insert into p (v) values (?)', [7]).options({ name: 'ins_p' });
await knex.raw('insert into p (v) values (?)', [8]).options({ name: 'ins_p' });`],
    ], (snap) => expect(snap.rows.p).toEqual([{ v: 7 }, { v: 8 }]));
  });

  it('a DO block that raises for one schema only fails only that tenant, which stays untouched', async () => {
    const bad = tenantSchemaName('org_c');
    const { result } = await runFleet([[M(1), `await knex.schema.createTable('x', (t) => { t.increments('id'); });
await knex.raw("do $$ begin if current_schema() = '${bad}' then raise exception 'bad tenant'; end if; end $$");`]], { concurrency: 1 });
    expect(result.tenants.map((t) => [t.orgId, t.status])).toEqual([['org_a', 'migrated'], ['org_b', 'migrated'], ['org_c', 'failed'], ['org_d', 'migrated']]);
    expect(result.tenants[2]?.error).toMatch(/bad tenant/);
    expect(await db.knex().raw("select to_regclass(? || '.x') as r", [bad]).then((r) => r.rows[0].r)).toBeNull();
    expect(await db.knex().withSchema(bad).from('knex_migrations').pluck('name')).toEqual(['20260101000001_org_users.ts']);
    expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
  });

  it('a migration whose data step fails for one tenant only (unique violation) fails that tenant alone', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    await db.knex().withSchema(tenantSchemaName('org_b')).into('org_users').insert([{ email: 'A@x' }, { email: 'a@x' }]);
    writeMigration(tree, M(1), `await knex.schema.createTable('y', (t) => { t.increments('id'); });
await knex.raw('create unique index org_users_lower_email on org_users (lower(email))');`);
    const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1, continueOnError: true });
    expect(result.tenants.map((t) => [t.orgId, t.status])).toEqual([['org_a', 'migrated'], ['org_b', 'failed'], ['org_c', 'migrated'], ['org_d', 'migrated']]);
    expect(await db.knex().raw("select to_regclass(? || '.y') as r", [tenantSchemaName('org_b')]).then((r) => r.rows[0].r)).toBeNull();
    expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
  });
});

/** Runs the shape plain and fast (concurrency 1 and 4): the same statuses and the same end state for every tenant. */
async function expectFastAsPlain(migrations: Migration[]): Promise<{ statuses: unknown; snapshots: unknown[] }> {
  const plain = await runFleet(migrations, { concurrency: 1, fastPath: false });
  const statuses = plain.result.tenants.map((t) => [t.orgId, t.status]);
  for (const concurrency of [1, 4]) {
    await dropAllTenants(db.knex());
    const fast = await runFleet(migrations, { concurrency, fastPath: true });
    expect({ concurrency, statuses: fast.result.tenants.map((t) => [t.orgId, t.status]) }).toEqual({ concurrency, statuses });
    expect({ concurrency, snapshots: fast.snapshots }).toEqual({ concurrency, snapshots: plain.snapshots });
    expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
  }
  return { statuses, snapshots: plain.snapshots };
}

describe('shapes that misuse the transaction, fast path vs plain Knex', () => {
  it('a migration that catches an error without a savepoint fails every tenant and leaves them untouched', async () => {
    const { statuses } = await expectFastAsPlain([
      [M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
try { await knex.raw('select 1/0'); } catch {}
await knex.schema.createTable('b', (t) => { t.increments('id'); });`],
    ]);
    expect(statuses).toEqual(orgs.map((o) => [o, 'failed']));
  });

  it('a migration that runs commit itself creates nothing in public and does not make the next tenants fail', async () => {
    try {
      const { result } = await runFleet([[M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
await knex.raw('commit');
await knex.schema.createTable('b', (t) => { t.increments('id'); });`]], { concurrency: 1 });
      // Plain Knex (search_path on the connection) creates b in the tenant schema each time; at the
      // least, the tool must not let the tenant's DDL escape into public, where it breaks the next tenants.
      expect((await db.knex().raw("select to_regclass('public.a') as a, to_regclass('public.b') as b")).rows[0]).toEqual({ a: null, b: null });
      const statuses = result.tenants.map((t) => t.status);
      expect(new Set(statuses).size).toBe(1);
      expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
    } finally {
      await db.knex().raw('drop table if exists public.a, public.b');
    }
  });

  it('a migration that runs rollback itself ends the same way for every tenant, with nothing left open', async () => {
    await expectFastAsPlain([[M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
await knex.raw('rollback');`]]);
  });

  it('a query built but never awaited is not run, as in plain Knex', async () => {
    await expectFastAsPlain([[M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
knex.schema.createTable('never', (t) => { t.increments('id'); });`]]);
  });

  // Module-level state deciding DDL is the README's documented rule ("What a migration author must
  // not do"): replayed with the fast path on, per tenant with it off — replay.test.ts holds both.

  it('a transaction: false migration applies on every tenant', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    const fs = await import('node:fs');
    fs.writeFileSync(`${tree}/${M(1)}`, `export const config = { transaction: false };
export async function up(knex) { await knex.raw('create index concurrently org_users_created on org_users (created_at)'); }
export async function down(knex) {}\n`);
    writeMigration(tree, M(2), `await knex.schema.createTable('after', (t) => { t.increments('id'); });`);
    const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 4 });
    expect(result.tenants.map((t) => t.status)).toEqual(orgs.map(() => 'migrated'));
    for (const orgId of orgs) {
      expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name')).toEqual(['20260101000001_org_users.ts', M(1), M(2)]);
      expect((await db.knex().raw("select count(*)::int as n from pg_indexes where schemaname = ? and indexname = 'org_users_created'", [tenantSchemaName(orgId)])).rows[0].n).toBe(1);
    }
    expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
  });

  it('two runs of the same fleet at once apply each migration once per tenant', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    writeMigration(tree, M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });`);
    writeMigration(tree, M(2), `await knex.schema.createTable('b', (t) => { t.increments('id'); });`);
    const other = db.createKnex();
    const [one, two] = await Promise.all([
      migrateTenants(db.knex(), { directory: tree, concurrency: 4 }),
      migrateTenants(other, { directory: tree, concurrency: 1 }),
    ]);
    expect([one.ok, two.ok]).toEqual([true, true]);
    for (const orgId of orgs) {
      expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name')).toEqual(['20260101000001_org_users.ts', M(1), M(2)]);
    }
    expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
  });

  for (const lie of [{ what: 'fewer', count: 0 }, { what: 'more', count: 3 }]) {
    it(`a registry row edited to say ${lie.what} migrations than the schema has: the run still leaves every tenant fully and singly migrated`, async () => {
      const tree = copyTree('tenant-basic', 1);
      await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
      await db.knex()('tenants').withSchema('public').whereIn('org_id', ['org_b', 'org_c', 'org_d']).update({ migration_count: lie.count });
      writeMigration(tree, M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });`);
      const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1, continueOnError: true });
      expect(result.tenants.map((t) => [t.orgId, t.status])).toEqual(orgs.map((o) => [o, 'migrated']));
      for (const orgId of orgs) {
        expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name')).toEqual(['20260101000001_org_users.ts', M(1)]);
        expect(await db.knex()('tenants').withSchema('public').where({ org_id: orgId }).first('migration_count', 'migration_version')).toEqual({ migration_count: 2, migration_version: M(1) });
      }
    });
  }

  it('default_transaction_isolation = serializable on the database changes nothing', async () => {
    await db.knex().raw(`alter database ?? set default_transaction_isolation = 'serializable'`, [db.name]);
    try {
      const fresh = db.createKnex();
      const tree = copyTree('tenant-basic', 1);
      await provisionTenant(fresh, orgs, { directory: tree, concurrency: 1 });
      writeMigration(tree, M(1), `await knex.schema.createTable('a', (t) => { t.increments('id'); });
const { rows } = await knex.raw('show transaction_isolation');
await knex('a').insert({});`);
      const result = await migrateTenants(fresh, { directory: tree, concurrency: 4 });
      expect(result.tenants.map((t) => t.status)).toEqual(orgs.map(() => 'migrated'));
      for (const orgId of orgs) expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('a').pluck('id')).toEqual([1]);
    } finally {
      await db.knex().raw('alter database ?? reset default_transaction_isolation', [db.name]);
    }
  });
});

describe('provisioning and killed runs', () => {
  it('provisioning four orgs with reads after DDL and a swallowed savepoint error gives each the same schema as with the fast path off', async () => {
    const build = () => {
      const tree = copyTree('tenant-basic', 1);
      writeMigration(tree, M(1), `await knex.schema.createTable('plans', (t) => { t.text('code'); });
await knex('plans').insert({ code: 'free' });
try { await knex.transaction(async (sp) => { await sp.raw('select 1/0'); }); } catch {}
const { rows } = await knex.raw('select count(*)::int as n from plans where code = ?', ['free']);
await knex.schema.createTable('seen_' + rows[0].n, (t) => { t.text('x'); });`);
      return tree;
    };
    await provisionTenant(db.knex(), orgs, { directory: build(), concurrency: 1, fastPath: false });
    const plain = [];
    for (const orgId of orgs) plain.push(await snapshot(orgId));
    for (const concurrency of [1, 4]) {
      await dropAllTenants(db.knex());
      const result = await provisionTenant(db.knex(), orgs, { directory: build(), concurrency });
      expect(result.tenants.map((t) => t.status)).toEqual(orgs.map(() => 'provisioned'));
      const fast = [];
      for (const orgId of orgs) fast.push(await snapshot(orgId));
      expect(fast).toEqual(plain);
      expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
    }
  });

  it('a CLI run killed while a tenant is mid-migration leaves no tenant half-migrated, and the next run completes the fleet', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    await db.knex().raw('create table public.gate (id int)');
    writeMigration(tree, M(1), `await knex.schema.createTable('first_half', (t) => { t.increments('id'); });
await knex.raw('select * from public.gate');
await knex.schema.createTable('second_half', (t) => { t.increments('id'); });`);
    const holder = db.createKnex();
    try {
      await holder.transaction(async (gate) => {
        // The gate holds the second tenant (or the first) inside its migration until the kill.
        await gate.raw('lock table public.gate in access exclusive mode');
        const run = startCli(['migrate:tenants', '--concurrency', '1'], { env: treeEnv(db.url, { tenant: tree }) });
        for (;;) {
          const waiting = await db.knex().raw("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%gate%'");
          if (waiting.rows[0].n > 0) break;
          await new Promise((resolve) => setImmediate(resolve));
        }
        run.kill('SIGKILL');
        await run.done;
      });
      for (const orgId of orgs) {
        const tables = await db.knex()('pg_tables').where({ schemaname: tenantSchemaName(orgId) }).whereIn('tablename', ['first_half', 'second_half']).pluck('tablename');
        expect([0, 2]).toContain(tables.length);
      }
      const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 4 });
      expect(result.ok).toBe(true);
      for (const orgId of orgs) {
        expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name')).toEqual(['20260101000001_org_users.ts', M(1)]);
      }
      expect(await leftovers()).toEqual({ idle: 0, locks: 0 });
    } finally {
      await db.knex().raw('drop table if exists public.gate');
    }
  });
});
