/**
 * Adversarial tests of a tenant role's grants (src/roles/grants.ts): the named grants found through
 * pg_depend must give the tenant role exactly what `GRANT … ON ALL TABLES / SEQUENCES / ROUTINES IN
 * SCHEMA` gave, and must never fail where those would not — whatever a real team's migrations put
 * in the schema. Every scenario runs through the product paths with roles on (the tool a
 * non-superuser with CREATEROLE, the app its own login role):
 * provisioning of two orgs straight onto the tree, two more provisioned on the base tree and then
 * `migrateTenants`, then a plain-DDL migration for all four (the replay route: later tenants replay
 * the learned SQL in one script, grants included) and its rollback (the down route); then every
 * tenant's role is compared, privilege by privilege (aclexplode), with a reference role
 * given the old ON ALL statements by the tool on the same schema, and the app uses the objects inside
 * `withTenant`.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetResult } from '../../src/report/results.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantRoleName, tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { rollbackTenants } from '../../src/tenants/rollback-tenants.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { quoteIdent, useFreshDatabase, withAdminClient, type FreshDatabase } from '../support/database.ts';
import { recordSql } from '../support/record-sql.ts';
import { useRoleLogins, type RoleLogins } from '../support/roles.ts';
import { copyTree, writeMigration } from '../support/trees.ts';

const suffix = crypto.randomBytes(4).toString('hex');
/** Given the old `ON ALL … IN SCHEMA` statements by the tool: the reference. */
const reference = `tm_test_advref_${suffix}`;
/** Owns objects a DBA put into a tenant schema; the tool cannot grant on them. */
const stranger = `tm_test_advother_${suffix}`;

const REPLAY_MARKER = '-- tenant-migrate: replay of learned DDL';
const q = quoteIdent;

beforeAll(async () => {
  await withAdminClient(async (client) => {
    await client.query(`create role ${q(reference)} nologin`);
    await client.query(`create role ${q(stranger)} nologin`);
  });
}, 120_000);

// After every scenario's database is dropped (each describe drops its own first).
afterAll(async () => {
  await withAdminClient(async (client) => {
    for (const role of [reference, stranger]) await client.query(`drop role if exists ${q(role)}`).catch(() => {});
  });
}, 120_000);

/**
 * The fleet's tree is checked as a whole (a migration applied anywhere must keep its file), so each
 * scenario has its own database, tool and app roles: call inside a describe.
 */
function useScenario(): { db: FreshDatabase; roles: RoleLogins } {
  const db = useFreshDatabase({ prefix: 'tm_adv_grants' });
  const roles = useRoleLogins(db);
  beforeAll(async () => {
    // Shared objects a team keeps outside the tenant schemas: a schema of types (not on the
    // search_path) and a staging schema objects are moved in from and out to.
    await roles.tool().raw(`
      create schema adv_shared;
      grant usage on schema adv_shared to public;
      create type adv_shared.currency as enum ('eur', 'usd');
      create schema adv_scratch;
    `);
  }, 120_000);
  afterAll(async () => {
    for (const role of [reference, stranger]) await db.knex().raw(`drop owned by ${q(role)}`).catch(() => {});
  }, 120_000);
  return { db, roles };
}

type Ctx = { db: FreshDatabase; roles: RoleLogins };

/** A migration whose up (and down) is SQL text, sent as written. */
function sqlMigration(tree: string, name: string, up: string, down = ''): void {
  writeMigration(tree, name, `await knex.raw(${JSON.stringify(up)});`, down ? `await knex.raw(${JSON.stringify(down)});` : '');
}

/** Every privilege the role holds in the schema (the schema itself, relations, sequences, routines). */
async function privilegesOf({ db }: Ctx, schema: string, role: string): Promise<string[]> {
  const { rows } = await db.knex().raw<{ rows: { line: string }[] }>(
    `select o.kind || ' ' || o.name || ': ' || a.privilege_type || case when a.is_grantable then ' (grantable)' else '' end as line
       from (select case when c.relkind = 'S' then 'sequence' else 'relation' end as kind, c.relname::text as name, c.relacl as acl, c.relowner as owner
               from pg_class c where c.relnamespace = ?::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
             union all
             select 'routine', p.oid::regprocedure::text, p.proacl, p.proowner from pg_proc p where p.pronamespace = ?::regnamespace
             union all
             select 'schema', n.nspname::text, n.nspacl, n.nspowner from pg_namespace n where n.oid = ?::regnamespace) o
       cross join lateral aclexplode(coalesce(o.acl, acldefault(case o.kind when 'routine' then 'f' when 'sequence' then 's' when 'schema' then 'n' else 'r' end::"char", o.owner))) a
      where a.grantee = ?::regrole
      order by 1`,
    [schema, schema, schema, role],
  );
  return rows.map((row) => row.line);
}

