import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cliEnv, repoRoot, runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_master' });

// A run must leave no session idle in transaction and no advisory lock held.
afterEach(() => expectNoLeftovers(db.knex()));

async function publicTables(): Promise<string[]> {
  const rows = await db.knex()('information_schema.tables').where({ table_schema: 'public' }).pluck('table_name');
  return (rows as string[]).sort();
}

describe('migrate:master / rollback:master', () => {
  it('applies the master tree in one batch, creates the registry, and is a no-op the second time', async () => {
    const env = treeEnv(db.url, { master: fixture('master-basic') });
    const first = await runCli(['migrate:master'], { env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('applied 2 migrations in public');
    expect(first.stdout).toContain('20260101000000_plans.ts');
    expect(await publicTables()).toEqual(
      expect.arrayContaining(['knex_migrations', 'knex_migrations_lock', 'plans', 'tenants']),
    );
    const rows = await db.knex()('knex_migrations').orderBy('id').select('name', 'batch');
    expect(rows).toEqual([
      { name: '20260101000000_plans.ts', batch: 1 },
      { name: '20260101000001_plan_prices.ts', batch: 1 },
    ]);

    const again = await runCli(['migrate:master', '--json'], { env });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ command: 'migrate:master', ok: true, status: 'up-to-date', migrations: [] });
  });

  it('rolls back the last batch, then everything with --all', async () => {
    const tree = copyTree('master-basic', 1);
    const env = treeEnv(db.url, { master: tree });
    await db.knex().raw('drop table if exists plans; drop table if exists knex_migrations; drop table if exists knex_migrations_lock');
    expect((await runCli(['migrate:master'], { env })).code).toBe(0);
    fs.copyFileSync(path.join(fixture('master-basic'), '20260101000001_plan_prices.ts'), path.join(tree, '20260101000001_plan_prices.ts'));
    expect((await runCli(['migrate:master'], { env })).code).toBe(0); // batch 2

    const back = await runCli(['rollback:master', '--json'], { env });
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ status: 'rolled-back', migrations: ['20260101000001_plan_prices.ts'] });
    const columns = await db.knex()('information_schema.columns').where({ table_name: 'plans' }).pluck('column_name');
    expect(columns).not.toContain('price_cents');

    const all = await runCli(['rollback:master', '--all'], { env });
    expect(all.code).toBe(0);
    expect(await publicTables()).not.toContain('plans');
    expect(await db.knex()('knex_migrations').count({ n: '*' })).toEqual([{ n: 0 }]);
  });

  it('fails with exit 1, names the file and PostgreSQL\'s message, and applies none of the batch', async () => {
    const tree = copyTree('master-basic');
    fs.writeFileSync(
      path.join(tree, '20260101000002_broken.ts'),
      "export async function up(knex) { await knex.raw('alter table plans add column x int'); await knex.raw('select * from no_such_table'); }\nexport async function down() {}\n",
    );
    const env = treeEnv(db.url, { master: tree });
    await runCli(['rollback:master', '--all'], { env });
    const result = await runCli(['migrate:master'], { env });
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toMatch(/20260101000002_broken\.ts \(up\) failed: relation "no_such_table" does not exist/);
    expect(await publicTables()).not.toContain('plans'); // the whole batch rolled back
  });
});

describe('the stock Knex CLI (pnpm knex) through knexfile.ts', () => {
  it('reads the master state tenant-migrate wrote', async () => {
    const env = treeEnv(db.url, { master: fixture('master-basic') });
    expect((await runCli(['migrate:master'], { env })).code).toBe(0);
    const knexCli = path.join(repoRoot, 'node_modules/knex/bin/cli.js');
    const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', knexCli, '--knexfile', 'knexfile.ts', 'migrate:status'], { cwd: repoRoot, env: cliEnv(env) }, (error, out) =>
        resolve({ stdout: out, code: error ? (error.code as number) : 0 }),
      );
    });
    expect(code).toBe(0);
    expect(stdout).toContain('Found 2 Completed Migration file/files.');
    expect(stdout).toContain('No Pending Migration files Found.');
  });
});

