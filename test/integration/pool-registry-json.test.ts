/**
 * Issue 14, part 4: waiting for a pooled connection never fails a tenant; a table named like the
 * registry that is not tenant-migrate's stops the run before anything changes, and the registry's
 * name is configurable; a parse error under --json still prints the JSON document.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants, tenantSchemas } from '../support/fleet.ts';
import { addFromFixture, copyTree, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_pool_registry' });

beforeEach(async () => {
  await dropAllTenants(db.knex());
  await db.knex().raw('drop table if exists public.tm_registry, public.tenant_migrate_releases');
});

async function columnsOf(table: string): Promise<string[]> {
  const rows = await db.knex()('information_schema.columns').where({ table_schema: 'public', table_name: table }).orderBy('column_name').pluck('column_name');
  return rows as string[];
}

describe('a pool smaller than the concurrency', () => {
  it('works on as many tenants as there are connections, says so once, and fails none', async () => {
    const orgIds = ['org_p1', 'org_p2', 'org_p3', 'org_p4', 'org_p5'];
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgIds, { directory: tree });
    addFromFixture(tree, 'tenant-slow-pool', '20260101000002_hold_connection.ts');
    // Each tenant holds the one connection for 2 s; a tenant waiting for it would give up after
    // 1.5 s (long enough for the connection itself to be opened on a busy machine).
    const env = { ...treeEnv(db.url, { tenant: tree }), DB_POOL_MAX: '1', DB_ACQUIRE_TIMEOUT_MS: '1500' };
    const run = await runCli(['migrate:tenants', '--concurrency', '4', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).summary).toMatchObject({ total: 5, migrated: 5 });
    expect(run.stderr.match(/concurrency 4 is more than the 1 connection of the pool/g)).toHaveLength(1);
  });
});

describe('TENANT_REGISTRY_TABLE', () => {
  it("refuses an application's own table of the registry's name (exit 2, nothing changed), in dry runs too", async () => {
    await db.knex().raw('create table public.tenants (id serial primary key, name text not null)');
    await db.knex()('tenants').insert({ name: 'Acme' });
    const env = treeEnv(db.url, {});
    const commands = [['migrate:master'], ['provision:tenant', 'org_app'], ['migrate:tenants'], ['rollback:tenants']];
    // The dry runs refuse it as the real commands do: a dry run that says go where the deploy stops would mislead.
    for (const args of [...commands, ...commands.map((command) => [...command, '--dry-run']), ['status']]) {
      const result = await runCli([...args, '--json'], { env });
      expect(result.code, args.join(' ')).toBe(2);
      expect(JSON.parse(result.stdout).error).toMatch(/public\.tenants exists but is not tenant-migrate's registry.*TENANT_REGISTRY_TABLE/);
    }
    expect(await columnsOf('tenants')).toEqual(['id', 'name']);
    expect(await tenantSchemas(db.knex())).toEqual([]);
    expect(await db.knex()('knex_migrations').withSchema('public').count().catch(() => 'none')).toBe('none');
  }, 180_000); // nine CLI runs, each a Node start-up (slow on a loaded CI machine)

  it('keeps the registry in the table it names, next to an application table called tenants', async () => {
    await db.knex().raw('create table public.tenants (id serial primary key, name text not null)');
    const env = { ...treeEnv(db.url, {}), TENANT_REGISTRY_TABLE: 'public.tm_registry' };
    expect((await runCli(['provision:tenant', 'org_reg'], { env })).code).toBe(0);
    expect(await db.knex()('tm_registry').pluck('org_id')).toEqual(['org_reg']);
    expect(await columnsOf('tenants')).toEqual(['id', 'name']);
    const status = JSON.parse((await runCli(['status', '--verify', '--json'], { env })).stdout);
    expect(status.tenants).toMatchObject({ total: 1, upToDate: 1, driftedOrgIds: [] });
    expect((await runCli(['migrate:tenants', '--verify'], { env })).code).toBe(0);
    expect(await tenantSchemas(db.knex())).toEqual([tenantSchemaName('org_reg')]);
  });

  it('refuses a value that is not a table name (exit 2)', async () => {
    const result = await runCli(['status'], { env: { ...treeEnv(db.url, {}), TENANT_REGISTRY_TABLE: 'a.b.c' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/TENANT_REGISTRY_TABLE must be a table name/);
  });
});

describe('a command-line parse error with --json', () => {
  it('prints the { command, ok: false, error } document and exits 2', async () => {
    const result = await runCli(['migrate:tenants', '--json', '--no-such-flag'], { env: treeEnv(db.url, {}) });
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toEqual({ command: 'migrate:tenants', ok: false, error: expect.stringMatching(/unknown option '--no-such-flag'/) });
  });
});
