/**
 * Canary waves on migrate:tenants: --canary, --canary-tenants, --waves, --pause. The canaries are
 * the first tenants by schema name; a failure in a wave leaves every later wave untouched.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { addFromFixture, copyTree, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_waves' });
afterEach(() => expectNoLeftovers(db.knex()));

const ORGS = ['org_w1', 'org_w2', 'org_w3', 'org_w4', 'org_w5', 'org_w6'];
/** The orgs in the order waves take them: by schema name. */
const BY_SCHEMA = [...ORGS].sort((a, b) => tenantSchemaName(a).localeCompare(tenantSchemaName(b)));
const NEW = '20260201000003_nickname.ts';
let tree: string;

beforeEach(async () => {
  await dropAllTenants(db.knex());
  tree = copyTree('tenant-basic', 2);
  await provisionTenant(db.knex(), ORGS, { directory: tree });
  addFromFixture(tree, 'tenant-basic', NEW); // the release the waves roll out
});

const env = () => treeEnv(db.url, { tenant: tree });
const migrate = (...args: string[]) => runCli(['migrate:tenants', '--concurrency', '1', ...args], { env: env() });
/** Makes the release fail in one tenant: its column exists already. */
const breakTenant = (orgId: string) => db.knex().raw('alter table ??.org_users add column nickname text', [tenantSchemaName(orgId)]);
const versions = async () =>
  Object.fromEntries(((await db.knex()('tenants').select('org_id', 'migration_version')) as { org_id: string; migration_version: string }[]).map((row) => [row.org_id, row.migration_version]));
type Report = { ok: boolean; tenants: { orgId: string; status: string; wave: number }[]; waves: { wave: number; tenants: number; migrated: number; failed: number; skipped: number; upToDate: number }[] };
const waveOf = (report: Report) => Object.fromEntries(report.tenants.map((tenant) => [tenant.orgId, [tenant.wave, tenant.status]]));

describe('migrate:tenants --canary', () => {
  it('a canary that fails stops the run with exit 1: no tenant after the canaries is touched', async () => {
    await breakTenant(BY_SCHEMA[1]!);
    const before = await versions();
    const result = await migrate('--canary', '2', '--json');
    expect(result.code, result.stderr).toBe(1);
    const report = JSON.parse(result.stdout) as Report;
    expect(waveOf(report)).toEqual({
      [BY_SCHEMA[0]!]: [1, 'migrated'],
      [BY_SCHEMA[1]!]: [1, 'failed'],
      ...Object.fromEntries(BY_SCHEMA.slice(2).map((orgId) => [orgId, [2, 'skipped']])),
    });
    expect(report.waves).toEqual([
      { wave: 1, tenants: 2, migrated: 1, upToDate: 0, failed: 1, skipped: 0 },
      { wave: 2, tenants: 4, migrated: 0, upToDate: 0, failed: 0, skipped: 4 },
    ]);
    const after = await versions();
    for (const orgId of BY_SCHEMA.slice(1)) expect(after[orgId]).toBe(before[orgId]);
    for (const orgId of BY_SCHEMA.slice(2)) {
      const applied = await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').pluck('name');
      expect(applied).not.toContain(NEW);
    }
  });

  it('canaries that pass let the rest go on: every tenant migrated, each with its wave', async () => {
    const result = await migrate('--canary', '2');
    expect(result.code, result.stderr).toBe(0);
    // The wave lines come in order, each before its tenants; tenant lines say their wave.
    const out = result.stdout;
    expect(out.indexOf('wave 1/2: 2 tenants')).toBeLessThan(out.indexOf(`${BY_SCHEMA[0]} (`));
    expect(out.indexOf(`${BY_SCHEMA[1]} (`)).toBeLessThan(out.indexOf('wave 2/2: 4 tenants'));
    expect(out).toMatch(new RegExp(`${BY_SCHEMA[5]} \\(tid_[0-9a-f]+\\) migrated: ${NEW} .*\\[wave 2\\]`));
    expect(out).toContain('wave 1: 2 tenants — 2 migrated');
    expect(out).toContain('wave 2: 4 tenants — 4 migrated');
    expect(Object.values(await versions())).toEqual(Array(6).fill(NEW));
  });

  it('--canary 10% rounds up to one tenant; --canary-tenants names the canaries', async () => {
    const percent = JSON.parse((await migrate('--canary', '10%', '--json', '--tenant', ORGS[0]!, '--tenant', ORGS[1]!, '--tenant', ORGS[2]!)).stdout) as Report;
    expect(percent.waves.map((wave) => wave.tenants)).toEqual([1, 2]);

    await breakTenant(ORGS[5]!); // not a canary: the canaries pass, the failure comes in wave 2
    const named = await migrate('--canary-tenants', `${ORGS[4]},${ORGS[3]}`, '--json');
    expect(named.code).toBe(1);
    const report = JSON.parse(named.stdout) as Report;
    expect(waveOf(report)[ORGS[3]!]).toEqual([1, 'migrated']);
    expect(waveOf(report)[ORGS[4]!]).toEqual([1, 'migrated']);
    expect(waveOf(report)[ORGS[5]!]).toEqual([2, 'failed']);
    expect(report.waves[0]).toMatchObject({ wave: 1, tenants: 2, migrated: 2 });
  });
});

