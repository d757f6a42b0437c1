import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { dropAllTenants, tenantSchemas as listTenantSchemas } from '../support/fleet.ts';
import { copyTree, fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_provision' });

// A run must leave no session idle in transaction and no advisory lock held.
afterEach(() => expectNoLeftovers(db.knex()));
const env = () => treeEnv(db.url, { tenant: fixture('tenant-basic') });

/** A real pair of org ids whose sha256 hashes share their first 10 hex characters (found by brute force). */
const COLLIDING = ['org_collide_60272', 'org_collide_2376068'] as const;

const tenantSchemas = () => listTenantSchemas(db.knex());

async function registry(): Promise<{ org_id: string; schema_name: string }[]> {
  return db.knex()('tenants').orderBy('org_id').select('org_id', 'schema_name');
}

beforeEach(() => dropAllTenants(db.knex()));

describe('provision:tenant', () => {
  it('creates the schema, every table, Knex bookkeeping and the registry row', async () => {
    const result = await runCli(['provision:tenant', 'org_2abc123def456', '--json'], { env: env() });
    expect(result.code).toBe(0);
    const schema = tenantSchemaName('org_2abc123def456');
    expect(schema).toMatch(/^tid_[0-9a-f]{10}$/);
    expect(JSON.parse(result.stdout)).toMatchObject({
      command: 'provision:tenant',
      ok: true,
      summary: { total: 1, provisioned: 1 },
      tenants: [{ orgId: 'org_2abc123def456', schema, status: 'provisioned', migrations: expect.arrayContaining(['20260101000001_org_users.ts']) }],
    });
    const tables = await db.knex()('information_schema.tables').where({ table_schema: schema }).pluck('table_name');
    expect(tables.sort()).toEqual(['knex_migrations', 'knex_migrations_lock', 'notes', 'org_users']);
    const applied = await db.knex().withSchema(schema).from('knex_migrations').orderBy('id').pluck('name');
    expect(applied).toEqual(['20260101000001_org_users.ts', '20260101000002_notes.ts', '20260201000003_nickname.ts']);
    expect(await registry()).toEqual([{ org_id: 'org_2abc123def456', schema_name: schema }]);
    // Stock Knex reads the tenant's state from the same bookkeeping.
    const [done, pending] = await db.knex().migrate.list({ directory: fixture('tenant-basic'), schemaName: schema, loadExtensions: ['.ts'] });
    expect(done).toHaveLength(3);
    expect(pending).toHaveLength(0);
  });

  it('without Citus: TENANT_MIGRATE_CITUS=on is refused with exit 2 and nothing written; auto makes plain schemas and status has no nodes', async () => {
    const refused = await runCli(['provision:tenant', 'org_citus_on'], { env: { ...env(), TENANT_MIGRATE_CITUS: 'on' } });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/citus extension is not created in this database/);
    expect(await tenantSchemas()).toEqual([]);
    expect((await runCli(['provision:tenant', 'org_citus_auto'], { env: env() })).code).toBe(0);
    const status = await runCli(['status', '--json'], { env: env() });
    expect(JSON.parse(status.stdout)).not.toHaveProperty('nodes');
    const move = await runCli(['move:tenant', 'org_citus_auto', '--to', '127.0.0.1:5432'], { env: env() });
    expect(move.code).toBe(2);
    expect(move.stderr).toMatch(/needs a Citus coordinator/);
  });

  it('is idempotent: again says already provisioned, exit 0, one tenant', async () => {
    expect((await runCli(['provision:tenant', 'org_again'], { env: env() })).code).toBe(0);
    const again = await runCli(['provision:tenant', 'org_again'], { env: env() });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already provisioned|up to date/);
    expect(await registry()).toHaveLength(1);
  });

  it('six concurrent calls for one org all succeed and leave one tenant', async () => {
    const runs = await Promise.all(Array.from({ length: 6 }, () => runCli(['provision:tenant', 'org_webhook_retry', '--json'], { env: env() })));
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    const statuses = runs.map((run) => JSON.parse(run.stdout).tenants[0].status).sort();
    expect(statuses.filter((status: string) => status === 'provisioned')).toHaveLength(1);
    expect(await registry()).toEqual([{ org_id: 'org_webhook_retry', schema_name: tenantSchemaName('org_webhook_retry') }]);
    expect(await tenantSchemas()).toEqual([tenantSchemaName('org_webhook_retry')]);
  });

  it('refuses a colliding org id with exit 2 naming both, and the first tenant keeps its data', async () => {
    const [first, second] = COLLIDING;
    expect(tenantSchemaName(first)).toBe(tenantSchemaName(second));
    expect((await runCli(['provision:tenant', first], { env: env() })).code).toBe(0);
    const schema = tenantSchemaName(first);
    await db.knex().withSchema(schema).into('org_users').insert({ email: 'keep@example.com' });

    const result = await runCli(['provision:tenant', second], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(first);
    expect(result.stderr).toContain(second);
    expect(await registry()).toEqual([{ org_id: first, schema_name: schema }]);
    expect(await db.knex().withSchema(schema).from('org_users').pluck('email')).toEqual(['keep@example.com']);

    // Both in one call: refused before anything is written.
    await db.knex().raw('drop schema ?? cascade', [schema]);
    await db.knex()('tenants').delete();
    const both = await runCli(['provision:tenant', first, second], { env: env() });
    expect(both.code).toBe(2);
    expect(await tenantSchemas()).toEqual([]);
  });

  it.each([
    ['empty', ''],
    ['spaces', 'org with spaces'],
    ['newline', 'org_a\norg_b'],
    ['300 characters', `org_${'x'.repeat(296)}`],
  ])('refuses a bad org id (%s) with exit 2, states the rule, writes nothing — even beside good ids', async (_label, bad) => {
    const result = await runCli(['provision:tenant', 'org_good', bad], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/1 to 128 characters/);
    expect(await tenantSchemas()).toEqual([]);
  });

  it('refuses an org id with a NUL (which no shell can pass) through the library API, writing nothing', async () => {
    await expect(provisionTenant(db.knex(), ['org_good', 'org_\u0000x'], { directory: fixture('tenant-basic') })).rejects.toThrow(
      /contains a control character.*1 to 128 characters/,
    );
    expect(await tenantSchemas()).toEqual([]);
  });

  it('quotes and semicolons are data, never SQL', async () => {
    const orgId = `org_x'";drop_table_tenants;--`;
    const result = await runCli(['provision:tenant', orgId, '--json'], { env: env() });
    expect(result.code).toBe(0);
    expect(await registry()).toEqual([{ org_id: orgId, schema_name: tenantSchemaName(orgId) }]);
  });

  it('refuses to provision over a schema that exists but is not registered', async () => {
    await db.knex().raw('create schema ??', [tenantSchemaName('org_orphaned')]);
    const result = await runCli(['provision:tenant', 'org_orphaned'], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/already exists but no tenant is registered/);
  });

  it('refuses, with exit 2 and what to do, an org that is registered but whose schema is gone', async () => {
    expect((await runCli(['provision:tenant', 'org_lost'], { env: env() })).code).toBe(0);
    await db.knex().raw('drop schema ?? cascade', [tenantSchemaName('org_lost')]);
    const result = await runCli(['provision:tenant', 'org_new', 'org_lost'], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`"org_lost" (${tenantSchemaName('org_lost')}): registered, but the schema is missing`);
    expect(result.stderr).toMatch(/Restore the schema from a backup, or delete the registry row/);
    expect(await tenantSchemas()).toEqual([]); // org_new was not provisioned either
  });

  it('is atomic: a failing migration leaves no schema, no bookkeeping and no registry row', async () => {
    // The first migration creates org_users; the second throws after it ran.
    const tree = copyTree('tenant-basic', 1);
    fs.writeFileSync(path.join(tree, '20260101000002_throws.ts'), "export async function up(knex) { await knex.raw('select 1/0'); }\nexport async function down() {}\n");
    const result = await runCli(['provision:tenant', 'org_atomic', '--json'], { env: treeEnv(db.url, { tenant: tree }) });
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    expect(json.tenants[0]).toMatchObject({ orgId: 'org_atomic', status: 'failed' });
    expect(json.tenants[0].error).toMatch(/20260101000002_throws\.ts \(up\) failed: division by zero/);
    expect(await tenantSchemas()).toEqual([]);
    expect(await registry()).toEqual([]);
  });
});
