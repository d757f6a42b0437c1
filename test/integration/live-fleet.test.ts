/**
 * Deploy day on a live fleet (issue #20): the tool migrates while an application writes to every
 * tenant, as a NON-SUPERUSER role (what it can see of other sessions is part of the behaviour).
 * Small lock timeouts (200 ms, by flag) keep the file quick; every loop is bounded in time.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { runCli, startCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { appliedMigrations, hasColumn as columnExists, releaseAfterToolWaited, startAppLoad, startBlocker } from '../support/app-load.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_live' });
const role = `tm_live_${crypto.randomBytes(4).toString('hex')}`;
const password = crypto.randomBytes(8).toString('hex');
let toolUrl = '';
let adminUser = '';

/** Longer than the monitor's 250 ms between looks, so every wait is seen (and short enough for a quick file). */
const LOCK_TIMEOUT_MS = 400;
/** How long one CLI run may take here (the default 45 s is too short on a loaded machine). */
const CLI_MS = 200_000;
/** What the application may wait on the blocked tenant beyond the lock timeout: the rest of a short transaction, CI noise. */
const MARGIN_MS = 1100;

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await admin(async (client) => {
    // A login role that owns the test database (it creates the registry and the tenant schemas), and nothing more.
    await client.query(`create role "${role}" login password '${password}' nosuperuser`);
    await client.query(`alter database "${db.name}" owner to "${role}"`);
    await client.query(`alter schema public owner to "${role}"`);
    adminUser = (await client.query<{ user: string }>('select current_user as user')).rows[0]!.user;
  });
  const url = new URL(db.url);
  url.username = role;
  url.password = password;
  toolUrl = url.toString();
});

afterAll(async () => {
  const client = new pg.Client({ connectionString: new URL('/postgres', db.url).toString() });
  await client.connect();
  try {
    // The database goes first (useFreshDatabase's hook runs after this one): the role owns it.
    await client.query(`drop database if exists "${db.name}" with (force)`);
    await client.query(`drop role if exists "${role}"`);
  } finally {
    await client.end();
  }
}, 120_000);

/** A tenant tree whose first migration creates `notes` (and `tags`); `release()` adds the migration under test. */
function notesTree(): { dir: string; release(name: string, up: string): void } {
  const dir = copyTree('tenant-basic', 0);
  writeMigration(dir, '20260101000001_notes.ts', "await knex.raw('create table notes (id bigserial primary key, body text not null)'); await knex.raw('create table tags (id bigserial primary key, body text)');");
  return { dir, release: (name, up) => writeMigration(dir, name, up) };
}

const env = (tenant: string, extra: Record<string, string> = {}) => ({ ...treeEnv(toolUrl, { tenant, master: masterTree }), ...extra });
let masterTree = '';

async function provision(tree: string, orgIds: string[]): Promise<string[]> {
  const result = await runCli(['provision:tenant', ...orgIds, '--json'], { env: env(tree), timeoutMs: CLI_MS });
  expect(result.code, result.stderr).toBe(0);
  return orgIds.map(tenantSchemaName);
}

const applied = (schema: string) => appliedMigrations(db.knex(), schema);
const hasColumn = (schema: string, table: string, column: string) => columnExists(db.knex(), schema, table, column);