describe('migrate:tenants --waves', () => {
  it('continue-on-error finishes the failing wave, never the next one', async () => {
    await breakTenant(BY_SCHEMA[0]!);
    const result = await migrate('--waves', '3,100%', '--continue-on-error', '--json');
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as Report;
    expect(report.waves).toEqual([
      { wave: 1, tenants: 3, migrated: 2, upToDate: 0, failed: 1, skipped: 0 },
      { wave: 2, tenants: 3, migrated: 0, upToDate: 0, failed: 0, skipped: 3 },
    ]);
  });

  it('three waves 1,50%,100%; --pause waits between them, not after the last', async () => {
    const result = await migrate('--waves', '1,50%,100%', '--pause', '0.5');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('wave 1/3: 1 tenant\n');
    expect(result.stdout).toContain('wave 2/3: 2 tenants');
    expect(result.stdout).toContain('wave 3/3: 3 tenants');
    expect(result.stdout.match(/pausing 0\.5 s before wave \d\/3/g)).toEqual(['pausing 0.5 s before wave 2/3', 'pausing 0.5 s before wave 3/3']);
    // The release landed in wave 1's tenant at least the pause before it landed in wave 2's.
    const appliedAt = async (orgId: string) =>
      new Date((await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').where({ name: NEW }).first('migration_time')).migration_time).getTime();
    expect((await appliedAt(BY_SCHEMA[1]!)) - (await appliedAt(BY_SCHEMA[0]!))).toBeGreaterThanOrEqual(450);
  });

  it('bad wave options are exit 2 and change nothing', async () => {
    const before = await versions();
    for (const args of [
      ['--waves', '0,100%'],
      ['--waves', 'abc'],
      ['--waves', '150%'],
      ['--waves', '5,2'],
      ['--waves', '50%,10%'],
      ['--canary', '1', '--waves', '1,100%'],
      ['--canary', '1', '--pause', '-1'],
      ['--pause', '5'],
      ['--canary-tenants', 'org_nobody'],
      ['--canary-tenants', ''], // an unset CI variable must not drop the canary
      ['--canary-tenants', ','],
      ['--canary', '1', '--canary-tenants', 'org_w1'], // which is the canary wave?
      ['--canary', '1', '--pause', '1e9'], // past what a timer can wait
    ]) {
      for (const dryRun of [[], ['--dry-run']]) {
        const result = await migrate(...args, ...dryRun);
        expect(result.code, `${[...args, ...dryRun].join(' ')}: ${result.stderr}`).toBe(2);
        expect(result.stderr).toContain('Nothing was changed');
      }
    }
    expect(await versions()).toEqual(before);
  }, 240_000); // 24 CLI runs, each a Node start-up (slow on a loaded CI machine)

  it('the canaries are tenants with something pending: an org already up to date is not a canary', async () => {
    // A new org provisioned after the release is up to date; give it the first schema name of all.
    const fresh = Array.from({ length: 500 }, (_, i) => `org_fresh_${i}`).find((orgId) => tenantSchemaName(orgId) < tenantSchemaName(BY_SCHEMA[0]!))!;
    expect((await runCli(['provision:tenant', fresh], { env: env() })).code).toBe(0);
    // The dry run shows the waves the real run then cuts.
    const preview = await migrate('--canary', '1', '--dry-run', '--json');
    expect(preview.code, preview.stderr).toBe(0);
    const planned = (JSON.parse(preview.stdout) as { waves: { wave: number; orgIds: string[] }[] }).waves;
    expect(planned).toEqual([
      { wave: 1, orgIds: [BY_SCHEMA[0]!] },
      { wave: 2, orgIds: expect.arrayContaining([...BY_SCHEMA.slice(1), fresh]) },
    ]);
    expect((await migrate('--canary', '1', '--dry-run')).stdout).toContain(`wave 1/2 (canary): 1 tenant (${BY_SCHEMA[0]!})`);
    const result = await migrate('--canary', '1', '--json');
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as Report;
    expect(waveOf(report)[BY_SCHEMA[0]!]).toEqual([1, 'migrated']);
    expect(waveOf(report)[fresh]).toEqual([2, 'up-to-date']);
    for (const { wave, orgIds } of planned) for (const orgId of orgIds) expect(waveOf(report)[orgId]![0], orgId).toBe(wave);
  });
});
