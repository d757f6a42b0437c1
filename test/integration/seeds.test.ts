/**
 * Seeds: seed:master and seed:tenants (one transaction each, in name order, re-runnable),
 * provision:tenant --seed (in the provisioning transaction), migrate:make:seed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropEverything, tenantSchemas } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_seeds' });
afterEach(() => expectNoLeftovers(db.knex()));

let seedsRoot: string;
beforeEach(async () => {
  await dropEverything(db.knex());
  seedsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-seeds-'));
  fs.mkdirSync(path.join(seedsRoot, 'master'));
  fs.mkdirSync(path.join(seedsRoot, 'tenant'));
});

function writeSeed(tree: 'master' | 'tenant', name: string, body: string): void {
  fs.writeFileSync(path.join(seedsRoot, tree, name), `export async function seed(knex) {\n${body}\n}\n`);
}

const env = () => ({
  ...treeEnv(db.url, { master: fixture('master-basic'), tenant: fixture('tenant-basic') }),
  MASTER_SEEDS_DIR: path.join(seedsRoot, 'master'),
  TENANT_SEEDS_DIR: path.join(seedsRoot, 'tenant'),
});
const emails = (orgId: string) => withTenant(db.knex(), orgId, (trx) => trx('org_users').orderBy('email').pluck('email'));

describe('seed:master', () => {
  it('runs the master seeds in name order in one transaction; a failing seed keeps nothing', async () => {
    expect((await runCli(['migrate:master'], { env: env() })).code).toBe(0);
    writeSeed('master', '01_free.js', "await knex('plans').insert({ name: 'free' }).onConflict('name').ignore();");
    // Sees what 01 wrote: same transaction, name order.
    writeSeed('master', '02_pro.js', "const free = await knex('plans').where({ name: 'free' }).first(); await knex('plans').insert({ name: free ? 'pro' : 'pro-without-free' }).onConflict('name').ignore();");
    const first = await runCli(['seed:master', '--json'], { env: env() });
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ command: 'seed:master', ok: true, seeds: ['01_free.js', '02_pro.js'] });
    expect(await db.knex()('plans').orderBy('name').pluck('name')).toEqual(['free', 'pro']);
    // Re-runnable: again changes nothing.
    expect((await runCli(['seed:master'], { env: env() })).code).toBe(0);
    expect(await db.knex()('plans').orderBy('name').pluck('name')).toEqual(['free', 'pro']);

    writeSeed('master', '00_enterprise.js', "await knex('plans').insert({ name: 'enterprise' });");
    writeSeed('master', '03_broken.js', "await knex('no_such_table').insert({ x: 1 });");
    const failed = await runCli(['seed:master', '--json'], { env: env() });
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout).error).toMatch(/03_broken\.js failed: .*no_such_table/);
    expect(await db.knex()('plans').orderBy('name').pluck('name')).toEqual(['free', 'pro']);
  });
});

describe('seed:tenants', () => {
  it("seeds every tenant in its own schema, re-runnably, and a failing tenant keeps nothing of its seeds", async () => {
    await provisionTenant(db.knex(), ['org_s1', 'org_s2', 'org_s3'], { directory: fixture('tenant-basic') });
    await withTenant(db.knex(), 'org_s2', (trx) => trx('org_users').insert({ email: 'poison@example.com' }));
    writeSeed('tenant', '01_admin.js', "await knex('org_users').insert({ email: 'admin@tenant.test' }).onConflict('email').ignore();");
    writeSeed(
      'tenant',
      '02_guard.js',
      "const poisoned = await knex('org_users').where({ email: 'poison@example.com' }).first(); if (poisoned) throw new Error('poisoned tenant');",
    );
    const result = await runCli(['seed:tenants', '--continue-on-error', '--json'], { env: env() });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.summary).toMatchObject({ total: 3, seeded: 2, failed: 1 });
    expect(report.tenants.find((t: { orgId: string }) => t.orgId === 'org_s2').error).toMatch(/02_guard\.js failed: .*poisoned tenant/);
    expect(await emails('org_s1')).toEqual(['admin@tenant.test']);
    expect(await emails('org_s2')).toEqual(['poison@example.com']); // 01 ran, then 02 failed: all rolled back
    expect(await emails('org_s3')).toEqual(['admin@tenant.test']);
    // public is untouched: the seed's unqualified table was the tenant's.
    expect(await db.knex().raw("select to_regclass('public.org_users') as t").then((r) => r.rows[0].t)).toBeNull();

    await withTenant(db.knex(), 'org_s2', (trx) => trx('org_users').where({ email: 'poison@example.com' }).delete());
    const again = await runCli(['seed:tenants', '--tenant', 'org_s2', '--json'], { env: env() });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).summary).toMatchObject({ total: 1, seeded: 1 });
    expect(await emails('org_s2')).toEqual(['admin@tenant.test']);
    expect((await runCli(['seed:tenants'], { env: env() })).code).toBe(0); // everyone again: no duplicates
    for (const orgId of ['org_s1', 'org_s2', 'org_s3']) expect(await emails(orgId)).toEqual(['admin@tenant.test']);
  });

  it('a missing seeds directory is exit 2 and nothing runs', async () => {
    await provisionTenant(db.knex(), ['org_nodir'], { directory: fixture('tenant-basic') });
    const result = await runCli(['seed:tenants'], { env: { ...env(), TENANT_SEEDS_DIR: path.join(seedsRoot, 'absent') } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/seeds directory .*absent does not exist/);
  });
});

describe('provision:tenant --seed', () => {
  it('seeds a new org in the transaction that creates it; a failing seed leaves no org at all', async () => {
    writeSeed('tenant', '01_admin.js', "await knex('org_users').insert({ email: 'admin@tenant.test' }).onConflict('email').ignore();");
    const ok = await runCli(['provision:tenant', 'org_seeded', '--seed', '--json'], { env: env() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(await emails('org_seeded')).toEqual(['admin@tenant.test']);

    // Already provisioned: --seed does not seed it again (its data is its own now).
    await withTenant(db.knex(), 'org_seeded', (trx) => trx('org_users').delete());
    expect((await runCli(['provision:tenant', 'org_seeded', '--seed'], { env: env() })).code).toBe(0);
    expect(await emails('org_seeded')).toEqual([]);

    writeSeed('tenant', '02_broken.js', "await knex('no_such_table').insert({ x: 1 });");
    const failed = await runCli(['provision:tenant', 'org_never', '--seed', '--json'], { env: env() });
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout).tenants[0].error).toMatch(/02_broken\.js failed/);
    expect(await tenantSchemas(db.knex())).not.toContain(tenantSchemaName('org_never'));
    expect(await db.knex()('tenants').where({ org_id: 'org_never' }).first()).toBeUndefined();
  });

  it('a missing seeds directory is refused before anything is written (exit 2)', async () => {
    const result = await runCli(['provision:tenant', 'org_nodir', '--seed'], { env: { ...env(), TENANT_SEEDS_DIR: path.join(seedsRoot, 'absent') } });
    expect(result.code).toBe(2);
    expect(await tenantSchemas(db.knex())).toEqual([]);
  });
});

describe('migrate:make:seed', () => {
  it('creates a typed seed in TENANT_SEEDS_DIR (creating it), or MASTER_SEEDS_DIR with --master', async () => {
    const dir = path.join(seedsRoot, 'new-tenant-seeds');
    const made = await runCli(['migrate:make:seed', 'default_settings', '--json'], { env: { ...env(), TENANT_SEEDS_DIR: dir } });
    expect(made.code, made.stderr).toBe(0);
    const file = path.resolve(JSON.parse(made.stdout).file);
    expect(path.dirname(file)).toBe(dir);
    expect(path.basename(file)).toMatch(/^\d{14}_default_settings\.ts$/);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/export async function seed\(knex: Knex\): Promise<void>/);
    const master = await runCli(['migrate:make:seed', 'plans', '--master', '--json'], { env: env() });
    expect(path.dirname(path.resolve(JSON.parse(master.stdout).file))).toBe(path.join(seedsRoot, 'master'));
    expect((await runCli(['migrate:make:seed', 'bad name'], { env: env() })).code).toBe(2);
  });
});
