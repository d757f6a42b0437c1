/**
 * Issue 14, part 2: the registry can be ahead of a schema (restored from an older backup, rolled
 * back with stock Knex). `status --verify` finds it, `--tenant X` and `migrate:tenants --verify` fix it.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { copyTree, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_drift' });
const M3 = '20260201000003_nickname.ts';

beforeEach(() => dropAllTenants(db.knex()));

async function applied(orgId: string): Promise<string[]> {
  return db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('name').pluck('name');
}

async function registryRow(orgId: string) {
  return db.knex()('tenants').withSchema('public').where({ org_id: orgId }).first('migration_version', 'migration_count');
}

/** What stock Knex's rollback of the newest migration leaves (or a restore of the schema from before it). */
async function undoNicknameByHand(orgId: string): Promise<void> {
  const schema = tenantSchemaName(orgId);
  await db.knex().raw('alter table ??.org_users drop column nickname', [schema]);
  await db.knex().withSchema(schema).from('knex_migrations').where({ name: M3 }).delete();
}

async function fleet(orgIds: string[]): Promise<Record<string, string>> {
  const tree = copyTree('tenant-basic');
  await provisionTenant(db.knex(), orgIds, { directory: tree });
  return treeEnv(db.url, { tenant: tree });
}

describe('a schema behind its registry row', () => {
  it('status --verify reports it (text and JSON), --check fails; plain status cannot see it', async () => {
    const env = await fleet(['org_a', 'org_b', 'org_c']);
    await undoNicknameByHand('org_b');
    // A schema that lost its bookkeeping table entirely (restored without it) is drifted too.
    await db.knex().raw('drop table ??.knex_migrations', [tenantSchemaName('org_c')]);

    const plain = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(plain.tenants).toMatchObject({ upToDate: 3, behind: 0 });
    expect(plain.tenants.driftedOrgIds).toBeUndefined();

    const verified = await runCli(['status', '--verify', '--json', '--check'], { env });
    expect(verified.code).toBe(1);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: false, tenants: { upToDate: 1, driftedOrgIds: ['org_b', 'org_c'] } });
    const text = await runCli(['status', '--verify'], { env });
    expect(text.stdout).toMatch(/Tenants: 3 registered — 1 up to date, 0 behind, 2 drifted/);
    expect(text.stdout).toMatch(/Drifted .*migrate:tenants --verify.*: org_b, org_c/);
  });

  it('migrate:tenants --tenant X opens the tenant even when the registry says it is current, and fixes it', async () => {
    const env = await fleet(['org_a', 'org_b']);
    await undoNicknameByHand('org_b');
    // Trusting the registry, a plain run does not open it…
    expect(JSON.parse((await runCli(['migrate:tenants', '--json'], { env })).stdout).summary).toMatchObject({ upToDate: 2 });
    expect(await applied('org_b')).not.toContain(M3);
    // …but naming it does.
    const named = await runCli(['migrate:tenants', '--tenant', 'org_b', '--json'], { env });
    expect(named.code, named.stderr).toBe(0);
    expect(JSON.parse(named.stdout).tenants).toMatchObject([{ orgId: 'org_b', status: 'migrated', migrations: [M3] }]);
    expect(await applied('org_b')).toContain(M3);
    expect(await registryRow('org_b')).toEqual({ migration_version: M3, migration_count: 3 });
  });

  it('migrate:tenants --verify migrates every tenant from its real state and corrects the registry', async () => {
    const env = await fleet(['org_a', 'org_b', 'org_c']);
    await undoNicknameByHand('org_a');
    await undoNicknameByHand('org_c');
    // The other way round: a schema ahead of its row (migrated by hand); --verify corrects the row.
    await db.knex()('tenants').withSchema('public').where({ org_id: 'org_b' }).update({ migration_version: '20260101000002_notes.ts', migration_count: 2 });

    const run = await runCli(['migrate:tenants', '--verify', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).tenants.map((t: { status: string }) => t.status)).toEqual(['migrated', 'up-to-date', 'migrated']);
    for (const orgId of ['org_a', 'org_b', 'org_c']) {
      expect(await applied(orgId), orgId).toContain(M3);
      expect(await registryRow(orgId), orgId).toEqual({ migration_version: M3, migration_count: 3 });
    }
    const status = JSON.parse((await runCli(['status', '--verify', '--json'], { env })).stdout);
    expect(status.tenants).toMatchObject({ upToDate: 3, behind: 0, driftedOrgIds: [] });
  });
});
