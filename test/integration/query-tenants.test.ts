/**
 * The superadmin path: forEachTenant (library) and query:tenants (CLI) — one read in every tenant,
 * rows tagged with org_id, and nothing but a read ever runs.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { forEachTenant } from '../../src/tenants/for-each-tenant.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { queryTenants } from '../../src/tenants/query-tenants.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_query' });
const ORGS = ['org_qa', 'org_qb', 'org_qc'];
const env = () => treeEnv(db.url, { tenant: fixture('tenant-basic') });

afterEach(() => expectNoLeftovers(db.knex()));

beforeAll(async () => {
  await provisionTenant(db.knex(), ORGS, { directory: fixture('tenant-basic') });
  for (const [i, orgId] of ORGS.entries()) {
    await withTenant(db.knex(), orgId, (trx) =>
      trx('org_users').insert(Array.from({ length: i + 1 }, (_, n) => ({ email: `${n}@${orgId}.test` }))),
    );
  }
});

/** Everything a stray write could change: row counts of every tenant table, and the tables themselves. */
async function snapshot(): Promise<unknown> {
  const { rows } = await db.knex().raw(
    `select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 'tid\\_%' or n.nspname = 'public' order by 1, 2`,
  );
  const counts = await forEachTenant(db.knex(), (trx) => trx('org_users').count('* as n').first());
  const sequences = await db.knex().raw("select schemaname, sequencename, last_value from pg_sequences where schemaname like 'tid\\_%' order by 1, 2");
  return { rows, counts: counts.results, sequences: sequences.rows };
}

describe('forEachTenant', () => {
  it("runs fn in each tenant's own schema and returns per-tenant values and errors", async () => {
    const { ok, results } = await forEachTenant(db.knex(), async (trx, tenant) => {
      if (tenant.orgId === 'org_qb') throw new Error('boom in b');
      return (await trx('org_users').count('* as n').first())?.n;
    });
    expect(ok).toBe(false);
    expect(results.map((r) => [r.orgId, r.ok ? Number(r.value) : r.error.includes('boom in b')])).toEqual([
      ['org_qa', 1],
      ['org_qb', true],
      ['org_qc', 3],
    ]);
  });

  it('narrows to named tenants and refuses an unknown one with a usage error, running nothing', async () => {
    const { results } = await forEachTenant(db.knex(), (trx) => trx('org_users').count('* as n').first(), { tenants: ['org_qc'] });
    expect(results.map((r) => r.orgId)).toEqual(['org_qc']);
    await expect(forEachTenant(db.knex(), async () => 1, { tenants: ['org_nope'] })).rejects.toThrow(/Not a registered tenant/);
  });
});

describe('query:tenants', () => {
  it('prints every tenant’s rows with org_id first (--json), in org id order', async () => {
    const result = await runCli(['query:tenants', '--sql', "select count(*)::int as users, '?' as mark from org_users", '--json'], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      ok: true,
      rows: [
        { org_id: 'org_qa', users: 1, mark: '?' },
        { org_id: 'org_qb', users: 2, mark: '?' },
        { org_id: 'org_qc', users: 3, mark: '?' },
      ],
      failed: [],
    });
    const text = await runCli(['query:tenants', '--sql', 'select email from org_users order by email', '--tenant', 'org_qb'], { env: env() });
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n').filter(Boolean)).toEqual(['org_id  email', 'org_qb  0@org_qb.test', 'org_qb  1@org_qb.test', '(2 rows)']);
  });

  it.each([
    ['an INSERT', "insert into org_users (email) values ('x@x')"],
    ['DDL', 'drop table org_users'],
    ['a second statement behind a SELECT', 'select 1; drop table org_users'],
    ['SELECT … INTO', 'select * into stolen from org_users'],
    ['text that does not parse', 'selec 1'],
  ])('refuses %s with exit 1 before touching any tenant', async (_what, sql) => {
    const before = await snapshot();
    const result = await runCli(['query:tenants', '--sql', sql, '--json'], { env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Nothing was run/);
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ['nextval()', "select nextval(pg_get_serial_sequence('org_users', 'id'))"],
    ['a data-modifying WITH', "with gone as (delete from org_users returning id) select count(*) from gone"],
    ['SELECT … FOR UPDATE', 'select id from org_users for update'],
  ])('a read that hides %s fails in every tenant (READ ONLY) with exit 1, and nothing changes', async (_what, sql) => {
    const before = await snapshot();
    const result = await runCli(['query:tenants', '--sql', sql, '--json'], { env: env() });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.ok).toBe(false);
    expect(report.failed.map((f: { orgId: string }) => f.orgId)).toEqual(ORGS);
    expect(report.failed[0].error).toMatch(/read-only transaction/);
    expect(await snapshot()).toEqual(before);
  });

  it('a write READ ONLY lets through (lo_create) is rolled back, and what a read leaves in the session is reset', async () => {
    const largeObjects = async () => Number((await db.knex().raw('select count(*) as n from pg_largeobject_metadata')).rows[0].n);
    const before = await largeObjects();
    const written = await queryTenants(db.knex(), 'select lo_create(0) > 0 as made');
    // PostgreSQL 15 lets lo_create() run READ ONLY (the rollback undoes it); 17 refuses it. Either
    // way each tenant answered, and no large object is left.
    expect(written.rows.length + written.failed.length).toBe(3);
    for (const row of written.rows) expect(row.made).toBe(true);
    expect(await largeObjects()).toBe(before);

    const held = await queryTenants(db.knex(), "select pg_advisory_lock(4242) is not null as locked, set_config('search_path', 'pg_catalog', false) as path", { concurrency: 1 });
    expect(held.ok).toBe(true);
    const { rows } = await db.knex().raw("select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = 4242");
    expect(rows[0].n).toBe(0);
    // The pool's connections kept no search_path either: a plain query still finds public's tables.
    const paths = await Promise.all(Array.from({ length: 3 }, () => db.knex().raw('show search_path')));
    for (const { rows: shown } of paths) expect(shown[0].search_path).toBe('"$user", public');
  });

  it('stops a slow statement at --statement-timeout and reports the tenant failed', async () => {
    const result = await runCli(['query:tenants', '--sql', 'select pg_sleep(5)', '--statement-timeout', '200', '--tenant', 'org_qa', '--json'], { env: env() });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).failed[0].error).toMatch(/statement timeout/);
  });

  it('bad flags: exit 2', async () => {
    expect((await runCli(['query:tenants', '--sql', 'select 1', '--statement-timeout', 'soon'], { env: env() })).code).toBe(2);
    expect((await runCli(['query:tenants', '--sql', 'select 1', '--tenant', 'org_nope'], { env: env() })).code).toBe(2);
  });
});