/** Samples, every 20 ms until stopped, how many of the tool's backends are inside a transaction at once (the monitor's look aside). */
function sampleToolTransactions(): { stop(): Promise<number> } {
  let most = 0;
  let stopped = false;
  const client = new pg.Client({ connectionString: db.url, application_name: 'test-sampler' });
  const loop = (async () => {
    await client.connect();
    const deadline = Date.now() + 60_000;
    while (!stopped && Date.now() < deadline) {
      const { rows } = await client.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and application_name = 'tenant-migrate' and backend_type = 'client backend'
            and xact_start is not null and query not like '%pg_blocking_pids%' and usename = $1`,
        [role],
      );
      most = Math.max(most, rows[0]!.n);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await client.end();
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return most;
    },
  };
}

// A shared 2-core machine makes every CLI start take seconds: generous limits, each loop bounded anyway.
describe('a live fleet', { timeout: 240_000 }, () => {
  // Each test its own fleet and tree (the registry and the release ledger go with the tenants).
  beforeEach(() => dropAllTenants(db.knex()));
  // Whatever a lock wait, a retry or a cancel did: no session idle in transaction, no advisory lock held.
  afterEach(() => expectNoLeftovers(db.knex()));
  beforeAll(() => {
    masterTree = copyTree('tenant-basic', 0);
    writeMigration(masterTree, '20260101000000_plans.ts', "await knex.raw('create table plans (id serial primary key, name text)');");
  });

  it('a tenant held up by a long read is re-queued without holding a worker: the app stalls at most the lock timeout there, nothing is lost, the blocker is named, the tenant is migrated once in the same run', async () => {
    const tree = notesTree();
    const orgIds = Array.from({ length: 6 }, (_, i) => `org_live_${i}`);
    const schemas = await provision(tree.dir, orgIds);
    const blocked = schemas[0]!;
    tree.release('20260201000000_notes_tag.ts', "await knex.raw('alter table notes add column tag text');");

    const app = await startAppLoad(db.url, schemas, { perTenant: 2, maxMs: 150_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The report runs as the tool's own role, so its query is visible to the tool (literals redacted).
    const report = await startBlocker(toolUrl, `select count(*) from "${blocked}".notes where body <> 'secret-literal-42'`);
    const released = releaseAfterToolWaited(db.url, report, 3000);
    const sampler = sampleToolTransactions();
    const run = await runCli(['migrate:tenants', '--json', '--concurrency', '2', '--lock-timeout', String(LOCK_TIMEOUT_MS), '--lock-retries', '40'], { env: env(tree.dir), timeoutMs: CLI_MS });
    const most = await sampler.stop();
    await released;
    const stats = await app.stop();

    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.summary).toMatchObject({ total: 6, migrated: 6 });
    expect(result.summary.retried).toBeGreaterThanOrEqual(1);
    const blockedResult = result.tenants.find((tenant: { schema: string }) => tenant.schema === blocked);
    expect(blockedResult.status).toBe('migrated');
    expect(blockedResult.attempts).toBeGreaterThan(1);
    // Migrated exactly once, in this run.
    for (const schema of schemas) {
      expect(await applied(schema)).toEqual(['20260101000001_notes.ts', '20260201000000_notes_tag.ts']);
      expect(await hasColumn(schema, 'notes', 'tag')).toBe(true);
    }
    // The application: no error, nothing lost, and on the blocked tenant no stall past the lock timeout (the read itself blocks nobody).
    expect(stats.errors).toEqual([]);
    for (const schema of schemas) {
      const [{ count }] = await db.knex().withSchema(schema).from('notes').count('* as count');
      expect(Number(count), schema).toBe(stats.bySchema.get(schema)!.committed);
    }
    expect(stats.bySchema.get(blocked)!.worstMs).toBeLessThan(LOCK_TIMEOUT_MS + MARGIN_MS);
    // The blocker named, its literal never printed.
    expect(run.stderr).toContain(`held up by pid ${report.pid} (${role}, report-worker, idle in transaction`);
    expect(run.stderr).toMatch(/where body <> \?/);
    expect(run.stderr + run.stdout).not.toContain('secret-literal-42');
    // Tenants waiting for a retry hold no worker: never more tool transactions than --concurrency.
    expect(most).toBeLessThanOrEqual(2);
  });

  it('a deadlock the application provokes: the tool waited first, so its deadlock_timeout fired first and it was the victim — rolled back, retried, migrated', async () => {
    const tree = notesTree();
    const [schema] = await provision(tree.dir, ['org_deadlock']);
    tree.release('20260201000000_both.ts', "await knex.raw('alter table notes add column a int'); await knex.raw('alter table tags add column b int');");

    const app = new pg.Client({ connectionString: db.url, application_name: 'test-app' });
    await app.connect();
    try {
      await app.query(`set search_path = "${schema}"`);
      // The victim is whoever's deadlock_timeout fires first: the tool waits first (1 s, the server's
      // default), and the application's check comes later still, so the cycle is the tool's to break.
      await app.query("set deadlock_timeout = '5s'");
      await app.query('begin');
      await app.query("insert into tags (body) values ('first')"); // the app holds tags
      // A lock timeout longer than deadlock_timeout (1 s), so the wait ends in the deadlock check.
      const run = startCli(['migrate:tenants', '--json', '--lock-timeout', '5s'], { env: env(tree.dir), timeoutMs: CLI_MS });
      // The migration took notes and now waits for tags: the app then wants notes.
      const appPid = (await app.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const deadline = Date.now() + 150_000;
      for (;;) {
        // Inside a transaction pg_stat_activity is a snapshot taken once: clear it to see the tool arrive.
        await app.query('select pg_stat_clear_snapshot()');
        const { rows } = await app.query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where application_name = 'tenant-migrate' and $1 = any(pg_blocking_pids(pid))",
          [appPid],
        );
        if (rows[0]!.n > 0) break;
        if (Date.now() > deadline) throw new Error('the migration never waited for the application');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await app.query("insert into notes (body) values ('second')"); // waits for the migration, which is then the victim
      await app.query('commit');
      const done = await run.done;
      expect(done.code, done.stderr).toBe(0);
      const result = JSON.parse(done.stdout);
      expect(result.tenants[0]).toMatchObject({ status: 'migrated', attempts: 2 });
      expect(result.summary.retried).toBe(1);
      expect(done.stderr).toContain('deadlock');
      expect(await applied(schema!)).toEqual(['20260101000001_notes.ts', '20260201000000_both.ts']);
      expect(await db.knex().withSchema(schema!).from('notes').pluck('body')).toEqual(['second']);
    } finally {
      await app.end();
    }
  });

  it('a blocker that never ends: that tenant fails with reason lock_timeout and nothing of it applied, the rest are migrated (--continue-on-error), exit 1; what the non-superuser cannot see is said', async () => {
    const tree = notesTree();
    const schemas = await provision(tree.dir, ['org_stuck', 'org_free_1', 'org_free_2']);
    tree.release('20260201000000_notes_tag.ts', "await knex.raw('alter table notes add column tag text'); await knex.raw('create index notes_tag on notes (tag)');");
    // Another user's session, idle in transaction after a read (a stuck worker of the superuser).
    const stuck = await startBlocker(db.url, `select count(*) from "${schemas[0]}".notes where body = 'hidden-literal'`, { maxMs: 200_000, applicationName: 'stuck-worker' });
    try {
      const run = await runCli(['migrate:tenants', '--json', '--continue-on-error', '--lock-timeout', String(LOCK_TIMEOUT_MS), '--lock-retries', '2'], { env: env(tree.dir), timeoutMs: CLI_MS });
      expect(run.code, run.stderr).toBe(1);
      const result = JSON.parse(run.stdout);
      expect(result.summary).toMatchObject({ total: 3, migrated: 2, failed: 1 });
      const failed = result.tenants.find((tenant: { orgId: string }) => tenant.orgId === 'org_stuck');
      expect(failed).toMatchObject({ status: 'failed', reason: 'lock_timeout', attempts: 3 });
      expect(failed.blockedBy).toEqual([{ pid: stuck.pid, user: adminUser, applicationName: 'stuck-worker', state: null, transactionMs: null, query: null }]);
      expect(failed.error).toContain('after 3 attempts');
      expect(failed.error).toContain('lacks pg_read_all_stats');
      expect(run.stdout + run.stderr).not.toContain('hidden-literal');
      // Nothing half-applied: the stuck tenant is untouched, the others complete.
      expect(await applied(schemas[0]!)).toEqual(['20260101000001_notes.ts']);
      expect(await hasColumn(schemas[0]!, 'notes', 'tag')).toBe(false);
      for (const schema of schemas.slice(1)) expect(await hasColumn(schema, 'notes', 'tag')).toBe(true);
    } finally {
      await stuck.release();
    }
    // The next run picks it up.
    const again = await runCli(['migrate:tenants', '--json', '--lock-timeout', '200'], { env: env(tree.dir), timeoutMs: CLI_MS });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).summary).toMatchObject({ migrated: 1 });
  });

  it('two overlapping runs with a lock timeout, under load and a blocker: both finish, each migration applied once', async () => {
    const tree = notesTree();
    const schemas = await provision(tree.dir, Array.from({ length: 8 }, (_, i) => `org_overlap_${i}`));
    tree.release('20260201000000_notes_tag.ts', "await knex.raw('alter table notes add column tag text');");
    const app = await startAppLoad(db.url, schemas, { perTenant: 1, maxMs: 150_000 });
    const report = await startBlocker(db.url, `select count(*) from "${schemas[3]}".notes`);
    const released = releaseAfterToolWaited(db.url, report, 1500);
    const args = ['migrate:tenants', '--json', '--concurrency', '3', '--lock-timeout', '200', '--lock-retries', '30'];
    const [a, b] = await Promise.all([runCli(args, { env: env(tree.dir), timeoutMs: CLI_MS }), runCli(args, { env: env(tree.dir), timeoutMs: CLI_MS })]);
    await released;
    const stats = await app.stop();
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const migrated = (run: typeof a) => JSON.parse(run.stdout).tenants.filter((tenant: { status: string }) => tenant.status === 'migrated').length as number;
    expect(migrated(a) + migrated(b)).toBe(schemas.length);
    for (const schema of schemas) expect(await applied(schema)).toEqual(['20260101000001_notes.ts', '20260201000000_notes_tag.ts']);
    expect(stats.errors).toEqual([]);
  });

  it('a transaction: false migration held up by a lock is not retried: the error says why (and what a timed-out CREATE INDEX CONCURRENTLY leaves)', async () => {
    const tree = notesTree();
    const [schema] = await provision(tree.dir, ['org_cic']);
    fs.writeFileSync(
      path.join(tree.dir, '20260201000000_notes_body_index.ts'),
      "export const config = { transaction: false };\nexport async function up(knex) { await knex.raw('create index concurrently notes_body on notes (body)'); }\nexport async function down(knex) { await knex.raw('drop index concurrently notes_body'); }\n",
    );
    const holder = await startBlocker(db.url, `lock table "${schema}".notes in share row exclusive mode`, { maxMs: 200_000 });
    try {
      const run = await runCli(['migrate:tenants', '--json', '--lock-timeout', String(LOCK_TIMEOUT_MS), '--lock-retries', '5'], { env: env(tree.dir), timeoutMs: CLI_MS });
      expect(run.code, run.stderr).toBe(1);
      const [tenant] = JSON.parse(run.stdout).tenants;
      expect(tenant).toMatchObject({ status: 'failed', reason: 'lock_timeout', attempts: 1 });
      expect(tenant.error).toContain('not retried automatically');
      expect(tenant.error).toContain('INVALID index');
    } finally {
      await holder.release();
    }
    // The session's limits were reset: the next run, unblocked, builds the index.
    const again = await runCli(['migrate:tenants', '--json'], { env: env(tree.dir), timeoutMs: CLI_MS });
    expect(again.code, again.stderr).toBe(0);
    expect(await applied(schema!)).toEqual(['20260101000001_notes.ts', '20260201000000_notes_body_index.ts']);
  });

  it('migrate:master with a blocker on a shared table: held up, retried, migrated; the blocker named', async () => {
    const first = await runCli(['migrate:master', '--json'], { env: env(notesTree().dir), timeoutMs: CLI_MS });
    expect(first.code, first.stderr).toBe(0);
    writeMigration(masterTree, '20260301000000_plans_tier.ts', "await knex.raw('alter table plans add column tier text');");
    const report = await startBlocker(toolUrl, "select count(*) from public.plans where name = 'gold'", { applicationName: 'billing-report' });
    const released = releaseAfterToolWaited(db.url, report, 1500);
    // 300 ms: longer than the monitor's 250 ms between looks, so a wait is always seen.
    const run = await runCli(['migrate:master', '--json', '--lock-timeout', '300'], { env: env(notesTree().dir), timeoutMs: CLI_MS });
    await released;
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ status: 'migrated', migrations: ['20260301000000_plans_tier.ts'] });
    expect(result.attempts).toBeGreaterThan(1);
    expect(run.stderr).toContain(`held up by pid ${report.pid} (${role}, billing-report`);
    expect(run.stderr).toContain('where name = ?');
  });
});
