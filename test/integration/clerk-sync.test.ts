import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { startFakeClerk, type FakeClerk } from '../support/fake-clerk.ts';
import { dropAllTenants, tenantSchemas } from '../support/fleet.ts';
import { fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_clerk_sync' });
const IN_CLERK = ['org_kept', 'org_lost_1', 'org_lost_2', 'org_lost_3', 'org_lost_4'];
let clerk: FakeClerk;
const env = () => ({ ...treeEnv(db.url, {}), CLERK_API_URL: clerk.url, CLERK_SECRET_KEY: 'sk_test_fake' });

async function registered(): Promise<string[]> {
  return db.knex()('tenants').orderBy('org_id').pluck('org_id');
}

beforeAll(async () => {
  // Two pages of 2 and one of 1, whatever limit the client asks for.
  clerk = await startFakeClerk({ orgIds: IN_CLERK, pageCap: 2 });
});
afterAll(() => clerk.close());

beforeEach(async () => {
  await dropAllTenants(db.knex());
  clerk.requests.length = 0;
  clerk.failures.length = 0;
  // The webhook arrived for org_kept; org_gone's org was deleted in Clerk since.
  await provisionTenant(db.knex(), ['org_kept', 'org_gone'], { directory: fixture('tenant-basic') });
});

describe('sync:clerk', () => {
  it('provisions every org without a tenant across pages and lists the tenants whose org is gone', async () => {
    const result = await runCli(['sync:clerk', '--json'], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      command: 'sync:clerk',
      ok: true,
      dryRun: false,
      provisioned: ['org_lost_1', 'org_lost_2', 'org_lost_3', 'org_lost_4'],
      missingInClerk: ['org_gone'],
      upToDate: 1,
      failed: [],
    });
    expect(clerk.requests.map((request) => request.offset)).toEqual([0, 2, 4]);
    expect(clerk.requests.every((request) => request.authorization === 'Bearer sk_test_fake')).toBe(true);
    // Nothing deleted: org_gone keeps its tenant.
    expect(await registered()).toEqual(['org_gone', 'org_kept', 'org_lost_1', 'org_lost_2', 'org_lost_3', 'org_lost_4']);
    expect(await tenantSchemas(db.knex())).toHaveLength(6);
    const tables = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName('org_lost_3') }).pluck('table_name');
    expect(tables.sort()).toEqual(['knex_migrations', 'knex_migrations_lock', 'notes', 'org_users']);

    const again = await runCli(['sync:clerk', '--json'], { env: env() });
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, provisioned: [], missingInClerk: ['org_gone'], upToDate: 5 });
  });

  it('--dry-run reports the same and writes nothing; the text output names the orgs', async () => {
    const result = await runCli(['sync:clerk', '--dry-run'], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('would provision: org_lost_1, org_lost_2, org_lost_3, org_lost_4');
    expect(result.stdout).toContain('gone from Clerk (kept): org_gone');
    const json = await runCli(['sync:clerk', '--dry-run', '--json'], { env: env() });
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, dryRun: true, provisioned: ['org_lost_1', 'org_lost_2', 'org_lost_3', 'org_lost_4'], missingInClerk: ['org_gone'], upToDate: 1 });
    expect(await registered()).toEqual(['org_gone', 'org_kept']);
    expect(await tenantSchemas(db.knex())).toHaveLength(2);
  });

  it('waits out a 429 with Retry-After and then completes', async () => {
    clerk.failures.push({ status: 429, headers: { 'retry-after': '1' } });
    const result = await runCli(['sync:clerk', '--json'], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    expect(clerk.requests.map((request) => [request.offset, request.status])).toEqual([[0, 429], [0, 200], [2, 200], [4, 200]]);
    expect(JSON.parse(result.stdout).provisioned).toHaveLength(4);
  });

  it('a 500 from the Clerk API exits 1 with the status, and provisions nothing', async () => {
    clerk.failures.push({ status: 200 }, { status: 500 }); // the second page fails
    const result = await runCli(['sync:clerk', '--json'], { env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('answered 500');
    expect(JSON.parse(result.stdout)).toMatchObject({ command: 'sync:clerk', ok: false });
    expect(await registered()).toEqual(['org_gone', 'org_kept']);
  });

  it('without CLERK_SECRET_KEY: exit 2, says which variable, nothing asked or written', async () => {
    const result = await runCli(['sync:clerk'], { env: { ...env(), CLERK_SECRET_KEY: undefined } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('CLERK_SECRET_KEY');
    expect(clerk.requests).toHaveLength(0);
    expect(await registered()).toEqual(['org_gone', 'org_kept']);
  });
});
