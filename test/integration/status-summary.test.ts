/**
 * Issue 23: `status` counts and lists the fleet in one SQL statement, `status --verify` (and roles)
 * from every registry row read into the process. Both must report the same fleet: here one with
 * tenants up to date, behind, on a missing file, with nothing applied, without a schema, a registry
 * row naming a schema that is not a tenant's, and orphan schemas — nothing drifted, so the two
 * reports are equal but for `driftedOrgIds`.
 */
import { describe, expect, it } from 'vitest';
import { getStatus } from '../../src/status/get-status.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { useFreshDatabase } from '../support/database.ts';
import { addFromFixture, copyTree } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_status_summary' });

describe('status without --verify', () => {
  it('reports the same fleet as the row-by-row path of --verify', async () => {
    const tree = copyTree('tenant-basic', 2);
    const knex = db.knex();
    const orgs = ['org_a', 'org_b', 'org_c', 'org_d', 'org_e', 'org_f'];
    await provisionTenant(knex, orgs, { directory: tree });
    addFromFixture(tree, 'tenant-basic', '20260201000003_nickname.ts'); // every tenant is now behind…
    await provisionTenant(knex, ['org_g'], { directory: tree }); // …but this one
    // org_b: its newest applied migration has no file (recorded alike in its bookkeeping and the registry).
    const b = tenantSchemaName('org_b');
    await knex.raw('insert into ??.knex_migrations (name, batch, migration_time) values (?, 2, now())', [b, '20260101500000_gone.ts']);
    await knex('tenants').where({ org_id: 'org_b' }).update({ migration_version: '20260101500000_gone.ts', migration_count: 3 });
    // org_c: nothing applied.
    const c = tenantSchemaName('org_c');
    await knex.raw('delete from ??.knex_migrations', [c]);
    await knex('tenants').where({ org_id: 'org_c' }).update({ migration_version: null, migration_count: 0 });
    // org_d: its schema is gone; org_zz: registered with a schema that is not a tenant's.
    await knex.raw('drop schema ?? cascade', [tenantSchemaName('org_d')]);
    await knex('tenants').insert({ org_id: 'org_zz', schema_name: 'public', migration_version: null, migration_count: 0 });
    // Orphans: tenant-looking schemas nobody registered (and one that only starts like one).
    for (const schema of ['tid_ffffffffff', 'tid_0123456789', 'tid_short']) await knex.raw('create schema ??', [schema]);

    const plain = await getStatus(knex, { tenantDirectory: tree, roles: { enabled: false } } as Parameters<typeof getStatus>[1]);
    const verified = await getStatus(knex, { tenantDirectory: tree, verify: true, roles: { enabled: false } } as Parameters<typeof getStatus>[1]);
    expect(verified.tenants.driftedOrgIds).toEqual([]);
    const { driftedOrgIds: _drifted, ...verifiedTenants } = verified.tenants;
    expect(plain).toEqual({ ...verified, tenants: verifiedTenants });
    expect(plain.tenants).toMatchObject({
      total: 8,
      upToDate: 1,
      behind: 4,
      behindOrgIds: ['org_a', 'org_c', 'org_e', 'org_f'],
      missingFileOrgIds: ['org_b'],
      versions: [
        { version: '20260201000003_nickname.ts', count: 1 },
        { version: '20260101500000_gone.ts', count: 1 },
        { version: '20260101000002_notes.ts', count: 3 },
        { version: null, count: 1 },
      ],
    });
    expect(plain.missingSchemas).toEqual([tenantSchemaName('org_d'), 'public']);
    expect(plain.orphanSchemas).toEqual(['tid_0123456789', 'tid_ffffffffff']);
  }, 120_000);
});
