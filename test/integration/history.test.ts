/**
 * The run history: one row per command that changes the database, written at its start and
 * completed at its end — ok, failed (with the failed tenants), or interrupted when the process died.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { redactArgs } from '../../src/history/actor.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli, startCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_history' });

beforeEach(async () => {
  await dropAllTenants(db.knex());
  await db.knex().raw('drop table if exists public.tenant_migrate_runs');
});

type Run = { id: number; command: string; args: string[]; outcome: string; summary: Record<string, unknown> | null; failures: { orgId?: string; error: string }[]; actor: Record<string, unknown> };

async function history(env: Record<string, string>, ...args: string[]): Promise<Run[]> {
  const result = await runCli(['history', '--json', ...args], { env });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout).runs;
}

describe('history', () => {
  it('records each command that changed the database, newest first, with who ran it and how it ended', async () => {
    const tree = copyTree('tenant-basic', 1);
    const env = { ...treeEnv(db.url, { tenant: tree }), GITHUB_ACTOR: 'octocat', GITHUB_SHA: 'deadbeef', GITHUB_RUN_ID: '4242' };
    expect((await runCli(['migrate:master'], { env })).code).toBe(0);
    expect((await runCli(['provision:tenant', 'org_h1', 'org_h2', 'org_h3'], { env })).code).toBe(0);
    await withTenant(db.knex(), 'org_h2', (trx) => trx('org_users').insert({ email: 'poison@example.com' }));
    addFromFixture(tree, 'tenant-failing', '20260101000002_fails_for_some.ts');
    expect((await runCli(['migrate:tenants', '--continue-on-error'], { env })).code).toBe(1);
    // Read-only commands and bad input leave no row.
    expect((await runCli(['status'], { env })).code).toBe(0);
    expect((await runCli(['provision:tenant', 'bad org'], { env })).code).toBe(2);

    const runs = await history(env);
    expect(runs.map((run) => [run.command, run.outcome])).toEqual([
      ['migrate:tenants', 'failed'],
      ['provision:tenant', 'ok'],
      ['migrate:master', 'ok'],
    ]);
    const [migrate, provision] = runs;
    expect(provision!.args).toEqual(['provision:tenant', 'org_h1', 'org_h2', 'org_h3']);
    expect(provision!.summary).toMatchObject({ total: 3, provisioned: 3 });
    expect(migrate!.summary).toMatchObject({ total: 3, migrated: 2, failed: 1 });
    expect(migrate!.failures).toEqual([{ orgId: 'org_h2', schema: expect.stringMatching(/^tid_/), error: expect.stringContaining('poisoned tenant') }]);
    expect(migrate!.actor).toMatchObject({ databaseUser: expect.any(String), host: expect.any(String), pid: expect.any(Number), ci: { GITHUB_ACTOR: 'octocat', GITHUB_SHA: 'deadbeef', GITHUB_RUN_ID: '4242' } });

    expect((await history(env, '--limit', '1')).map((run) => run.id)).toEqual([migrate!.id]);
    expect((await history(env, '--run', String(provision!.id)))[0]!.command).toBe('provision:tenant');
    const text = await runCli(['history', '--run', String(migrate!.id)], { env });
    expect(text.stdout).toMatch(/outcome\s+failed/);
    expect(text.stdout).toMatch(/failed\s+.*poisoned tenant/);
    expect((await runCli(['history', '--run', '999999'], { env })).code).toBe(2);
    expect((await runCli(['history', '--limit', 'all'], { env })).code).toBe(2);
  });

  it('a run whose process was killed shows as interrupted', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), Array.from({ length: 30 }, (_, i) => `org_k${String(i).padStart(2, '0')}`), { directory: tree });
    addFromFixture(tree, 'tenant-slow', '20260101000002_slow_tables.ts');
    const env = treeEnv(db.url, { tenant: tree });
    const run = startCli(['migrate:tenants', '--concurrency', '1'], { env });
    await run.waitForOutput(/org_k0[2-9]/, 30_000);
    run.kill('SIGKILL');
    await run.done;
    const [killed] = await history(env);
    expect(killed).toMatchObject({ command: 'migrate:tenants', outcome: 'interrupted' });
    expect((await runCli(['migrate:tenants'], { env })).code).toBe(0);
    expect((await history(env)).map((r) => r.outcome)).toEqual(['ok', 'interrupted']);
  });

  it('keeps no secret: a URL password, a Clerk key or webhook secret never reach the row', async () => {
    const env = { ...treeEnv(db.url.replace('postgres://postgres@', 'postgres://postgres:hunter2@'), {}), CLERK_SECRET_KEY: 'sk_test_abc123' };
    expect((await runCli(['migrate:master', '--json'], { env })).code).toBe(0);
    const { rows } = await db.knex().raw('select t::text as row from public.tenant_migrate_runs t');
    expect(rows).toHaveLength(1);
    expect(rows[0].row).not.toMatch(/hunter2|sk_test_abc123/);
    expect(redactArgs(['--url=postgres://u:hunter2@h/db', 'sk_live_XYZ', 'whsec_abc=', '--password=x'])).toEqual([
      '--url=postgres://u:***@h/db',
      'sk_live_***',
      'whsec_***',
      '--password=***',
    ]);
  });

  it('a ledger that cannot be written never fails the command: a warning, and the migration lands', async () => {
    const env = treeEnv(db.url, {});
    expect((await runCli(['migrate:master'], { env })).code).toBe(0); // creates the table
    await db.knex().raw(`create or replace function public.tm_refuse() returns trigger language plpgsql as $$ begin raise exception 'ledger is read-only today'; end $$`);
    await db.knex().raw('create trigger refuse before insert or update on public.tenant_migrate_runs for each row execute function public.tm_refuse()');
    try {
      const result = await runCli(['provision:tenant', 'org_ledger_down', '--json'], { env });
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout).summary.provisioned).toBe(1);
      expect(result.stderr).toMatch(/run history .* was not written: .*ledger is read-only today/);
    } finally {
      await db.knex().raw('drop trigger refuse on public.tenant_migrate_runs');
    }
  });
});
