/**
 * A connection lost at COMMIT (a proxy between the CLI and the server drops it at that moment): the
 * run must report what the server did, not what the client saw. A COMMIT that was carried out is a
 * migrated tenant — its bookkeeping and registry row committed with it — and one that never arrived
 * is a failed tenant that kept nothing. Either way the next run finishes the fleet.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateMaster } from '../../src/master/master.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { startCommitCuttingProxy, type CommitCuttingProxy } from '../support/commit-cutting-proxy.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropEverything } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_lost_commit' });
const ORGS = ['org_lc1', 'org_lc2', 'org_lc3'];
const RELEASE = '20260301000000_audit_table.ts'; // its name must not contain the marker (the release ledger records it)
let master: string;
let tenant: string;
let proxy: CommitCuttingProxy | undefined;

beforeEach(async () => {
  await dropEverything(db.knex());
  master = copyTree('master-basic');
  tenant = copyTree('tenant-basic');
  await migrateMaster(db.knex(), { directory: master });
  await provisionTenant(db.knex(), ORGS, { directory: tenant });
  // A release whose transaction the proxy recognises by its table's name.
  writeMigration(tenant, RELEASE, "await knex.raw('create table lost_commit_marker (id int)');\n  await knex('org_users').count('* as count');", "await knex.raw('drop table lost_commit_marker');");
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  // Whatever was cut, no session is left holding a transaction or a tenant's lock.
  await expectNoLeftovers(db.knex());
});

async function appliedIn(orgId: string): Promise<{ hasRelease: boolean; hasTable: boolean; registry: string }> {
  const schema = tenantSchemaName(orgId);
  const knex = db.knex();
  const names = await knex.withSchema(schema).from('knex_migrations').pluck('name');
  const table = (await knex.raw('select to_regclass(?) is not null as found', [`${schema}.lost_commit_marker`])).rows[0].found;
  const { migration_version } = await knex('tenants').where({ org_id: orgId }).first('migration_version');
  return { hasRelease: names.includes(RELEASE), hasTable: table, registry: migration_version };
}

const migrate = (url: string, ...args: string[]) => runCli(['migrate:tenants', '--json', '--concurrency', '1', ...args], { env: treeEnv(url, { master, tenant }) });

describe('a connection lost at COMMIT', () => {
  it('the server committed (the answer was lost): the tenant is reported migrated, and it is', async () => {
    proxy = await startCommitCuttingProxy(db.url, 'lost_commit_marker', 'answer-lost');
    const result = await migrate(proxy.url);
    expect(proxy.cut()).toBe(true);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.tenants.map((t: { orgId: string; status: string; migrations: string[] }) => [t.orgId, t.status, t.migrations])).toEqual(ORGS.map((orgId) => [orgId, 'migrated', [RELEASE]]));
    for (const orgId of ORGS) expect(await appliedIn(orgId), orgId).toEqual({ hasRelease: true, hasTable: true, registry: RELEASE });
    const status = await runCli(['status', '--verify', '--json'], { env: treeEnv(db.url, { master, tenant }) });
    expect(JSON.parse(status.stdout).ok, status.stdout).toBe(true);
  });

  it('the COMMIT never arrived: the tenant is reported failed (the server aborted it), kept nothing, and the next run migrates it', async () => {
    proxy = await startCommitCuttingProxy(db.url, 'lost_commit_marker', 'never-arrives');
    const result = await migrate(proxy.url, '--continue-on-error');
    expect(proxy.cut()).toBe(true);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    const failed = report.tenants.filter((t: { status: string }) => t.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].error).toMatch(/connection was lost at COMMIT .* the server aborted the transaction; nothing of it was applied/);
    expect(await appliedIn(failed[0].orgId)).toEqual({ hasRelease: false, hasTable: false, registry: '20260201000003_nickname.ts' });
    for (const other of ORGS.filter((orgId) => orgId !== failed[0].orgId)) expect((await appliedIn(other)).hasRelease, other).toBe(true);

    const next = await migrate(db.url);
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).summary).toMatchObject({ migrated: 1, upToDate: 2 });
    for (const orgId of ORGS) expect(await appliedIn(orgId), orgId).toEqual({ hasRelease: true, hasTable: true, registry: RELEASE });
  });

  it.each([
    ['a migration that reads (the modules route for every tenant)', false, /the connection was lost at COMMIT .* and the server could not be asked whether the transaction committed\. Run status --verify/],
    ['plain DDL (the later tenant\'s one-round-trip script)', true, /the connection was lost while its migration script ran, and the server could not be asked whether it committed .*Run status --verify/],
  ])('%s: the answer is lost and the server becomes unreachable — named as unknown, the report still printed, the truth found after', async (_route, plainDdl, message) => {
    if (plainDdl) writeMigration(tenant, RELEASE, "await knex.raw('create table lost_commit_marker (id int)');", "await knex.raw('drop table lost_commit_marker');");
    // The first tenant's COMMIT passes (with plain DDL it takes the modules route, the second is replayed); the second's is cut.
    proxy = await startCommitCuttingProxy(db.url, 'lost_commit_marker', 'answer-lost', { skip: 1, refuseAfterCut: true });
    const result = await migrate(proxy.url);
    expect(proxy.cut()).toBe(true);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout); // the per-tenant report, although the server went away
    expect(report.tenants.map((t: { status: string }) => t.status)).toEqual(['migrated', 'failed', 'skipped']);
    expect(report.tenants[1].error).toMatch(message);
    expect(result.stderr).toMatch(/checksums of the tenant tree were not brought up to date/);
    // It had committed: status --verify finds it consistent, and the next run only does the rest.
    for (const orgId of ORGS.slice(0, 2)) expect(await appliedIn(orgId), orgId).toEqual({ hasRelease: true, hasTable: true, registry: RELEASE });
    const next = await migrate(db.url);
    expect(JSON.parse(next.stdout).summary).toMatchObject({ migrated: 1, upToDate: 2 });
  });
});