/**
 * The old statements (before pg_depend), sent by the tool to the reference role in one
 * transaction: undefined when they succeed, else the error.
 */
async function grantOnAll({ roles }: Ctx, schema: string): Promise<string | undefined> {
  const s = q(schema);
  const r = q(reference);
  try {
    await roles.tool().transaction((trx) =>
      trx.raw(`
        grant usage on schema ${s} to ${r};
        grant select, insert, update, delete on all tables in schema ${s} to ${r};
        grant usage, select on all sequences in schema ${s} to ${r};
        grant execute on all routines in schema ${s} to ${r};
        revoke all on table ${s}.knex_migrations, ${s}.knex_migrations_lock from ${r};
        revoke all on sequence ${s}.knex_migrations_id_seq, ${s}.knex_migrations_lock_index_seq from ${r}`),
    );
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The tenant role of each org holds exactly what ON ALL gives the reference role on its schema. */
async function expectSameAsOnAll(ctx: Ctx, orgs: readonly string[]): Promise<Map<string, string[]>> {
  const byOrg = new Map<string, string[]>();
  for (const org of orgs) {
    const schema = tenantSchemaName(org);
    expect([org, await grantOnAll(ctx, schema)]).toEqual([org, undefined]);
    const granted = await privilegesOf(ctx, schema, tenantRoleName(ctx.db.name, schema));
    expect({ org, granted }).toEqual({ org, granted: await privilegesOf(ctx, schema, reference) });
    expect(granted).toContain(`schema ${schema}: USAGE`);
    expect(granted.filter((line) => /knex_migrations|TRUNCATE|REFERENCES|TRIGGER|CREATE/.test(line))).toEqual([]);
    byOrg.set(org, granted);
  }
  return byOrg;
}

/** Each tenant's status and error, for a readable failure. */
function outcomes(result: FleetResult): { org: string; status: string; error?: string }[] {
  return [...result.tenants].sort((a, b) => a.orgId.localeCompare(b.orgId)).map((tenant) => ({ org: tenant.orgId, status: tenant.status, ...(tenant.error ? { error: tenant.error } : {}) }));
}

/** Whether the org's schema was sent a replayed script (the learned-SQL route). */
/**
 * Tenants provisioned on a one-file tree, then `prepare` (what a DBA does to their schemas), then a
 * plain migration run for them all: it must succeed, give the same privileges as ON ALL, and the
 * app must write the new table inside withTenant.
 */
async function migrateAfter(ctx: Ctx, orgs: readonly string[], prepare: () => Promise<void>): Promise<void> {
  const tree = copyTree('tenant-basic', 1);
  const options = { directory: tree, roles: ctx.roles.settings, concurrency: 1 };
  expect(outcomes(await provisionTenant(ctx.roles.tool(), [...orgs], options))).toEqual(orgs.map((org) => ({ org, status: 'provisioned' })));
  await prepare();
  sqlMigration(tree, '20260301000001_more.ts', 'create table more_notes (id serial primary key, body text);');
  const result = await migrateTenants(ctx.roles.tool(), { ...options, tenants: [...orgs] });
  expect(outcomes(result)).toEqual(orgs.map((org) => ({ org, status: 'migrated' })));
  await expectSameAsOnAll(ctx, orgs);
  for (const org of orgs) {
    expect(await withTenant(ctx.roles.app(), org, async (trx) => (await trx('more_notes').insert({ body: 'x' }).returning('id'))[0].id)).toBe(1);
  }
}

function replayed(sent: readonly string[], org: string): boolean {
  return sent.some((text) => text.startsWith(REPLAY_MARKER) && text.includes(tenantSchemaName(org)));
}

interface Exercised {
  tree: string;
  /** Provisioned straight onto the full tree. */
  provisioned: string[];
  /** Provisioned on the base tree, then migrated. */
  migrated: string[];
  all: string[];
}

/**
 * Runs a scenario's migrations through the product paths, two orgs each way: provisioning straight
 * onto the tree, and provisioning on the base tree then `migrateTenants`. Then a plain-DDL migration
 * after it (a table `followup`) is run for all four with `migrateTenants`: the first tenant runs the
 * module, the three others replay the learned SQL in one script, whose grants must cover the
 * scenario's objects too; the app writes to `followup`. Then `rollbackTenants` undoes it (the down
 * route, with its grants). Every step must succeed for every tenant.
 */
async function exercise({ roles }: Ctx, tag: string, write: (tree: string) => void): Promise<Exercised> {
  const tree = copyTree('tenant-basic', 1); // org_users
  const provisioned = [`org_${tag}_p1`, `org_${tag}_p2`];
  const migrated = [`org_${tag}_m1`, `org_${tag}_m2`];
  const all = [...migrated, ...provisioned]; // sorted, as outcomes() lists them
  const options = { directory: tree, roles: roles.settings, concurrency: 1 };

  const base = await provisionTenant(roles.tool(), migrated, options);
  expect(outcomes(base)).toEqual(migrated.map((org) => ({ org, status: 'provisioned' })));
  write(tree);
  expect(outcomes(await provisionTenant(roles.tool(), provisioned, options))).toEqual(provisioned.map((org) => ({ org, status: 'provisioned' })));
  expect(outcomes(await migrateTenants(roles.tool(), { ...options, tenants: migrated }))).toEqual(migrated.map((org) => ({ org, status: 'migrated' })));

  sqlMigration(tree, '20260401000001_followup.ts', 'create table followup (id serial primary key, note text)', 'drop table followup');
  let followup!: FleetResult;
  const sent = await recordSql(async () => {
    followup = await migrateTenants(roles.tool(), { ...options, tenants: all });
  });
  expect(outcomes(followup)).toEqual(all.map((org) => ({ org, status: 'migrated' })));
  // The replay route was taken (all but the first tenant to run).
  expect(all.filter((org) => replayed(sent, org))).toHaveLength(3);
  // … and the scripts committed: no tenant fell back to running the module (the first tenant alone did).
  expect(sent.filter((text) => !text.startsWith(REPLAY_MARKER) && text.includes('create table followup'))).toHaveLength(1);
  for (const org of all) {
    const id = await withTenant(roles.app(), org, async (trx) => (await trx('followup').insert({ note: org }).returning('id'))[0].id);
    expect(id).toBe(1);
  }
  const undone = await rollbackTenants(roles.tool(), { ...options, tenants: all });
  expect(outcomes(undone)).toEqual(all.map((org) => ({ org, status: 'rolled-back' })));
  return { tree, provisioned, migrated, all };
}

// Names a team gets from a product manager: quotes, commas, parentheses, percent signs, spaces,
// uppercase, Unicode.
const ENUM = 'Mood "quoted", (x) 100%';
const UNI_DOMAIN = 'Ünï domain, ok';
const ITEMS = 'Order Items, (v2) 100% "Ünï"';
const QTY = 'Qty %';
const SEQ = 'Seq, with "quotes" (and) 50%';
const CALC = 'calc, (x) 50% "q"';
const UPPER_FN = 'UPPER Fn';
const PROC = 'Proc, (p) 10%';
const VIEW = 'View, (v) 5%';

const ZOO_UP = `
create type ${q(ENUM)} as enum ('sad', 'ok', 'happy');
create domain positive_int as integer check (value > 0);
create domain ${q(UNI_DOMAIN)} as text;
create type time_window as range (subtype = time);
create table ${q(ITEMS)} (id serial primary key, ${q(QTY)} int not null default 1, label text);
create table "UPPER" (id bigint generated by default as identity primary key, v text);
create sequence ${q(SEQ)};
create function ${q(CALC)}(a int, b int default 2, variadic rest int[] default '{}') returns int language sql as $$ select a + b + coalesce(array_length(rest, 1), 0) $$;
create function mood_of(m ${q(ENUM)}) returns text language sql as $$ select 'enum:' || m::text $$;
create function mood_of(m ${q(ENUM)}[]) returns text language sql as $$ select 'array:' || array_length(m, 1) $$;
create function mood_of(m positive_int) returns text language sql as $$ select 'domain:' || m::text $$;
create function mood_of(m ${q(UNI_DOMAIN)}) returns text language sql as $$ select 'uni:' || m::text $$;
create function mood_of(m adv_shared.currency) returns text language sql as $$ select 'currency:' || m::text $$;
create function split_out(a int, out doubled int, out label text) language sql as $$ select a * 2, 'x' || a $$;
create function swap_inout(inout a int, inout b int) language sql as $$ select b, a $$;
create function items_at_least(min_qty int) returns table (id int, qty int) language sql as $$ select id, ${q(QTY)} from ${q(ITEMS)} where ${q(QTY)} >= min_qty order by id $$;
create function item_label(i ${q(ITEMS)}) returns text language sql as $$ select i.label || '#' || i.id $$;
create function ${q(UPPER_FN)}("select" int, "from" text, double double precision, "order" "char") returns text language sql as $$ select $2 || $1 $$;
create procedure bump(inout counter int, out note text) language plpgsql as $$ begin counter := counter + 1; note := 'bumped'; end $$;
create procedure ${q(PROC)}(a int default 1) language sql as $$ insert into "UPPER" (v) values (a::text) $$;
create function _sum_sq(int8, int) returns int8 language sql immutable as $$ select $1 + $2 * $2 $$;
create aggregate sum_sq(int) (sfunc = _sum_sq, stype = int8, initcond = '0');
create aggregate count_rows(*) (sfunc = int8inc, stype = int8, initcond = '0');
create view ${q(VIEW)} as select id, ${q(QTY)} as qty from ${q(ITEMS)};
do $$ begin execute format('revoke execute on all routines in schema %I from public', current_schema()); end $$;
`;

describe("a tenant role's grants against migrations a real team writes", { timeout: 300_000 }, () => {
  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('routines of every shape (defaults, VARIADIC, OUT/INOUT/TABLE, overloads by tenant enum/domain/array and by a type of another schema, procedures with OUT, aggregates, range constructors) and awkward names: same as ON ALL, and the app can call them with EXECUTE revoked from PUBLIC', async () => {
      const { db, roles } = ctx;
      const { all } = await exercise(ctx, 'zoo', (tree) => sqlMigration(tree, '20260301000001_zoo.ts', ZOO_UP));
      const granted = await expectSameAsOnAll(ctx, all);
      for (const org of all) {
        const lines = granted.get(org)!;
        // Not vacuous: the awkward objects are in there.
        for (const line of [`relation ${ITEMS}: INSERT`, `sequence ${SEQ}: USAGE`, 'sequence UPPER_id_seq: USAGE', `relation ${VIEW}: SELECT`]) expect(lines).toContain(line);
        // 16 routines of the migration's own (the range type's constructors belong to the bootstrap
        // superuser: neither statement can grant on them, and PUBLIC keeps EXECUTE).
        expect(lines.filter((line) => line.startsWith('routine ') && line.endsWith(': EXECUTE')).length).toBeGreaterThanOrEqual(16);

        const seen = await withTenant(roles.app(), org, async (trx) => {
          const one = async (sql: string) => (await trx.raw<{ rows: Record<string, unknown>[] }>(sql)).rows[0];
          await trx.raw(`insert into ${q(ITEMS)} (label) values ('a'), ('b')`);
          await trx.raw(`call ${q(PROC)}()`);
          return {
            calc: await one(`select ${q(CALC)}(1) as short, ${q(CALC)}(1, 2, 3, 4) as long`),
            moods: await one(
              `select mood_of('happy'::${q(ENUM)}) as e, mood_of(array['sad', 'ok']::${q(ENUM)}[]) as a, mood_of(5::positive_int) as d, mood_of('x'::${q(UNI_DOMAIN)}) as u, mood_of('eur'::adv_shared.currency) as c`,
            ),
            split: await one('select * from split_out(3)'),
            swapped: await one('select * from swap_inout(1, 2)'),
            items: (await trx.raw<{ rows: unknown[] }>('select * from items_at_least(1)')).rows.length,
            label: await one(`select item_label(i) as l from ${q(ITEMS)} i where label = 'b'`),
            upper: await one(`select ${q(UPPER_FN)}(1, 'a', 1.5, 'z') as v`),
            bump: await one('call bump(1, null)'),
            upperRows: await one('select count(*)::int as n from "UPPER"'),
            aggregates: await one('select sum_sq(x)::int as sq, count_rows(*)::int as n from generate_series(1, 3) x'),
            next: await one(`select nextval('${q(SEQ).replace(/'/g, "''")}')::int as n`),
            range: await one(`select time_window('10:00', '11:00')::text as r`),
            view: (await trx.raw<{ rows: unknown[] }>(`select * from ${q(VIEW)}`)).rows.length,
          };
        });
        expect(seen).toEqual({
          calc: { short: 3, long: 5 },
          moods: { e: 'enum:happy', a: 'array:2', d: 'domain:5', u: 'uni:x', c: 'currency:eur' },
          split: { doubled: 6, label: 'x3' },
          swapped: { a: 2, b: 1 },
          items: 2,
          label: { l: 'b#2' },
          upper: { v: 'a1' },
          bump: { counter: 2, note: 'bumped' },
          upperRows: { n: 1 },
          aggregates: { sq: 14, n: 3 },
          next: { n: 1 },
          range: { r: '[10:00:00,11:00:00)' },
          view: 2,
        });
      }
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('an ordered-set aggregate (CREATE AGGREGATE … (float8 ORDER BY text)) in the tenant schema: the migration succeeds and the app can call it', async () => {
      const { db, roles } = ctx;
      const { all } = await exercise(ctx, 'ordset', (tree) =>
        sqlMigration(
          tree,
          '20260301000001_pick_at.ts',
          `
  create function _pick_collect(text[], text) returns text[] language sql immutable as $$ select $1 || $2 $$;
  create function _pick_final(text[], float8) returns text language sql immutable as $$ select array_to_string(array(select unnest($1) order by 1), ',') || '@' || $2 $$;
  create aggregate pick_at(float8 order by text) (sfunc = _pick_collect, stype = text[], finalfunc = _pick_final, initcond = '{}');
  revoke execute on function pick_at(float8, text) from public;
  `,
        ),
      );
      await expectSameAsOnAll(ctx, all);
      for (const org of all) {
        const picked = await withTenant(roles.app(), org, async (trx) => (await trx.raw<{ rows: { v: string }[] }>("select pick_at(0.5) within group (order by v) as v from (values ('c'), ('a'), ('b')) t(v)")).rows[0]!.v);
        // A user-defined ordered-set aggregate sorts its input itself (the final function here).
        expect(picked).toBe('a,b,c@0.5');
      }
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('a hypothetical-set aggregate a DBA installed into a tenant schema (rank_of(VARIADIC "any" ORDER BY VARIADIC "any"), superuser-owned: ON ALL only warns): the next migration succeeds, with the same privileges as ON ALL', async () => {
      const { db, roles } = ctx;
      const tree = copyTree('tenant-basic', 1);
      const orgs = ['org_dbaagg_1', 'org_dbaagg_2'];
      const options = { directory: tree, roles: roles.settings, concurrency: 1 };
      expect(outcomes(await provisionTenant(roles.tool(), orgs, options))).toEqual(orgs.map((org) => ({ org, status: 'provisioned' })));
      for (const org of orgs) {
        await db.knex().raw(
          `create aggregate ${q(tenantSchemaName(org))}.rank_of(variadic "any" order by variadic "any") (sfunc = ordered_set_transition_multi, stype = internal, finalfunc = rank_final, finalfunc_extra, hypothetical)`,
        );
      }
      // The old statements, sent by the tool on these schemas, succeed (a WARNING for rank_of).
      for (const org of orgs) expect(await grantOnAll(ctx, tenantSchemaName(org))).toBeUndefined();
      sqlMigration(tree, '20260301000001_more.ts', 'create table more_notes (id serial primary key, body text);');
      const result = await migrateTenants(roles.tool(), { ...options, tenants: orgs });
      expect(outcomes(result)).toEqual(orgs.map((org) => ({ org, status: 'migrated' })));
      await expectSameAsOnAll(ctx, orgs);
      for (const org of orgs) {
        const seen = await withTenant(roles.app(), org, async (trx) => {
          const id = (await trx('more_notes').insert({ body: 'x' }).returning('id'))[0].id as number;
          const rank = (await trx.raw<{ rows: { r: string }[] }>('select rank_of(2) within group (order by x) as r from (values (1), (3)) t(x)')).rows[0]!.r;
          return { id, rank: Number(rank) };
        });
        expect(seen).toEqual({ id: 1, rank: 2 });
      }
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('relations of every kind: inheritance children, typed tables, CREATE TABLE AS, SELECT INTO, nested and default partitions, materialized and security_invoker views, unlogged tables, RLS with a policy, rules, triggers, enum columns', async () => {
      const { db, roles } = ctx;
      const { all } = await exercise(ctx, 'kinds', (tree) =>
        sqlMigration(
          tree,
          '20260301000001_kinds.ts',
          `
  create type status as enum ('open', 'closed');
  create type address as (street text, city text);
  create table base_docs (id serial primary key, title text, state status not null default 'open');
  create table invoices (amount numeric) inherits (base_docs);
  create table addresses of address (primary key (street));
  create table doc_copy as select * from base_docs;
  select id, title into selected_docs from base_docs;
  create table events (at date not null, kind text not null, payload jsonb) partition by range (at);
  create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01') partition by list (kind);
  create table events_2026_click partition of events_2026 for values in ('click');
  create table events_2026_other partition of events_2026 default;
  create table events_default partition of events default;
  create materialized view doc_count as select count(*) as n from base_docs;
  create view open_docs with (security_invoker = true) as select * from base_docs where state = 'open';
  create unlogged table scratch_cache (k text primary key, v text);
  create table secured (id serial primary key, owner_org text default current_user, body text);
  alter table secured enable row level security;
  create policy everyone on secured using (true) with check (true);
  create table audit (id bigserial primary key, what text);
  create function audit_it() returns trigger language plpgsql as $$ begin insert into audit (what) values (tg_table_name || ':' || tg_op); return new; end $$;
  create trigger audit_docs after insert on base_docs for each row execute function audit_it();
  create view writable_docs as select id, title from base_docs;
  create rule docs_insert as on insert to writable_docs do instead insert into base_docs (title) values (new.title);
  do $$ begin execute format('revoke execute on all routines in schema %I from public', current_schema()); end $$;
  `,
        ),
      );
      const granted = await expectSameAsOnAll(ctx, all);
      for (const org of all) {
        for (const name of ['invoices', 'addresses', 'doc_copy', 'selected_docs', 'events_2026_click', 'events_2026_other', 'events_default', 'doc_count', 'open_docs', 'scratch_cache', 'secured', 'audit']) {
          expect(granted.get(org)).toContain(`relation ${name}: SELECT`);
        }
        const seen = await withTenant(roles.app(), org, async (trx) => {
          const count = async (sql: string) => Number((await trx.raw<{ rows: { n: string }[] }>(sql)).rows[0]!.n);
          await trx.raw("insert into base_docs (title) values ('a')");
          await trx.raw("insert into invoices (title, amount) values ('inv', 10)");
          await trx.raw("insert into addresses values ('Main St', 'Town')");
          await trx.raw("insert into doc_copy (id, title) values (1, 'c')");
          await trx.raw("insert into selected_docs values (1, 's')");
          await trx.raw(`insert into events values ('2026-05-01', 'click', '{}'), ('2026-05-01', 'view', '{}'), ('2030-01-01', 'x', '{}')`);
          await trx.raw("insert into scratch_cache values ('k', 'v')");
          await trx.raw("insert into secured (body) values ('b')");
          await trx.raw("insert into writable_docs (title) values ('via rule')");
          await trx.raw("update base_docs set title = title || '!' where title = 'a'");
          await trx.raw("delete from scratch_cache where k = 'k'");
          return {
            docs: await count('select count(*) as n from base_docs'),
            open: await count('select count(*) as n from open_docs'),
            audit: await count('select count(*) as n from audit'),
            events: await count('select count(*) as n from events'),
            secured: await count('select count(*) as n from secured'),
            docCount: await count('select n from doc_count'),
          };
        });
        // base_docs: 'a', 'inv' (child), 'via rule'; the trigger fired for the two direct inserts.
        expect(seen).toEqual({ docs: 3, open: 3, audit: 2, events: 3, secured: 1, docCount: 0 });
      }
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('objects moved into the schema with ALTER … SET SCHEMA (a table with its serial sequence, a sequence, a function, a view, a materialized view) and an extension installed into the schema are granted; one moved out is not', async () => {
      const { db, roles } = ctx;
      const { rows: available } = await roles.tool().raw<{ rows: { name: string }[] }>("select name from pg_available_extensions where name = 'citext'");
      const citext = available.length > 0;
      const { all } = await exercise(ctx, 'moves', (tree) =>
        sqlMigration(
          tree,
          '20260301000001_adopt_legacy.ts',
          `
  create table adv_scratch.legacy_orders (id serial primary key, note text);
  create sequence adv_scratch.legacy_numbers;
  create function adv_scratch.legacy_total() returns bigint language sql as $$ select 42::bigint $$;
  revoke execute on function adv_scratch.legacy_total() from public;
  create view adv_scratch.legacy_view as select 1 as one;
  create materialized view adv_scratch.legacy_mat as select 2 as two;
  create table leaving (id int, note text);
  do $$ begin
    execute format('alter table adv_scratch.legacy_orders set schema %I', current_schema());
    execute format('alter sequence adv_scratch.legacy_numbers set schema %I', current_schema());
    execute format('alter function adv_scratch.legacy_total() set schema %I', current_schema());
    execute format('alter view adv_scratch.legacy_view set schema %I', current_schema());
    execute format('alter materialized view adv_scratch.legacy_mat set schema %I', current_schema());
    execute format('alter table leaving rename to %I', 'leaving_' || current_schema());
    execute format('alter table %I set schema adv_scratch', 'leaving_' || current_schema());
    ${citext ? "if not exists (select from pg_extension where extname = 'citext') then execute format('create extension citext schema %I', current_schema()); end if;" : ''}
  end $$;
  `,
        ),
      );
      const granted = await expectSameAsOnAll(ctx, all);
      for (const org of all) {
        const lines = granted.get(org)!;
        for (const line of ['relation legacy_orders: INSERT', 'sequence legacy_orders_id_seq: USAGE', 'sequence legacy_numbers: USAGE', 'relation legacy_view: SELECT', 'relation legacy_mat: SELECT']) expect(lines).toContain(line);
        const seen = await withTenant(roles.app(), org, async (trx) => {
          const one = async (sql: string) => (await trx.raw<{ rows: Record<string, unknown>[] }>(sql)).rows[0];
          return {
            order: await one("insert into legacy_orders (note) values ('n') returning id"),
            next: await one("select nextval('legacy_numbers')::int as n"),
            total: await one('select legacy_total()::int as t'),
            view: await one('select one from legacy_view'),
            mat: await one('select two from legacy_mat'),
          };
        });
        expect(seen).toEqual({ order: { id: 1 }, next: { n: 1 }, total: { t: 42 }, view: { one: 1 }, mat: { two: 2 } });
        // What left the schema took no grant with it.
        const schema = tenantSchemaName(org);
        const { rows } = await db.knex().raw<{ rows: { n: number }[] }>(
          `select count(*)::int as n from pg_class c, aclexplode(c.relacl) a where c.relnamespace = 'adv_scratch'::regnamespace and a.grantee = ?::regrole`,
          [tenantRoleName(db.name, schema)],
        );
        expect(rows[0]!.n).toBe(0);
      }
      if (citext) {
        // The extension landed in the first tenant that ran the migration: its members are compared above.
        const { rows } = await db.knex().raw<{ rows: { schema: string }[] }>("select extnamespace::regnamespace::text as schema from pg_extension where extname = 'citext'");
        expect(all.map(tenantSchemaName)).toContain(rows[0]!.schema.replace(/"/g, ''));
      }
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('a schema of 2,000 tables with long names and a table of 1,500 columns: one statement grants them all, as ON ALL does', async () => {
      const { db, roles } = ctx;
      const { all } = await exercise(ctx, 'bulk', (tree) =>
        sqlMigration(
          tree,
          '20260301000001_bulk.ts',
          `
  do $$ begin
    for i in 1..2000 loop
      execute format('create table %I (id int, n int)', 'bulk_table_with_a_rather_long_descriptive_name_number_' || i);
    end loop;
    execute 'create table wide (' || (select string_agg(format('%I int', 'c' || i), ', ') from generate_series(1, 1500) i) || ')';
  end $$;
  `,
        ),
      );
      const granted = await expectSameAsOnAll(ctx, all);
      for (const org of all) {
        expect(granted.get(org)!.filter((line) => /^relation bulk_table_.*: (SELECT|INSERT|UPDATE|DELETE)$/.test(line))).toHaveLength(8000);
        const n = await withTenant(roles.app(), org, async (trx) => {
          await trx.raw('insert into bulk_table_with_a_rather_long_descriptive_name_number_2000 values (1, 2)');
          await trx.raw('insert into wide (c1, c1500) values (1, 1500)');
          return (await trx.raw<{ rows: { n: number }[] }>('select c1500 as n from wide')).rows[0]!.n;
        });
        expect(n).toBe(1500);
      }
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('objects a DBA put into a tenant schema, owned by another role (the tool holds SELECT and EXECUTE without grant option): the migration succeeds as with ON ALL (warnings, no error), with the same privileges', async () => {
      const { db, roles } = ctx;
      const orgs = ['org_owned_1', 'org_owned_2'];
      await migrateAfter(ctx, orgs, async () => {
        for (const org of orgs) {
          const s = q(tenantSchemaName(org));
          await db.knex().raw(`
            create table ${s}.dba_report (id int);
            alter table ${s}.dba_report owner to ${q(stranger)};
            grant select on ${s}.dba_report to ${q(roles.toolRole)};
            create sequence ${s}.dba_numbers;
            alter sequence ${s}.dba_numbers owner to ${q(stranger)};
            grant select on ${s}.dba_numbers to ${q(roles.toolRole)};
            create function ${s}.dba_fn(x int) returns int language sql as 'select x';
            alter function ${s}.dba_fn(int) owner to ${q(stranger)};
          `);
        }
      });
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it("a function a DBA put into a tenant schema whose argument type lives in the DBA's own schema (no USAGE for the tool; ON ALL only warns): the next migration succeeds, with the same privileges as ON ALL", async () => {
      const { db } = ctx;
      const orgs = ['org_dbatype_1', 'org_dbatype_2'];
      await migrateAfter(ctx, orgs, async () => {
        await db.knex().raw("create schema dba_private; create type dba_private.ticket as (id int, note text)");
        for (const org of orgs) {
          await db.knex().raw(`create function ${q(tenantSchemaName(org))}.ticket_note(t dba_private.ticket) returns text language sql as 'select t.note'`);
        }
        // The old statements, sent by the tool on these schemas, succeed (a WARNING for ticket_note).
        for (const org of orgs) expect(await grantOnAll(ctx, tenantSchemaName(org))).toBeUndefined();
      });
    });
  });

  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('the down route: a rollback that recreates a dropped table, a procedure with OUT parameters and an overloaded function (EXECUTE revoked from PUBLIC) grants them again', async () => {
      const { db, roles } = ctx;
      const tree = copyTree('tenant-basic', 1);
      const orgs = ['org_down_1', 'org_down_2'];
      const options = { directory: tree, roles: roles.settings, concurrency: 1 };
      const create = `
  create table "Legacy Scores, (old) 100%" (id serial primary key, score int);
  create procedure legacy_score(in who int, out score int) language plpgsql as $$ begin score := who * 10; end $$;
  create function legacy_label(s int) returns text language sql as $$ select 'int:' || s $$;
  create function legacy_label(s text) returns text language sql as $$ select 'text:' || s $$;
  revoke execute on procedure legacy_score(int, int) from public;
  revoke execute on function legacy_label(int), legacy_label(text) from public;
  `;
      const drop = 'drop table "Legacy Scores, (old) 100%"; drop procedure legacy_score(int, int); drop function legacy_label(int); drop function legacy_label(text);';
      sqlMigration(tree, '20260301000001_legacy.ts', create, drop);
      expect(outcomes(await provisionTenant(roles.tool(), orgs, options))).toEqual(orgs.map((org) => ({ org, status: 'provisioned' })));
      sqlMigration(tree, '20260301000002_drop_legacy.ts', drop, create);
      expect(outcomes(await migrateTenants(roles.tool(), { ...options, tenants: orgs }))).toEqual(orgs.map((org) => ({ org, status: 'migrated' })));
      const undone = await rollbackTenants(roles.tool(), { ...options, tenants: orgs });
      expect(outcomes(undone)).toEqual(orgs.map((org) => ({ org, status: 'rolled-back' })));
      await expectSameAsOnAll(ctx, orgs);
      for (const org of orgs) {
        const seen = await withTenant(roles.app(), org, async (trx) => {
          const [row] = await trx('Legacy Scores, (old) 100%').insert({ score: 1 }).returning('id');
          const called = (await trx.raw<{ rows: { score: number }[] }>('call legacy_score(4, null)')).rows[0]!.score;
          const labels = (await trx.raw<{ rows: { a: string; b: string }[] }>("select legacy_label(1) as a, legacy_label('x'::text) as b")).rows[0];
          return { id: row.id, called, labels };
        });
        expect(seen).toEqual({ id: 1, called: 40, labels: { a: 'int:1', b: 'text:x' } });
      }
    });
  });
  describe('in a database of its own', () => {
    const ctx = useScenario();
    it('a database where the DBA revoked USAGE on LANGUAGE plpgsql from PUBLIC (the tool is no superuser): provisioning on the modules route succeeds, as it did with the ON ALL statements', async () => {
      const { db, roles } = ctx;
      await db.knex().raw('revoke usage on language plpgsql from public');
      const tree = copyTree('tenant-basic', 2);
      const orgs = ['org_noplpgsql_1'];
      // The old statements need no procedural language: the tool can still send them here.
      await roles.tool().raw('create schema plain_probe; create table plain_probe.knex_migrations (id serial primary key); create table plain_probe.knex_migrations_lock (index serial primary key); create table plain_probe.t (id serial)');
      expect(await grantOnAll(ctx, 'plain_probe')).toBeUndefined();
      expect(await privilegesOf(ctx, 'plain_probe', reference)).toContain('relation t: SELECT');
      const schema = tenantSchemaName(orgs[0]!);
      const result = await provisionTenant(roles.tool(), orgs, { directory: tree, roles: roles.settings, concurrency: 1, fastPath: false });
      expect(outcomes(result)).toEqual(orgs.map((org) => ({ org, status: 'provisioned' })));
      await expectSameAsOnAll(ctx, orgs);
      const body = await withTenant(roles.app(), orgs[0]!, async (trx) => {
        const [user] = await trx('org_users').insert({ email: 'a@example.com' }).returning('id');
        await trx('notes').insert({ user_id: user.id, body: 'hello' });
        return trx('notes').pluck('body');
      });
      expect([schema, body]).toEqual([schema, ['hello']]);
    });
  });
});
