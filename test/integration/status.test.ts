import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_status' });

describe('status', () => {
  it('groups the fleet by version, names behind tenants, orphan and missing schemas; --check gates on them', async () => {
    const tree = copyTree('tenant-basic', 2);
    const env = treeEnv(db.url, { master: fixture('master-basic'), tenant: tree });

    const empty = await runCli(['status', '--json', '--check'], { env });
    expect(empty.code).toBe(1); // master pending
    expect(JSON.parse(empty.stdout)).toMatchObject({ master: { applied: 0, pending: ['20260101000000_plans.ts', '20260101000001_plan_prices.ts'] }, tenants: { total: 0 } });

    expect((await runCli(['migrate:master'], { env })).code).toBe(0);
    await provisionTenant(db.knex(), ['org_a', 'org_b', 'org_c'], { directory: tree });
    const clean = await runCli(['status', '--check'], { env });
    expect(clean.code, clean.stdout).toBe(0);
    expect(clean.stdout).toContain('Everything is up to date.');

    // A release adds a migration; two tenants get it, org_c does not. Then drift appears.
    addFromFixture(tree, 'tenant-basic', '20260201000003_nickname.ts');
    expect((await runCli(['migrate:tenants', '--tenant', 'org_a', '--tenant', 'org_b'], { env })).code).toBe(0);
    await db.knex().raw('create schema ??', ['tid_0123456789']); // orphan: looks like a tenant, not registered
    await db.knex().raw('drop schema ?? cascade', [tenantSchemaName('org_b')]); // missing: registered, gone

    const result = await runCli(['status', '--json'], { env });
    expect(result.code).toBe(0); // without --check, status only reports
    const status = JSON.parse(result.stdout);
    expect(status).toEqual({
      master: { applied: 2, pending: [], missingFiles: [] },
      tenants: {
        total: 3,
        upToDate: 1,
        behind: 1,
        versions: [
          { version: '20260201000003_nickname.ts', count: 1 },
          { version: '20260101000002_notes.ts', count: 1 },
        ],
        behindOrgIds: ['org_c'],
        missingFileOrgIds: [],
        missingFiles: [],
        deletedOrgIds: [],
      },
      orphanSchemas: ['tid_0123456789'],
      missingSchemas: [tenantSchemaName('org_b')],
      editedFiles: [],
      ok: false,
    });
    const check = await runCli(['status', '--check'], { env });
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('Behind: org_c');
    expect(check.stdout).toContain('Tenants: 3 registered — 1 up to date, 1 behind, 1 without a schema');
    expect(check.stdout).toContain('tid_0123456789');
  });

  it('--check exits 1 when a tenant applied a migration whose file is gone', async () => {
    const tree = copyTree('tenant-basic');
    await dropAllTenants(db.knex());
    await db.knex().raw('drop schema if exists tid_0123456789');
    await provisionTenant(db.knex(), ['org_gone'], { directory: tree });
    fs.rmSync(`${tree}/20260201000003_nickname.ts`);
    const env = treeEnv(db.url, { master: fixture('master-basic'), tenant: tree });
    const result = await runCli(['status', '--json', '--check'], { env });
    expect(result.code).toBe(1);
    // Drifted, not behind: no migration run can fix it.
    expect(JSON.parse(result.stdout).tenants).toMatchObject({ total: 1, upToDate: 0, behind: 0, missingFileOrgIds: ['org_gone'], missingFiles: ['20260201000003_nickname.ts'] });
    const human = await runCli(['status'], { env });
    expect(human.stdout).toContain('Tenants: 1 registered — 0 up to date, 0 behind, 1 with a missing migration file');
  });
});
