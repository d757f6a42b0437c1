import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_fleet' });

// A run must leave no session idle in transaction and no advisory lock held.
afterEach(() => expectNoLeftovers(db.knex()));

/** Provisions org ids with only the first `count` files of a fixture tree; returns the (copied) tree. */
async function fleetAt(tree: string, count: number, orgIds: string[]): Promise<string> {
  const dir = copyTree(tree, count);
  const result = await provisionTenant(db.knex(), orgIds, { directory: dir });
  expect(result.ok).toBe(true);
  return dir;
}

async function applied(orgId: string): Promise<string[]> {
  return db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name');
}

async function tables(orgId: string): Promise<string[]> {
  const rows = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName(orgId) }).pluck('table_name');
  return (rows as string[]).sort();
}

beforeEach(() => dropAllTenants(db.knex()));

describe('migrate:tenants', () => {
  it('brings every tenant to the newest migration and reports the JSON document of PRODUCT.md', async () => {
    const tree = await fleetAt('tenant-basic', 1, ['org_a', 'org_b']);
    addFromFixture(tree, 'tenant-basic', '20260101000002_notes.ts');
    addFromFixture(tree, 'tenant-basic', '20260201000003_nickname.ts');
    const result = await runCli(['migrate:tenants', '--json'], { env: treeEnv(db.url, { tenant: tree }) });
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json).toMatchObject({
      command: 'migrate:tenants',
      ok: true,
      summary: { total: 2, migrated: 2 },
      tenants: [
        { orgId: 'org_a', schema: tenantSchemaName('org_a'), status: 'migrated', migrations: ['20260101000002_notes.ts', '20260201000003_nickname.ts'] },
        { orgId: 'org_b', status: 'migrated' },
      ],
    });
    expect(typeof json.summary.ms).toBe('number');
    expect(typeof json.tenants[0].ms).toBe('number');
    // All pending migrations of a tenant share one batch.
    const batches = await db.knex().withSchema(tenantSchemaName('org_a')).from('knex_migrations').orderBy('id').pluck('batch');
    expect(batches).toEqual([1, 2, 2]);

    const noop = await runCli(['migrate:tenants', '--json'], { env: treeEnv(db.url, { tenant: tree }) });
    expect(JSON.parse(noop.stdout).summary).toEqual({ total: 2, upToDate: 2, ms: expect.any(Number) });
  });

  it('a tenant that fails midway keeps NONE of its pending migrations; --continue-on-error finishes the others; exit 1', async () => {
    const tree = await fleetAt('tenant-basic', 1, ['org_1', 'org_2', 'org_3']);
    await db.knex().withSchema(tenantSchemaName('org_2')).into('org_users').insert({ email: 'poison@example.com' });
    addFromFixture(tree, 'tenant-failing', '20260101000002_fails_for_some.ts');

    const result = await runCli(['migrate:tenants', '--json', '--continue-on-error', '--concurrency', '1'], {
      env: treeEnv(db.url, { tenant: tree }),
    });
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    expect(json.ok).toBe(false);
    expect(json.summary).toMatchObject({ total: 3, migrated: 2, failed: 1 });
    const failed = json.tenants.find((tenant: { orgId: string }) => tenant.orgId === 'org_2');
    expect(failed).toMatchObject({ status: 'failed', schema: tenantSchemaName('org_2'), migrations: [] });
    expect(failed.error).toContain('org_2');
    expect(failed.error).toContain(tenantSchemaName('org_2'));
    expect(failed.error).toContain('20260101000002_fails_for_some.ts');
    expect(failed.error).toContain('poisoned tenant');
    expect(failed.error).toContain('HINT: remove the poison row');

    // The migration created audit_log before it raised: none of it may remain.
    expect(await tables('org_2')).not.toContain('audit_log');
    expect(await applied('org_2')).toEqual(['20260101000001_org_users.ts']);
    expect(await tables('org_1')).toContain('audit_log');
    expect(await tables('org_3')).toContain('audit_log');
    const registry = await db.knex()('tenants').where({ org_id: 'org_2' }).first('migration_version');
    expect(registry.migration_version).toBe('20260101000001_org_users.ts');
  });

  it('fails fast by default: no tenant starts after the first failure, the rest are skipped', async () => {
    const orgs = ['org_f1', 'org_f2', 'org_f3', 'org_f4'];
    const tree = await fleetAt('tenant-basic', 1, orgs);
    await db.knex().withSchema(tenantSchemaName('org_f1')).into('org_users').insert({ email: 'poison@example.com' });
    addFromFixture(tree, 'tenant-failing', '20260101000002_fails_for_some.ts');

    const result = await runCli(['migrate:tenants', '--json', '--concurrency', '1'], { env: treeEnv(db.url, { tenant: tree }) });
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    expect(json.summary).toMatchObject({ total: 4, failed: 1, skipped: 3 });
    expect(json.tenants.map((tenant: { status: string }) => tenant.status)).toEqual(['failed', 'skipped', 'skipped', 'skipped']);
    for (const orgId of orgs.slice(1)) expect(await applied(orgId)).toEqual(['20260101000001_org_users.ts']);
  });

  it('--tenant narrows the run; an unregistered org id is exit 2 and nothing runs', async () => {
    const tree = await fleetAt('tenant-basic', 1, ['org_x', 'org_y']);
    addFromFixture(tree, 'tenant-basic', '20260101000002_notes.ts');
    const env = treeEnv(db.url, { tenant: tree });

    const unknown = await runCli(['migrate:tenants', '--tenant', 'org_x', '--tenant', 'org_nobody'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('org_nobody');
    expect(await applied('org_x')).toHaveLength(1);

    const one = await runCli(['migrate:tenants', '--tenant', 'org_x', '--json'], { env });
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).tenants.map((tenant: { orgId: string }) => tenant.orgId)).toEqual(['org_x']);
    expect(await applied('org_x')).toHaveLength(2);
    expect(await applied('org_y')).toHaveLength(1);
  });

  it('runs a transaction:false migration alone, with a warning, and records it', async () => {
    const tree = await fleetAt('tenant-basic', 1, ['org_nt']);
    addFromFixture(tree, 'tenant-non-transactional', '20260101000002_email_index_concurrently.ts');
    addFromFixture(tree, 'tenant-non-transactional', '20260101000003_settings.ts');
    const result = await runCli(['migrate:tenants'], { env: treeEnv(db.url, { tenant: tree }) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/20260101000002_email_index_concurrently\.ts has config\.transaction = false/);
    expect(await applied('org_nt')).toHaveLength(3);
    const { rows } = await db.knex().raw('select indexname from pg_indexes where schemaname = ?', [tenantSchemaName('org_nt')]);
    expect(rows.map((row: { indexname: string }) => row.indexname)).toContain('org_users_created_at_idx');
    expect(await tables('org_nt')).toContain('settings');
  });

  it('refuses a new file named before the newest applied one (it would run out of order): exit 2, no release, no new org', async () => {
    const tree = copyTree('tenant-basic');
    await provisionTenant(db.knex(), ['org_order'], { directory: tree });
    fs.writeFileSync(`${tree}/20260101000001_a_late_arrival.ts`, 'export async function up() {}\nexport async function down() {}\n');
    const releases = async () => db.knex()('tenant_migrate_releases').count({ n: '*' });
    const before = await releases();
    const env = treeEnv(db.url, { tenant: tree });
    // A new org would get it in order and wedge the fleet; a dry run says what the run would.
    for (const args of [['migrate:tenants'], ['provision:tenant', 'org_order_new'], ['migrate:tenants', '--dry-run'], ['provision:tenant', 'org_order_new', '--dry-run']]) {
      const result = await runCli(args, { env });
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(/20260101000001_a_late_arrival\.ts \(tenant tree\) is pending but sorts before the already applied 20260201000003_nickname\.ts/);
    }
    expect(await releases()).toEqual(before);
    expect(await db.knex()('tenants').pluck('org_id')).toEqual(['org_order']);
    expect((await runCli(['rollback:tenants', '--all'], { env })).code).toBe(0); // undoing is not refused
  });
});

