/**
 * Issue 23, part 1: a pooled connection is retired after it has served DB_SCHEMAS_PER_CONNECTION
 * tenant schemas (its backend's catalog caches grow with every relation it opens and are only
 * freed when it closes). With a pool of one connection the backend pid must change every N
 * tenants, every tenant must be done, and no tenant's run may span two backends.
 */
import knexFactory from 'knex';
import { describe, expect, it } from 'vitest';
import { knexConfig } from '../../src/db/connection.ts';
import { retireAfterSchemas } from '../../src/db/recycle-connections.ts';
import { forEachTenant } from '../../src/tenants/for-each-tenant.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_recycle' });

/** A tree whose two migrations each log the backend they ran on, with the time. */
function pidTree(): string {
  const tree = copyTree('tenant-basic', 0);
  writeMigration(
    tree,
    '20260101000000_pids.ts',
    `  await knex.schema.createTable('pids', (t) => { t.integer('pid'); t.integer('step'); t.timestamp('at'); });
  await knex.raw('insert into pids select pg_backend_pid(), 1, clock_timestamp()');`,
  );
  writeMigration(tree, '20260101000001_pids_again.ts', `  await knex.raw('insert into pids select pg_backend_pid(), 2, clock_timestamp()');`);
  return tree;
}

/** Per tenant, in the order the tenants ran: the pid of each of its two migrations. */
async function pidsByTenant(): Promise<{ schema: string; pids: number[] }[]> {
  const schemas = (await db.knex()('tenants').pluck('schema_name')) as string[];
  const rows = await Promise.all(
    schemas.map(async (schema) => {
      const logged = await db.knex().withSchema(schema).table('pids').orderBy('step').select('pid', 'at');
      return { schema, pids: logged.map((row: { pid: number }) => row.pid), at: (logged[0] as { at: Date }).at.getTime() };
    }),
  );
  return rows.sort((a, b) => a.at - b.at).map(({ schema, pids }) => ({ schema, pids }));
}

/** [a, a, a, b, b, b, c] → [3, 3, 1]: how many consecutive items share a value. */
function runLengths(values: readonly number[]): number[] {
  const lengths: number[] = [];
  values.forEach((value, i) => (i > 0 && value === values[i - 1] ? lengths[lengths.length - 1]!++ : lengths.push(1)));
  return lengths;
}

describe('DB_SCHEMAS_PER_CONNECTION with a pool of one connection', () => {
  it('migrate:tenants: a new backend every 3 tenants, each tenant on one backend, none lost', async () => {
    await dropAllTenants(db.knex());
    const tree = pidTree();
    const orgIds = Array.from({ length: 8 }, (_, i) => `org_recycle_${i}`);
    const env = { ...treeEnv(db.url, { tenant: copyTree('tenant-basic', 0) }), DB_POOL_MAX: '1', DB_SCHEMAS_PER_CONNECTION: '3' };
    expect((await runCli(['provision:tenant', ...orgIds], { env })).code).toBe(0);
    const run = await runCli(['migrate:tenants', '--json'], { env: { ...env, TENANT_MIGRATIONS_DIR: tree } });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).summary).toMatchObject({ total: 8, migrated: 8 });
    const tenants = await pidsByTenant();
    expect(tenants).toHaveLength(8);
    for (const tenant of tenants) expect(new Set(tenant.pids).size, tenant.schema).toBe(1); // never split
    const pids = tenants.map((tenant) => tenant.pids[0]!);
    // Before the tenants, the run captures the pending migrations' SQL in a scratch schema (lint):
    // that counts as a schema served too, so the first backend may serve one tenant fewer.
    const lengths = runLengths(pids);
    expect(lengths.slice(1, -1).every((length) => length === 3), String(lengths)).toBe(true);
    expect(lengths[0]).toBeGreaterThanOrEqual(2);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(3);
    expect(new Set(pids).size).toBe(lengths.length); // a retired backend is never handed out again
  }, 150_000); // two CLI runs, each a Node start-up (slow on a loaded CI machine)

  it('query:tenants and forEachTenant: the rows show a new backend every 2 tenants', async () => {
    const env = { ...treeEnv(db.url, { tenant: copyTree('tenant-basic', 0) }), DB_POOL_MAX: '1', DB_SCHEMAS_PER_CONNECTION: '2' };
    const run = await runCli(['query:tenants', '--sql', 'select pg_backend_pid() as pid', '--json'], { env });
    expect(run.code, run.stderr).toBe(0);
    const rows = (JSON.parse(run.stdout) as { rows: { pid: number }[] }).rows;
    expect(rows).toHaveLength(8);
    expect(runLengths(rows.map((row) => row.pid))).toEqual([2, 2, 2, 2]);

    const knex = knexFactory(knexConfig(db.connection, 1, 60_000, 2));
    try {
      const { results } = await forEachTenant(knex, async (trx) => (await trx.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid')).rows[0]!.pid, {
        concurrency: 1,
      });
      expect(runLengths(results.map((result) => (result.ok ? result.value : 0)))).toEqual([2, 2, 2, 2]);
    } finally {
      await knex.destroy();
    }
  }, 120_000);

  it('a long-lived process provisioning org after org (provisionTenant) gets a new backend every 2 orgs', async () => {
    await dropAllTenants(db.knex());
    const knex = knexFactory(knexConfig(db.connection, 1, 60_000, 2));
    try {
      for (let i = 0; i < 5; i++) {
        const result = await provisionTenant(knex, [`org_signup_${i}`], { directory: pidTree(), concurrency: 1 });
        expect(result.tenants[0]?.status).toBe('provisioned');
      }
    } finally {
      await knex.destroy();
    }
    const tenants = await pidsByTenant();
    for (const tenant of tenants) expect(new Set(tenant.pids).size, tenant.schema).toBe(1);
    expect(runLengths(tenants.map((tenant) => tenant.pids[0]!))).toEqual([2, 2, 1]);
  }, 120_000);

  it("an application's own pool (withTenant) is recycled when it opts in with retireAfterSchemas({ countAcquisitions })", async () => {
    const knex = knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 1, validate: retireAfterSchemas({ schemas: 2, countAcquisitions: true }) } });
    try {
      const pids: number[] = [];
      for (let i = 0; i < 5; i++) {
        pids.push(await withTenant(knex, `org_signup_${i}`, async (trx) => (await trx.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid')).rows[0]!.pid));
      }
      expect(runLengths(pids)).toEqual([2, 2, 1]);
    } finally {
      await knex.destroy();
    }
  });

  it('refuses a DB_SCHEMAS_PER_CONNECTION that is not a whole number (exit 2)', async () => {
    const run = await runCli(['status'], { env: { ...treeEnv(db.url, {}), DB_SCHEMAS_PER_CONNECTION: '1.5' } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/DB_SCHEMAS_PER_CONNECTION must be a whole number/);
  });
});
