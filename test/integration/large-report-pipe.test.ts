/**
 * Issue 23: the `--json` report of a large fleet reaches a slow reader whole. The report of 20,000
 * tenants is ~3 MB, far more than a pipe holds; the CLI, its stdout a pipe that is not read for a
 * while, must not exit before the reader has taken all of it. (It did: `process.exit` dropped what
 * Node had queued — a 5 MB report through pnpm cut at 384 KB, a 15 MB one from the installed bin at
 * 1.7 MB.) The fleet is one provisioned tenant plus registry rows with bare schemas made in SQL, all
 * up to date: the run opens none of them, and lists every one.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { copyTree, treeEnv } from '../support/trees.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';

const db = useFreshDatabase({ prefix: 'tm_large_report' });
const FLEET = 20_000;
const orgIds = Array.from({ length: FLEET }, (_, i) => `org_pipe${String(i).padStart(6, '0')}`);
let env: Record<string, string>;

beforeAll(async () => {
  env = treeEnv(db.url, { tenant: copyTree('tenant-basic') });
  expect((await runCli(['provision:tenant', orgIds[0]!], { env, timeoutMs: 100_000 })).code).toBe(0);
  const knex = db.knex();
  const [first] = await knex('tenants').select('migration_version', 'migration_count');
  const rest = orgIds.slice(1);
  for (let i = 0; i < rest.length; i += 2_000) {
    const batch = rest.slice(i, i + 2_000);
    await knex.raw(batch.map((orgId) => `create schema "${tenantSchemaName(orgId)}";`).join('\n'));
    await knex('tenants').insert(
      batch.map((orgId) => ({ org_id: orgId, schema_name: tenantSchemaName(orgId), migration_version: first.migration_version, migration_count: first.migration_count })),
    );
  }
}, 180_000);

function expectComplete(result: { code: number | null; stdout: string; stderr: string }) {
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout.length).toBeGreaterThan(2_000_000);
  const document = JSON.parse(result.stdout) as { ok: boolean; summary: { total: number; upToDate: number }; tenants: { orgId: string; status: string }[] };
  expect(document.ok).toBe(true);
  expect(document.summary).toMatchObject({ total: FLEET, upToDate: FLEET });
  expect(document.tenants.map((tenant) => tenant.orgId)).toEqual(orgIds);
  expect(document.tenants.every((tenant) => tenant.status === 'up-to-date')).toBe(true);
}

describe('the --json report of 20,000 tenants through a pipe', () => {
  it('read as it comes: one complete document that lists every tenant', async () => {
    expectComplete(await runCli(['migrate:tenants', '--json'], { env, timeoutMs: 150_000 }));
  }, 180_000);

  it('read late: one complete document that lists every tenant', async () => {
    const run = startCli(['migrate:tenants', '--json'], { env, timeoutMs: 150_000 });
    const stdout = run.child.stdout!;
    stdout.pause();
    // Not read until the CLI has exited, or for 3 s after its first byte: by then a CLI that exits
    // without waiting for its output has exited with most of the report still queued.
    await new Promise<void>((resolve) => {
      run.child.once('exit', () => resolve());
      stdout.once('readable', () => setTimeout(resolve, 3_000));
    });
    stdout.resume();
    expectComplete(await run.done);
  }, 180_000);
});