describe('rollback:tenants', () => {
  it('undoes the newest release, then everything with --all', async () => {
    const tree = await fleetAt('tenant-basic', 2, ['org_r1', 'org_r2']);
    addFromFixture(tree, 'tenant-basic', '20260201000003_nickname.ts');
    const env = treeEnv(db.url, { tenant: tree });
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);

    const back = await runCli(['rollback:tenants', '--json'], { env });
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({
      summary: { total: 2, rolledBack: 2 },
      tenants: [{ status: 'rolled-back', migrations: ['20260201000003_nickname.ts'] }, { status: 'rolled-back' }],
    });
    expect(await applied('org_r1')).toEqual(['20260101000001_org_users.ts', '20260101000002_notes.ts']);
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.tenants).toMatchObject({ behind: 2, behindOrgIds: ['org_r1', 'org_r2'] });

    const all = await runCli(['rollback:tenants', '--all', '--tenant', 'org_r1'], { env });
    expect(all.code).toBe(0);
    expect(await applied('org_r1')).toEqual([]);
    expect(await tables('org_r1')).toEqual(['knex_migrations', 'knex_migrations_lock']);
    expect(await applied('org_r2')).toHaveLength(2);

    // And forward again: migrate:tenants completes both.
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);
    expect(await applied('org_r1')).toHaveLength(3);
  });
});
