/**
 * The reliability guarantees of PRODUCT.md "Locks": two runs at once never apply a migration twice
 * and both finish; a run killed with SIGKILL leaves no tenant half-migrated and the next run
 * completes the fleet.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli, startCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_concurrent' });

// A run must leave no session idle in transaction and no advisory lock held.
afterEach(() => expectNoLeftovers(db.knex()));
const orgIds = Array.from({ length: 40 }, (_, i) => `org_fleet_${String(i).padStart(3, '0')}`);

beforeEach(() => dropAllTenants(db.knex()));

/** Each tenant's bookkeeping rows (names in the order recorded), by org id. */
async function bookkeeping(): Promise<Map<string, string[]>> {
  const byTenant = new Map<string, string[]>();
  for (const orgId of orgIds) {
    const names = await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name');
    byTenant.set(orgId, names);
  }
  return byTenant;
}

async function slowTablesOf(orgId: string): Promise<string[]> {
  const rows = await db.knex()('information_schema.tables')
    .where({ table_schema: tenantSchemaName(orgId) })
    .whereIn('table_name', ['slow_a', 'slow_b'])
    .pluck('table_name');
  return (rows as string[]).sort();
}

describe('two runs at once', () => {
  it('apply each migration exactly once and both exit 0', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgIds, { directory: tree, concurrency: 4 });
    addFromFixture(tree, 'tenant-slow', '20260101000002_slow_tables.ts');
    const env = treeEnv(db.url, { tenant: tree });

    const [a, b] = await Promise.all([
      runCli(['migrate:tenants', '--json', '--concurrency', '4'], { env }),
      runCli(['migrate:tenants', '--json', '--concurrency', '4'], { env }),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    for (const [orgId, names] of await bookkeeping()) {
      expect(names, orgId).toEqual(['20260101000001_org_users.ts', '20260101000002_slow_tables.ts']);
    }
    // Between them, every tenant was migrated by exactly one run.
    const migratedBy = (run: typeof a) =>
      JSON.parse(run.stdout).tenants.filter((tenant: { status: string }) => tenant.status === 'migrated').length as number;
    expect(migratedBy(a) + migratedBy(b)).toBe(orgIds.length);
  });
});

describe('a run killed with SIGKILL', () => {
  it('leaves no tenant half-migrated, and the next run completes the fleet', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgIds, { directory: tree, concurrency: 4 });
    addFromFixture(tree, 'tenant-slow', '20260101000002_slow_tables.ts');
    const env = treeEnv(db.url, { tenant: tree });

    const run = startCli(['migrate:tenants', '--concurrency', '2'], { env });
    // Kill it once a few tenants are done: others are then mid-transaction (each sleeps between DDL).
    await run.waitForOutput(/org_fleet_00[3-9]|org_fleet_01/, 30_000);
    run.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.signal).toBe('SIGKILL');

    let complete = 0;
    for (const [orgId, names] of await bookkeeping()) {
      const slow = await slowTablesOf(orgId);
      if (names.length === 2) {
        complete += 1;
        expect(slow, orgId).toEqual(['slow_a', 'slow_b']);
      } else {
        // Untouched: neither the tables nor the bookkeeping row of the killed transaction remain.
        expect(names, orgId).toEqual(['20260101000001_org_users.ts']);
        expect(slow, orgId).toEqual([]);
      }
    }
    expect(complete).toBeGreaterThan(0);
    expect(complete).toBeLessThan(orgIds.length);

    const next = await runCli(['migrate:tenants', '--json'], { env });
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).summary).toMatchObject({ migrated: orgIds.length - complete, upToDate: complete });
    for (const [orgId, names] of await bookkeeping()) expect(names, orgId).toHaveLength(2);
  });
});