describe('migrate:make:master / migrate:make:tenant', () => {
  it('creates a timestamped TypeScript migration with typed up/down in the right directory', async () => {
    const master = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-make-m-'));
    const tenant = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-make-t-'));
    const env = { MASTER_MIGRATIONS_DIR: master, TENANT_MIGRATIONS_DIR: tenant };
    const made = await runCli(['migrate:make:tenant', 'add_nickname'], { env });
    expect(made.code).toBe(0);
    const [file] = fs.readdirSync(tenant);
    expect(file).toMatch(/^\d{14}_add_nickname\.ts$/);
    const text = fs.readFileSync(path.join(tenant, file!), 'utf8');
    expect(text).toContain('export async function up(knex: Knex): Promise<void>');
    expect(text).toContain('export async function down(knex: Knex): Promise<void>');
    expect(made.stdout).toContain('add_nickname.ts');
    expect(fs.readdirSync(master)).toEqual([]);

    expect((await runCli(['migrate:make:master', 'plans'], { env })).code).toBe(0);
    expect(fs.readdirSync(master)).toHaveLength(1);
  });

  it.each([[''], ['../evil'], ['a/b'], ['has space']])('refuses the name %j with exit 2 and writes nothing', async (name) => {
    const tenant = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-make-bad-'));
    const result = await runCli(['migrate:make:tenant', name], { env: { TENANT_MIGRATIONS_DIR: tenant, MASTER_MIGRATIONS_DIR: tenant } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/migration name/i);
    expect(fs.readdirSync(tenant)).toEqual([]);
  });
});

describe('usage and configuration errors: exit 2, nothing changed', () => {
  it('no database configured names the variables', async () => {
    const result = await runCli(['migrate:master'], { env: { MASTER_MIGRATIONS_DIR: fixture('master-basic') } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('DATABASE_URL');
    expect(result.stderr).toContain('DB_HOST');
  });

  it('an unknown command, a bad option value and a missing directory', async () => {
    expect((await runCli(['migrate:everything'])).code).toBe(2);
    const env = treeEnv(db.url, {});
    const concurrency = await runCli(['migrate:tenants', '--concurrency', 'lots'], { env });
    expect(concurrency.code).toBe(2);
    expect(concurrency.stderr).toContain('--concurrency');
    const port = await runCli(['status'], { env: { DB_HOST: '127.0.0.1', DB_PORT: 'fivefourthree' } });
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('DB_PORT');
    const dir = await runCli(['migrate:master'], { env: { ...env, MASTER_MIGRATIONS_DIR: '/nonexistent/master' } });
    expect(dir.code).toBe(2);
    expect(dir.stderr).toContain('MASTER_MIGRATIONS_DIR');
    const cert = await runCli(['status'], { env: { ...env, DB_SSL: 'true', DB_SSL_CERT_PATH: '/nonexistent/ca.pem' } });
    expect(cert.code).toBe(2);
    expect(cert.stderr).toContain('DB_SSL_CERT_PATH');
  });

  it('--json still prints exactly one JSON document on a usage error', async () => {
    const result = await runCli(['provision:tenant', 'has space', '--json'], { env: treeEnv(db.url, {}) });
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ command: 'provision:tenant', ok: false });
  });
});

describe('cannot connect: exit 1, says where and why, never the password', () => {
  it('a refused connection', async () => {
    const password = 'Sup3r-s3cret-pw';
    const result = await runCli(['status'], {
      env: treeEnv(`postgres://alice:${password}@127.0.0.1:1/appdb`, {}),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/127\.0\.0\.1:1.*appdb.*alice/);
    expect(result.stderr).toMatch(/refused/);
    expect(result.stdout + result.stderr).not.toContain(password);
  });
});
