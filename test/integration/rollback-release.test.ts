/**
 * Issue 14, part 1: `rollback:tenants` undoes the newest release — never a newly provisioned org's
 * whole tree (its one Knex batch) — and `--to` brings a mixed fleet back to one migration.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli, startCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_release' });

const M1 = '20260101000001_org_users.ts';
const M2 = '20260101000002_notes.ts';
const M3 = '20260201000003_nickname.ts';
const INVOICES = '20260301000004_invoices.ts';
const SLOW_UNDO = '20260301000005_slow_undo.ts';

beforeEach(() => dropAllTenants(db.knex()));

async function applied(orgId: string): Promise<string[]> {
  return db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('name').pluck('name');
}

async function tables(orgId: string): Promise<string[]> {
  const rows = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName(orgId) }).pluck('table_name');
  return (rows as string[]).filter((name) => !name.startsWith('knex_')).sort();
}

describe('rollback:tenants (no flag)', () => {
  it("undoes only the newest release in every tenant — a tenant provisioned since keeps all its tables", async () => {
    const tree = copyTree('tenant-basic');
    const env = treeEnv(db.url, { tenant: tree });
    expect((await runCli(['provision:tenant', 'org_a'], { env })).code).toBe(0); // batch 1: M1..M3
    addFromFixture(tree, 'tenant-release', INVOICES);
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0); // org_a batch 2: the release
    expect((await runCli(['provision:tenant', 'org_b'], { env })).code).toBe(0); // batch 1: M1..M4

    const back = await runCli(['rollback:tenants'], { env });
    expect(back.code, back.stderr).toBe(0);
    for (const orgId of ['org_a', 'org_b']) {
      expect(await applied(orgId), orgId).toEqual([M1, M2, M3]);
      expect(await tables(orgId), orgId).toEqual(['notes', 'org_users']);
    }
    // The plain-text output says, per tenant, what was undone.
    expect(back.stdout).toContain(`org_b (${tenantSchemaName('org_b')}) rolled back ${INVOICES}`);
    expect(back.stdout).toContain(`org_a (${tenantSchemaName('org_a')}) rolled back ${INVOICES}`);

    // The release is rolled back: a second plain rollback undoes nothing and says how to go further.
    const again = await runCli(['rollback:tenants'], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/2 tenants — 2 unchanged/);
    expect(again.stdout).toMatch(/nothing to undo: no tenant of this run holds a release.*--to <migration>/s);
    expect(await tables('org_b')).toEqual(['notes', 'org_users']);

    // Migrating again records a new release, which the next rollback undoes.
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);
    expect(await applied('org_b')).toEqual([M1, M2, M3, INVOICES]);
    expect((await runCli(['rollback:tenants'], { env })).code).toBe(0);
    expect(await applied('org_b')).toEqual([M1, M2, M3]);
  });

  it('leaves a tenant whose run of the release failed — or was skipped — at what it had', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_1', 'org_2', 'org_3'], { directory: tree });
    await db.knex().withSchema(tenantSchemaName('org_2')).table('org_users').insert({ email: 'poison@example.com' });
    addFromFixture(tree, 'tenant-failing', '20260101000002_fails_for_some.ts');
    const env = treeEnv(db.url, { tenant: tree });
    // Fail-fast, one at a time: org_1 migrated, org_2 failed, org_3 skipped.
    const run = await runCli(['migrate:tenants', '--json', '--concurrency', '1'], { env });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).tenants.map((t: { status: string }) => t.status)).toEqual(['migrated', 'failed', 'skipped']);

    const back = await runCli(['rollback:tenants', '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout).tenants.map((t: { status: string }) => t.status)).toEqual(['rolled-back', 'unchanged', 'unchanged']);
    for (const orgId of ['org_1', 'org_2', 'org_3']) {
      expect(await applied(orgId), orgId).toEqual([M1]);
      expect(await tables(orgId), orgId).toEqual(['org_users']);
    }
  });

  it('after a run killed mid-release, undoes that release wherever it got to (the record survived)', async () => {
    // Enough tenants that the run is still going when the kill lands (as in concurrent-runs.test.ts).
    const orgIds = Array.from({ length: 40 }, (_, i) => `org_k${String(i).padStart(2, '0')}`);
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgIds, { directory: tree });
    addFromFixture(tree, 'tenant-slow', '20260101000002_slow_tables.ts');
    const env = treeEnv(db.url, { tenant: tree });

    const run = startCli(['migrate:tenants', '--concurrency', '2'], { env });
    await run.waitForOutput(/org_k0[3-9]|org_k1/, 30_000);
    run.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    const reached = (await Promise.all(orgIds.map(applied))).filter((names) => names.length === 2).length;
    expect(reached).toBeGreaterThan(0);
    expect(reached).toBeLessThan(orgIds.length);
    // An org provisioned after the crash gets the whole tree, release included, in one batch.
    expect((await runCli(['provision:tenant', 'org_new'], { env })).code).toBe(0);

    const back = await runCli(['rollback:tenants', '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    for (const orgId of [...orgIds, 'org_new']) {
      expect(await applied(orgId), orgId).toEqual([M1]);
      expect(await tables(orgId), orgId).toEqual(['org_users']);
    }
  });

  it('a rollback killed mid-run is finished by running it again; the baseline is never undone', async () => {
    const orgIds = Array.from({ length: 20 }, (_, i) => `org_r${String(i).padStart(2, '0')}`);
    const tree = copyTree('tenant-basic');
    await provisionTenant(db.knex(), orgIds, { directory: tree });
    addFromFixture(tree, 'tenant-release', SLOW_UNDO);
    const env = treeEnv(db.url, { tenant: tree });
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);

    const run = startCli(['rollback:tenants', '--concurrency', '1'], { env });
    await run.waitForOutput(/org_r0[1-5]/, 30_000);
    run.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');

    const rest = await runCli(['rollback:tenants', '--json'], { env });
    expect(rest.code, rest.stderr).toBe(0);
    expect(JSON.parse(rest.stdout).summary.rolledBack).toBeGreaterThan(0);
    for (const orgId of orgIds) expect(await applied(orgId), orgId).toEqual([M1, M2, M3]);
    // Done now: the next plain rollback finds no release, and the baseline stays.
    expect((await runCli(['rollback:tenants'], { env })).code).toBe(0);
    for (const orgId of orgIds) expect(await tables(orgId), orgId).toEqual(['notes', 'org_users']);
  });
});

describe('rollback:tenants --to', () => {
  it('brings a mixed fleet back to one migration; tenants at or before it are untouched', async () => {
    await provisionTenant(db.knex(), ['org_at1'], { directory: copyTree('tenant-basic', 1) });
    await provisionTenant(db.knex(), ['org_at2'], { directory: copyTree('tenant-basic', 2) });
    const tree = copyTree('tenant-basic');
    addFromFixture(tree, 'tenant-release', INVOICES);
    await provisionTenant(db.knex(), ['org_at4'], { directory: tree });
    const env = treeEnv(db.url, { tenant: tree });

    const back = await runCli(['rollback:tenants', '--to', M2, '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout).tenants).toMatchObject([
      { orgId: 'org_at1', status: 'unchanged' },
      { orgId: 'org_at2', status: 'unchanged' },
      { orgId: 'org_at4', status: 'rolled-back', migrations: [INVOICES, M3] },
    ]);
    expect(await applied('org_at1')).toEqual([M1]);
    expect(await applied('org_at2')).toEqual([M1, M2]);
    expect(await applied('org_at4')).toEqual([M1, M2]);

    // What was undone is gone from the ledger: migrating again is a new release, undone by a plain rollback.
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);
    expect(await applied('org_at1')).toEqual([M1, M2, M3, INVOICES]);
    expect((await runCli(['rollback:tenants'], { env })).code).toBe(0);
    for (const orgId of ['org_at1', 'org_at2', 'org_at4']) expect(await applied(orgId), orgId).toEqual([M1, M2]);
  });

  it('refuses a migration that is not a file of the tree (exit 2, nothing changed)', async () => {
    const tree = copyTree('tenant-basic');
    await provisionTenant(db.knex(), ['org_x'], { directory: tree });
    const env = treeEnv(db.url, { tenant: tree });
    const result = await runCli(['rollback:tenants', '--to', '20990101000000_nope.ts', '--json'], { env });
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ command: 'rollback:tenants', ok: false });
    expect(result.stderr).toMatch(/no file of that name in the tenant migrations directory/);
    expect(await applied('org_x')).toEqual([M1, M2, M3]);
  });
});

describe('rollback:master --to', () => {
  it('undoes the master migrations after the one named, and refuses an unknown name', async () => {
    const env = treeEnv(db.url, {});
    expect((await runCli(['migrate:master'], { env })).code).toBe(0);
    const unknown = await runCli(['rollback:master', '--to', 'nope'], { env });
    expect(unknown.code).toBe(2);
    const back = await runCli(['rollback:master', '--to', '20260101000000_plans', '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ status: 'rolled-back', migrations: ['20260101000001_plan_prices.ts'] });
    expect(await db.knex()('knex_migrations').withSchema('public').pluck('name')).toEqual(['20260101000000_plans.ts']);
    expect((await runCli(['rollback:master', '--all'], { env })).code).toBe(0);
  });
});
