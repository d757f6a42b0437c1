/**
 * Issue 20, item 5: a rollback undoes what is there. The release a plain `rollback:tenants` undoes
 * is the newest one a tenant still holds (judged from each tenant's own knex_migrations), so typed
 * twice it undoes two releases; a targeted rollback that empties a release retires it; and a
 * tenant with nothing to undo is `unchanged` — a rollback never says "up to date".
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { migrateMaster, rollbackMaster } from '../../src/master/master.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { rollbackTenants } from '../../src/tenants/rollback-tenants.ts';
import { runCli as spawnCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, fixture, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_held' });

// Each test runs the CLI several times as separate processes: generous limits for a loaded machine.
const SLOW = 600_000;
const runCli = (args: string[], options: { env: Record<string, string> }) => spawnCli(args, { ...options, timeoutMs: 240_000 });

const BASE = ['20260101000001_org_users.ts', '20260101000002_notes.ts', '20260201000003_nickname.ts'];
const M4 = '20260301000004_invoices.ts';
const M5 = '20260401000005_tags.ts';

beforeEach(() => dropAllTenants(db.knex()));

async function applied(orgId: string): Promise<string[]> {
  return db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('name').pluck('name');
}

async function tables(orgId: string): Promise<string[]> {
  const rows = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName(orgId) }).pluck('table_name');
  return (rows as string[]).filter((name) => !name.startsWith('knex_')).sort();
}

/** The ledger as rows: which files each release holds and whether it is retired. */
async function ledger(): Promise<{ kind: string; migrations: string[]; retired: boolean }[]> {
  const { rows } = await db.knex().raw('select kind, migrations, rolled_back_at is not null as retired from public.tenant_migrate_releases order by id');
  return rows;
}

function statuses(stdout: string): Record<string, string> {
  const doc = JSON.parse(stdout) as { tenants: { orgId: string; status: string }[] };
  return Object.fromEntries(doc.tenants.map((tenant) => [tenant.orgId, tenant.status]));
}

/** Baseline (M1–M3) on three orgs, release R1 (M4) on all, release R2 (M5) on org_beta only. */
async function scenario(): Promise<{ tree: string; env: Record<string, string> }> {
  const tree = copyTree('tenant-basic');
  const env = treeEnv(db.url, { tenant: tree });
  expect((await runCli(['provision:tenant', 'org_alpha', 'org_beta', 'org_gamma'], { env })).code).toBe(0);
  addFromFixture(tree, 'tenant-release', M4);
  expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);
  writeMigration(tree, M5, "await knex.schema.createTable('tags', (t) => t.increments('id'));", "await knex.schema.dropTable('tags');");
  const beta = await runCli(['migrate:tenants', '--tenant', 'org_beta', '--json'], { env });
  expect(beta.code, beta.stderr).toBe(0);
  expect(statuses(beta.stdout)).toEqual({ org_beta: 'migrated' });
  return { tree, env };
}

/** The same fleet as `scenario`, built in-process (faster): for tests about what comes after. */
async function scenarioInProcess(): Promise<{ tree: string; env: Record<string, string> }> {
  const knex = db.knex();
  const tree = copyTree('tenant-basic');
  await provisionTenant(knex, ['org_alpha', 'org_beta', 'org_gamma'], { directory: tree });
  addFromFixture(tree, 'tenant-release', M4);
  expect((await migrateTenants(knex, { directory: tree })).ok).toBe(true);
  writeMigration(tree, M5, "await knex.schema.createTable('tags', (t) => t.increments('id'));", "await knex.schema.dropTable('tags');");
  expect((await migrateTenants(knex, { directory: tree, tenants: ['org_beta'] })).summary).toMatchObject({ migrated: 1 });
  return { tree, env: treeEnv(db.url, { tenant: tree }) };
}

