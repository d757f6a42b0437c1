/**
 * Issue 21: isolation the database enforces. The tool runs as a non-superuser with CREATEROLE, the
 * application as its own login role that owns nothing; inside `withTenant` PostgreSQL itself lets
 * the application reach its tenant's tables and nothing else.
 */
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { rollbackTenants } from '../../src/tenants/rollback-tenants.ts';
import { forEachTenant } from '../../src/tenants/for-each-tenant.ts';
import { tenantRoleName, tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { quoteIdent, useFreshDatabase } from '../support/database.ts';
import { useRoleLogins } from '../support/roles.ts';
import { copyTree, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_roles' });
const roles = useRoleLogins(db);

const A = 'org_roles_a';
const B = 'org_roles_b';
const C = 'org_roles_c';
const schemaA = tenantSchemaName(A);
const schemaB = tenantSchemaName(B);

/** The SQLSTATE of a query's failure (undefined when it succeeded). */
async function sqlstate(run: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await run();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** Every table the tool owns in public (the registry, releases, checksums, run ledger …). */
async function toolTables(): Promise<string[]> {
  const { rows } = await roles.tool().raw<{ rows: { name: string }[] }>(
    `select quote_ident(schemaname) || '.' || quote_ident(tablename) as name from pg_tables where schemaname = 'public' and tableowner = current_user order by 1`,
  );
  return rows.map((row) => row.name);
}

// CLI runs start a process each: generous limits for a loaded machine.
describe('per-tenant roles (tool: non-superuser with CREATEROLE; app: its own login role)', { timeout: 240_000 }, () => {
  const tree = copyTree('tenant-basic', 2); // org_users, notes
  const options = () => ({ directory: tree, roles: roles.settings, concurrency: 2 });

  it('provisioning gives each tenant its role; inside withTenant the app reads and writes its own tables (both executor routes)', async () => {
    const result = await provisionTenant(roles.tool(), [A, B], options());
    expect(result.ok).toBe(true);
    expect(result.summary).toMatchObject({ provisioned: 2, rolesCreated: 2 });
    expect(result.tenants.map((tenant) => tenant.role)).toEqual(['created', 'created']);
    for (const org of [A, B]) {
      const id = await withTenant(roles.app(), org, async (trx) => {
        const [user] = await trx('org_users').insert({ email: `${org}@example.com` }).returning('id');
        await trx('notes').insert({ user_id: user.id, body: `note of ${org}` });
        const { rows } = await trx.raw<{ rows: { who: string }[] }>('select current_user as who');
        expect(rows[0]!.who).toBe(tenantRoleName(db.name, tenantSchemaName(org)));
        return user.id as number;
      });
      expect(id).toBeGreaterThan(0);
      const notes = await withTenant(roles.app(), org, (trx) => trx('notes').pluck('body'));
      expect(notes).toEqual([`note of ${org}`]);
    }
  });

  it("another tenant's tables, the bookkeeping, the registry and every tool table are refused with 42501 inside withTenant", async () => {
    const refused = async (sql: string) => sqlstate(() => withTenant(roles.app(), A, (trx) => trx.raw(sql)));
    expect(await refused(`select * from ${quoteIdent(schemaB)}.notes`)).toBe('42501');
    expect(await refused(`insert into ${quoteIdent(schemaB)}.org_users (email) values ('x')`)).toBe('42501');
    expect(await refused('select * from knex_migrations')).toBe('42501');
    expect(await refused('select * from knex_migrations_lock')).toBe('42501');
    expect(await refused(`select * from ${quoteIdent(schemaB)}.knex_migrations`)).toBe('42501');
    expect(await refused('create table planted (id int)')).toBe('42501');
    const tables = await toolTables();
    expect(tables).toContain('public.tenants');
    for (const table of tables) expect([table, await refused(`select * from ${table}`)]).toEqual([table, '42501']);
  });

  it('outside withTenant the login role reaches no tenant table', async () => {
    for (const schema of [schemaA, schemaB]) {
      expect(await sqlstate(() => roles.app().raw(`select * from ${quoteIdent(schema)}.notes`))).toBe('42501');
      expect(await sqlstate(() => roles.app().raw(`insert into ${quoteIdent(schema)}.org_users (email) values ('x')`))).toBe('42501');
    }
  });

  it('a shared table granted to the group in the master tree is readable inside withTenant', async () => {
    const group = (await roles.tool().raw<{ rows: { name: string }[] }>(`select rolname as name from pg_roles where rolname like 'tm\\_tenants\\_%' and pg_has_role(?, oid, 'MEMBER')`, [tenantRoleName(db.name, schemaA)])).rows[0]!.name;
    await roles.tool().raw('create table public.plans (id serial primary key, name text)');
    await roles.tool().raw("insert into public.plans (name) values ('pro')");
    await roles.tool().raw(`grant select on public.plans to ${quoteIdent(group)}`);
    expect(await withTenant(roles.app(), A, (trx) => trx('plans').pluck('name'))).toEqual(['pro']);
    // Granted to the group, not to the login role: outside withTenant it stays closed.
    expect(await sqlstate(() => roles.app().raw('select * from public.plans'))).toBe('42501');
  });

  it("a temporary table left on a pooled connection does not shadow the next tenant's table", async () => {
    const single = db.createKnex({ connection: { ...db.connection, user: roles.appRole, password: new URL(roles.url('app')).password }, pool: { min: 1, max: 1 } });
    await withTenant(single, A, (trx) => trx.raw("create temporary table notes (body text) on commit preserve rows; insert into pg_temp.notes values ('temp of A')"));
    const seen = await withTenant(single, B, (trx) => trx('notes').pluck('body'));
    expect(seen).toEqual([`note of ${B}`]);
  });

  it('tables a later migration creates are granted too (sequences included), on both routes of a fleet run', async () => {
    writeMigration(tree, '20260301000003_tags.ts', "await knex.schema.createTable('tags', (t) => { t.increments('id'); t.text('label'); });", "await knex.schema.dropTable('tags');");
    const result = await migrateTenants(roles.tool(), options());
    expect(result.summary).toMatchObject({ migrated: 2 });
    for (const org of [A, B]) {
      const labels = await withTenant(roles.app(), org, async (trx) => {
        await trx('tags').insert({ label: org });
        return trx('tags').pluck('label');
      });
      expect(labels).toEqual([org]);
    }
  });

  it('a rollback (the down route) and the migration again keep the grants', async () => {
    const undone = await rollbackTenants(roles.tool(), options());
    expect(undone.summary).toMatchObject({ rolledBack: 2 });
    expect(await withTenant(roles.app(), A, (trx) => trx('notes').pluck('body'))).toEqual([`note of ${A}`]);
    const again = await migrateTenants(roles.tool(), options());
    expect(again.summary).toMatchObject({ migrated: 2 });
    expect(await withTenant(roles.app(), B, async (trx) => {
      await trx('tags').insert({ label: 'again' });
      return trx('tags').pluck('label');
    })).toEqual(['again']);
  });

  it('a tenant provisioned before roles were on is refused by withTenant, then gets its role and grants at the next migrate:tenants', async () => {
    const off = await provisionTenant(roles.tool(), [C], { ...options(), roles: { enabled: false } });
    expect(off.tenants[0]).toMatchObject({ status: 'provisioned' });
    expect(off.tenants[0]).not.toHaveProperty('role');
    await expect(withTenant(roles.app(), C, (trx) => trx('notes').select())).rejects.toThrow(/has no tenant role/);
    const run = await runCli(['migrate:tenants', '--json'], { env: { ...roles.env(), TENANT_MIGRATIONS_DIR: tree, MASTER_MIGRATIONS_DIR: tree } });
    expect(run.code, run.stderr).toBe(0);
    const json = JSON.parse(run.stdout) as { summary: Record<string, number>; tenants: { orgId: string; role?: string; status: string }[] };
    expect(json.summary).toMatchObject({ total: 3, upToDate: 3, rolesCreated: 1 });
    expect(json.tenants.find((tenant) => tenant.orgId === C)).toMatchObject({ status: 'up-to-date', role: 'created' });
    expect(await withTenant(roles.app(), C, (trx) => trx('tags').pluck('label'))).toEqual([]);
    // The superadmin path runs as the tool (it reads the registry), and as each tenant's role inside.
    const results = await forEachTenant(roles.tool(), async (trx) => (await trx.raw<{ rows: { who: string }[] }>('select current_user as who')).rows[0]!.who);
    expect(results.results.map((r) => (r.ok ? r.value : r.error))).toEqual(
      [A, B, C].map((org) => tenantRoleName(db.name, tenantSchemaName(org))),
    );
  });

  it('query:tenants runs as each tenant role: the registry is out of its reach', async () => {
    const env = { ...roles.env(), TENANT_MIGRATIONS_DIR: tree, MASTER_MIGRATIONS_DIR: tree };
    const ok = await runCli(['query:tenants', '--sql', 'select count(*)::int as n from notes', '--json'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    const denied = await runCli(['query:tenants', '--sql', 'select count(*) from public.tenants', '--json'], { env });
    expect(denied.code).toBe(1);
    expect(denied.stdout + denied.stderr).toMatch(/permission denied/);
  });

  it('TENANT_ROLES=off, then migrate:tenants drops every tenant role (reported); the login role then reaches nothing', async () => {
    const env = { ...roles.env({ TENANT_ROLES: 'off' }), TENANT_MIGRATIONS_DIR: tree, MASTER_MIGRATIONS_DIR: tree };
    const run = await runCli(['migrate:tenants', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const json = JSON.parse(run.stdout) as { summary: Record<string, number>; tenants: { role?: string }[] };
    expect(json.summary).toMatchObject({ total: 3, rolesDropped: 3 });
    expect(json.tenants.every((tenant) => tenant.role === 'dropped')).toBe(true);
    const left = await roles.tool().raw<{ rows: unknown[] }>('select 1 from pg_roles where rolname like ?', [`${tenantRoleName(db.name, '')}%`]);
    expect(left.rows).toEqual([]);
    expect(await sqlstate(() => withTenant(roles.app(), A, (trx) => trx.raw(`select * from ${quoteIdent(schemaA)}.notes`)))).toBe('42501');
    // And on again: every tenant gets its role back.
    const again = await runCli(['migrate:tenants', '--json'], { env: { ...env, TENANT_ROLES: 'on' } });
    expect(JSON.parse(again.stdout).summary).toMatchObject({ rolesCreated: 3 });
    expect(await withTenant(roles.app(), A, (trx) => trx('notes').pluck('body'))).toEqual([`note of ${A}`]);
  });
});

/** Knex is imported for the type of the helper above only. */
export type { Knex };
