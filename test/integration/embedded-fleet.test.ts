/**
 * The fleet on the single-session embedded server (PGlite): tenants take turns on one pooled
 * connection, and a `transaction: false` migration runs on the connection that holds the tenant's
 * lock rather than waiting for a second one (which would never come).
 */
import { describe, expect, it } from 'vitest';
import { usePglite } from '../support/pglite.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { addFromFixture, copyTree } from '../support/trees.ts';

const pglite = usePglite();



describe('fleet on the embedded server', () => {
  it('provisions and migrates several tenants with concurrency 4 on one connection, including a transaction:false migration', async () => {
    const tree = copyTree('tenant-basic', 1);
    const orgIds = ['org_e1', 'org_e2', 'org_e3'];
    const provisioned = await provisionTenant(pglite.knex(), orgIds, { directory: tree, concurrency: 4 });
    expect(provisioned.summary).toMatchObject({ total: 3, provisioned: 3 });

    addFromFixture(tree, 'tenant-non-transactional', '20260101000002_email_index_concurrently.ts');
    addFromFixture(tree, 'tenant-non-transactional', '20260101000003_settings.ts');
    const defaultPath = (await pglite.knex().raw('show search_path')).rows[0].search_path;
    const warnings: string[] = [];
    const migrated = await migrateTenants(pglite.knex(), { directory: tree, concurrency: 4, onWarning: (message) => warnings.push(message) });
    expect(migrated.tenants.map((tenant) => tenant.error)).toEqual([undefined, undefined, undefined]);
    expect(migrated.summary).toMatchObject({ total: 3, migrated: 3 });
    expect(warnings.filter((message) => message.includes('config.transaction = false'))).toHaveLength(3);
    // Concurrency 4 on a pool of one: said once, and the tenants take turns (issue 14).
    expect(warnings.filter((message) => message.startsWith('concurrency 4 is more than the 1 connection'))).toHaveLength(1);
    const { rows } = await pglite.knex().raw("select count(*)::int as n from pg_indexes where indexname = 'org_users_created_at_idx'");
    expect(rows[0].n).toBe(3);
    // The pinned connection went back to the pool with the default search_path.
    expect((await pglite.knex().raw('show search_path')).rows[0].search_path).toBe(defaultPath);
  });
});