describe('rollback:tenants, typed again and again', () => {
  it('undoes R2 on org_beta, then R1 everywhere, then says there is nothing to undo — never "up to date"', async () => {
    const { env } = await scenario();

    const targeted = await runCli(['rollback:tenants', '--tenant', 'org_beta', '--json'], { env });
    expect(targeted.code, targeted.stderr).toBe(0);
    const targetedDoc = JSON.parse(targeted.stdout);
    expect(targetedDoc.tenants).toMatchObject([{ orgId: 'org_beta', status: 'rolled-back', migrations: [M5] }]);
    expect(targetedDoc.release).toMatchObject({ migrations: [M5] });
    expect(await applied('org_beta')).toEqual([...BASE, M4]);

    // The second plain rollback: R2 is held by nobody any more, so the newest release held is R1.
    const second = await runCli(['rollback:tenants'], { env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/rollback:tenants: 3 tenants — 3 rolled back/);
    expect(second.stdout).toContain(`release #`);
    expect(second.stdout).toContain(`(${M4}), the newest release a tenant of this run held: undone in every tenant of this run that held it`);
    expect(second.stdout).not.toMatch(/up to date/);
    for (const orgId of ['org_alpha', 'org_beta', 'org_gamma']) {
      expect(await applied(orgId), orgId).toEqual(BASE);
      expect(await tables(orgId), orgId).toEqual(['notes', 'org_users']);
    }

    // A third: nothing to undo anywhere (only the baseline is held). Exit 0, every tenant unchanged.
    const third = await runCli(['rollback:tenants', '--json'], { env });
    expect(third.code, third.stderr).toBe(0);
    const thirdDoc = JSON.parse(third.stdout);
    expect(thirdDoc).toMatchObject({ command: 'rollback:tenants', ok: true, release: null, summary: { total: 3, unchanged: 3 } });
    expect(thirdDoc.summary.upToDate).toBeUndefined();
    expect(statuses(third.stdout)).toEqual({ org_alpha: 'unchanged', org_beta: 'unchanged', org_gamma: 'unchanged' });
    const text = await runCli(['rollback:tenants'], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/rollback:tenants: 3 tenants — 3 unchanged \(nothing to undo there\)/);
    expect(text.stdout).toMatch(/nothing to undo: no tenant of this run holds a release.*rollback:tenants --to <migration>/);
    expect(`${text.stdout}${text.stderr}`).not.toMatch(/up to date/);
    for (const orgId of ['org_alpha', 'org_beta', 'org_gamma']) expect(await tables(orgId), orgId).toEqual(['notes', 'org_users']);
  }, SLOW);

  it('a targeted rollback that empties a release retires it; one that leaves it held elsewhere does not', async () => {
    const { tree, env } = await scenarioInProcess();
    expect((await ledger()).map((row) => [row.kind, row.migrations, row.retired])).toEqual([
      ['baseline', BASE, false],
      ['release', [M4], false],
      ['release', [M5], false],
    ]);
    // org_alpha holds R1 only: its newest release is R1; R1 stays active (org_beta and org_gamma hold it).
    const alpha = await rollbackTenants(db.knex(), { directory: tree, tenants: ['org_alpha'] });
    expect(alpha).toMatchObject({ release: { migrations: [M4] }, tenants: [{ orgId: 'org_alpha', status: 'rolled-back', migrations: [M4] }] });
    expect((await ledger()).map((row) => row.retired)).toEqual([false, false, false]);
    // org_beta was the only tenant with R2: undoing it there retires R2.
    expect((await runCli(['rollback:tenants', '--tenant', 'org_beta'], { env })).code).toBe(0);
    expect((await ledger()).map((row) => row.retired)).toEqual([false, false, true]);

    // Migrating again makes M5 a new release (R2 is retired); the next plain rollback undoes that one.
    expect((await migrateTenants(db.knex(), { directory: tree })).ok).toBe(true);
    expect((await ledger()).at(-1)).toMatchObject({ kind: 'release', migrations: [M5], retired: false });
    const back = await runCli(['rollback:tenants', '--json'], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout).tenants.map((t: { migrations: string[] }) => t.migrations)).toEqual([[M5], [M5], [M5]]);
    expect(await applied('org_alpha')).toEqual([...BASE, M4]);
  }, SLOW);

  it('a release some tenants undid already: the rest undo it, the others are unchanged, an org provisioned since undoes it too', async () => {
    const { tree, env } = await scenarioInProcess();
    await rollbackTenants(db.knex(), { directory: tree, tenants: ['org_beta'] }); // R2 gone
    await rollbackTenants(db.knex(), { directory: tree, tenants: ['org_gamma'] }); // R1 gone on gamma
    expect(await applied('org_gamma')).toEqual(BASE);
    // Provisioned now, org_delta gets the whole tree in its one provisioning batch — M5 too, which
    // no active release covered any more (R2 was retired), so the provisioning run recorded it as R3.
    await provisionTenant(db.knex(), ['org_delta'], { directory: tree });

    // Newest release held: R3, by org_delta alone. Undone there; its baseline stays.
    const first = await runCli(['rollback:tenants', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(statuses(first.stdout)).toEqual({ org_alpha: 'unchanged', org_beta: 'unchanged', org_delta: 'rolled-back', org_gamma: 'unchanged' });
    expect(await applied('org_delta')).toEqual([...BASE, M4]);
    // Then R1, where it is still held: alpha, beta, delta; gamma had undone it.
    const second = await runCli(['rollback:tenants', '--json'], { env });
    expect(statuses(second.stdout)).toEqual({ org_alpha: 'rolled-back', org_beta: 'rolled-back', org_delta: 'rolled-back', org_gamma: 'unchanged' });
    expect(JSON.parse(second.stdout).summary).toMatchObject({ total: 4, rolledBack: 3, unchanged: 1 });
    for (const orgId of ['org_alpha', 'org_beta', 'org_gamma', 'org_delta']) expect(await tables(orgId), orgId).toEqual(['notes', 'org_users']);
    expect((await ledger()).map((row) => [row.migrations, row.retired])).toEqual([[BASE, false], [[M4], true], [[M5], true], [[M5], true]]);
  }, SLOW);

  it('refuses, in that tenant only, to undo a release beneath a newer migration another run applied (nothing undone there, exit 1)', async () => {
    const { tree, env } = await scenarioInProcess();
    await rollbackTenants(db.knex(), { directory: tree, tenants: ['org_beta'] }); // R2 gone: R1 is the newest held
    // M6 applied to org_gamma by hand, as a run that started after this rollback chose R1 would
    // have: no release of the ledger has it, and it sorts after R1's M4.
    const M6 = '20260501000006_extras.ts';
    writeMigration(tree, M6, "await knex.schema.createTable('extras', (t) => t.increments('id'));", "await knex.schema.dropTable('extras');");
    const gamma = tenantSchemaName('org_gamma');
    await db.knex().schema.withSchema(gamma).createTable('extras', (t) => t.increments('id'));
    await db.knex().withSchema(gamma).table('knex_migrations').insert({ name: M6, batch: 3, migration_time: new Date() });

    const back = await runCli(['rollback:tenants', '--json', '--continue-on-error'], { env });
    expect(back.code, back.stderr).toBe(1);
    const doc = JSON.parse(back.stdout);
    expect(statuses(back.stdout)).toEqual({ org_alpha: 'rolled-back', org_beta: 'rolled-back', org_gamma: 'failed' });
    expect(doc.tenants[2].error).toMatch(new RegExp(`org_gamma \\(${gamma}\\): ${M6} is applied here, newer than ${M4}.*nothing was undone in this tenant`));
    expect(await applied('org_gamma')).toEqual([...BASE, M4, M6]);
    expect(await tables('org_gamma')).toEqual(['extras', 'invoices', 'notes', 'org_users']);
    // R1 is still held (by org_gamma): not retired.
    expect((await ledger()).map((row) => row.retired)).toEqual([false, false, true]);
  }, SLOW);
});

describe('unchanged, with --to, --all and rollback:master', () => {
  it('--to and --all report tenants with nothing to undo as unchanged, and rollback:master too', async () => {
    const { tree, env } = await scenarioInProcess();
    const to = await runCli(['rollback:tenants', '--to', M4, '--json'], { env });
    expect(to.code, to.stderr).toBe(0);
    expect(statuses(to.stdout)).toEqual({ org_alpha: 'unchanged', org_beta: 'rolled-back', org_gamma: 'unchanged' });
    expect(JSON.parse(to.stdout).release).toBeUndefined();

    await rollbackTenants(db.knex(), { directory: tree, tenants: ['org_alpha'], all: true });
    const all = await runCli(['rollback:tenants', '--all', '--tenant', 'org_alpha', '--json'], { env });
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout)).toMatchObject({ summary: { total: 1, unchanged: 1 }, tenants: [{ status: 'unchanged', migrations: [] }] });

    const masterEnv = treeEnv(db.url, {});
    await migrateMaster(db.knex(), { directory: fixture('master-basic') });
    expect(await rollbackMaster(db.knex(), { directory: fixture('master-basic'), all: true })).toMatchObject({ status: 'rolled-back' });
    const master = await runCli(['rollback:master', '--json'], { env: masterEnv });
    expect(master.code, master.stderr).toBe(0);
    expect(JSON.parse(master.stdout)).toMatchObject({ command: 'rollback:master', ok: true, status: 'unchanged', migrations: [] });
  }, SLOW);
});
