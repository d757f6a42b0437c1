/**
 * --dry-run on migrate:master, migrate:tenants, provision:tenant and rollback:tenants: the plan
 * (tenants grouped by version), the SQL captured in a rolled-back transaction, exit 0 — and nothing
 * changed: the catalog and every tool table are identical before and after.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateMaster } from '../../src/master/master.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropEverything } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { addFromFixture, copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_dry_run' });
afterEach(() => expectNoLeftovers(db.knex()));

const NICKNAME = '20260201000003_nickname.ts';
const PROJECTS = '20260301000004_projects.ts';
let master: string;
let tenant: string;

beforeEach(async () => {
  await dropEverything(db.knex());
  master = copyTree('master-basic');
  tenant = copyTree('tenant-basic', 2);
  await migrateMaster(db.knex(), { directory: master });
  await provisionTenant(db.knex(), ['org_a', 'org_b', 'org_c'], { directory: tenant });
  addFromFixture(tenant, 'tenant-basic', NICKNAME);
  await migrateTenants(db.knex(), { directory: tenant, tenants: ['org_a'] });
  writeMigration(
    tenant,
    PROJECTS,
    `await knex.schema.createTable('projects', (t) => { t.increments('id'); t.text('name').notNullable(); });
     await knex('projects').insert({ name: "it's ?" });`,
    `await knex.schema.dropTable('projects');`,
  );
});

const cli = (...args: string[]) => runCli(args, { env: treeEnv(db.url, { master, tenant }) });

/** The catalog of every non-system schema and every tool table. */
async function snapshot(): Promise<unknown> {
  const knex = db.knex();
  const catalog = await knex.raw(`
    select n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) as type
      from pg_namespace n
      left join pg_class c on c.relnamespace = n.oid
      left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
     where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
     order by 1, 2, 4`);
  const rows: Record<string, unknown> = {};
  for (const table of ['public.tenants', 'public.knex_migrations', 'public.tenant_migrate_releases', 'public.tenant_migrate_runs', 'public.tenant_migrate_checksums']) {
    const exists = (await knex.raw('select to_regclass(?) is not null as found', [table])).rows[0].found;
    rows[table] = exists ? (await knex.raw(`select * from ${table} order by 1`)).rows : 'absent';
  }
  for (const orgId of ['org_a', 'org_b', 'org_c']) {
    rows[orgId] = await knex.withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').select('name', 'batch', 'migration_time');
  }
  return { catalog: catalog.rows, rows };
}

describe('--dry-run', () => {
  it('migrate:tenants: tenants grouped by version, the SQL each migration sends, exit 0, nothing changed', async () => {
    const before = await snapshot();
    const result = await cli('migrate:tenants', '--dry-run', '--json');
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ command: 'migrate:tenants', dryRun: true, ok: true });
    expect(report.plan).toEqual([
      { fromVersion: '20260101000002_notes.ts', migrations: [NICKNAME, PROJECTS], tenantCount: 2, orgIds: ['org_b', 'org_c'] },
      { fromVersion: NICKNAME, migrations: [PROJECTS], tenantCount: 1, orgIds: ['org_a'] },
    ]);
    expect(report.sql[NICKNAME]).toEqual(['alter table "org_users" add column "nickname" text']);
    expect(report.sql[PROJECTS][0]).toMatch(/^create table "projects" \("id" serial primary key, "name" text not null\)$/);
    expect(report.sql[PROJECTS][1]).toBe(`insert into "projects" ("name") values ('it''s ?')`);
    expect(await snapshot()).toEqual(before);

    const human = await cli('migrate:tenants', '--dry-run');
    expect(human.stdout).toContain(`2 tenants at 20260101000002_notes.ts (org_b, org_c): would apply ${NICKNAME}, ${PROJECTS}`);
    expect(human.stdout).toContain(`-- ${PROJECTS}`);
    expect(human.stdout).toContain('in a transaction that was rolled back; nothing was changed.');
    expect(await snapshot()).toEqual(before);
  });

  it('provision:tenant, rollback:tenants and migrate:master: their plans and SQL, nothing changed', async () => {
    await migrateTenants(db.knex(), { directory: tenant }); // the release: NICKNAME (org_b, org_c) and PROJECTS
    writeMigration(master, '20260401000000_features.ts', `await knex.schema.createTable('features', (t) => { t.text('key').primary(); });`, `await knex.schema.dropTable('features');`);
    const before = await snapshot();

    const provision = JSON.parse((await cli('provision:tenant', 'org_new', 'org_a', '--dry-run', '--json')).stdout);
    expect(provision.plan).toEqual([
      { fromVersion: null, migrations: ['20260101000001_org_users.ts', '20260101000002_notes.ts', NICKNAME, PROJECTS], tenantCount: 1, orgIds: ['org_new'] },
      { fromVersion: PROJECTS, migrations: [], tenantCount: 1, orgIds: ['org_a'] },
    ]);
    expect(provision.sql['20260101000001_org_users.ts'][0]).toMatch(/^create table "org_users"/);

    const rollback = JSON.parse((await cli('rollback:tenants', '--dry-run', '--json')).stdout);
    // The newest release is PROJECTS (NICKNAME came to org_a in a release of its own before).
    expect(rollback.plan.map((group: { migrations: string[]; tenantCount: number }) => [group.migrations, group.tenantCount])).toEqual([[[PROJECTS], 3]]);
    expect(rollback.sql[PROJECTS]).toEqual(['drop table "projects"']);

    const masterRun = JSON.parse((await cli('migrate:master', '--dry-run', '--json')).stdout);
    expect(masterRun.plan).toEqual([{ fromVersion: '20260101000001_plan_prices.ts', migrations: ['20260401000000_features.ts'], tenantCount: 0, orgIds: [] }]);
    expect(masterRun.sql['20260401000000_features.ts'][0]).toMatch(/^create table "features"/);

    expect(await snapshot()).toEqual(before);
    // A dry run is no run: the history has none of them.
    const history = JSON.parse((await cli('history', '--json')).stdout);
    expect(history.runs.filter((run: { args: string[] }) => run.args.includes('--dry-run'))).toEqual([]);
  });

  it('a transaction:false migration is listed but not captured; a failing migration is exit 1, still nothing changed', async () => {
    // Named after every applied migration (an earlier name is refused as out of order).
    const INDEX = '20260301000005_email_index_concurrently.ts';
    addFromFixture(tenant, 'tenant-non-transactional', '20260101000002_email_index_concurrently.ts');
    fs.renameSync(path.join(tenant, '20260101000002_email_index_concurrently.ts'), path.join(tenant, INDEX));
    const before = await snapshot();
    const listed = JSON.parse((await cli('provision:tenant', 'org_new', '--dry-run', '--json')).stdout);
    expect(listed.notCaptured[INDEX]).toMatch(/config\.transaction = false/);
    expect(listed.plan[0].migrations).toContain(INDEX);

    fs.rmSync(path.join(tenant, INDEX));
    writeMigration(tenant, '20260501000000_broken.ts', `await knex.raw('alter table no_such_table add column x int');`);
    const failed = await cli('migrate:tenants', '--dry-run', '--json');
    expect(failed.code).toBe(1);
    const report = JSON.parse(failed.stdout);
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/20260501000000_broken\.ts \(up\) failed: .*no_such_table/);
    expect(await snapshot()).toEqual(before);
  });

  it('a migration that ends its transaction itself (COMMIT, then an index built concurrently) is held back, never committed: dry run and lint change nothing, the real run still works', async () => {
    const COMMITS = '20260301000005_notes_concurrently.ts';
    const LATER = '20260301000006_later.ts';
    writeMigration(
      tenant,
      COMMITS,
      `await knex.raw('alter table org_users add column note text');
       await knex.raw('COMMIT');
       await knex.raw('create index concurrently org_users_note_idx on org_users (note)');
       await knex.raw('BEGIN');`,
      `await knex.raw('drop index if exists org_users_note_idx'); await knex.raw('alter table org_users drop column note');`,
    );
    writeMigration(tenant, LATER, `await knex.raw("comment on column org_users.note is 'a note'");`);
    const before = await snapshot();

    const preview = await cli('migrate:tenants', '--dry-run', '--json');
    expect(preview.code, preview.stderr).toBe(0);
    const report = JSON.parse(preview.stdout);
    expect(report.notCaptured[COMMITS]).toMatch(/ends the transaction itself \(COMMIT\)/);
    expect(report.notCaptured[LATER]).toMatch(/comes after 20260301000005_notes_concurrently\.ts/);
    expect(report.sql[COMMITS]).toEqual(['alter table org_users add column note text']);
    expect(await snapshot()).toEqual(before);

    // lint judges what it sent before the COMMIT and lists it as not checked: --strict fails on it.
    const lint = await cli('lint', '--strict', '--json');
    expect(lint.code, lint.stderr).toBe(1);
    expect(JSON.parse(lint.stdout).notChecked).toEqual(
      expect.arrayContaining([expect.objectContaining({ tree: 'tenant', migration: COMMITS, why: expect.stringMatching(/ends the transaction itself/) })]),
    );
    expect(await snapshot()).toEqual(before); // no scratch schema left behind either

    // The dry run kept nothing in its sample tenant, so the real run (which lets a migration commit
    // in parts, as plain Knex does) migrates every tenant.
    const real = await cli('migrate:tenants', '--json');
    expect(real.code, real.stderr).toBe(0);
    expect(JSON.parse(real.stdout).summary).toMatchObject({ total: 3, migrated: 3 });
  });

  it('a migration that needs a transaction:false one before it is not captured (not a failure): exit 0, in the order they run', async () => {
    addFromFixture(tenant, 'tenant-non-transactional', '20260101000002_email_index_concurrently.ts');
    fs.renameSync(path.join(tenant, '20260101000002_email_index_concurrently.ts'), path.join(tenant, '20260301000005_created_at_index.ts'));
    writeMigration(tenant, '20260301000006_comment_index.ts', `await knex.raw("comment on index org_users_created_at_idx is 'speeds up'");`);
    const before = await snapshot();
    const preview = await cli('migrate:tenants', '--dry-run');
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toMatch(/20260301000006_comment_index\.ts\n(?:.*\n)?-- not captured: it failed in the rolled-back transaction .*org_users_created_at_idx.* probably because it needs 20260301000005_created_at_index\.ts/);
    const order = ['-- 20260301000004_projects.ts', '-- 20260301000005_created_at_index.ts', '-- 20260301000006_comment_index.ts'].map((heading) => preview.stdout.indexOf(heading));
    expect(order.every((at) => at >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(await snapshot()).toEqual(before);
    expect((await cli('migrate:tenants')).code).toBe(0);
  });

  it('plans each tenant from its own bookkeeping, not the registry: a tenant changed by hand gets its own group, as in the real run and the real rollback', async () => {
    const knex = db.knex();
    const b = tenantSchemaName('org_b');
    // org_b gets NICKNAME by hand (stock Knex, a psql session): its registry row still says notes.
    await knex.raw(`alter table ??.org_users add column nickname text`, [b]);
    await knex.withSchema(b).table('knex_migrations').insert({ name: NICKNAME, batch: 2, migration_time: new Date() });
    const before = await snapshot();

    const preview = JSON.parse((await cli('migrate:tenants', '--dry-run', '--json')).stdout);
    expect(preview.plan).toEqual([
      { fromVersion: '20260101000002_notes.ts', migrations: [NICKNAME, PROJECTS], tenantCount: 1, orgIds: ['org_c'] },
      { fromVersion: NICKNAME, migrations: [PROJECTS], tenantCount: 2, orgIds: ['org_a', 'org_b'] },
    ]);
    expect(await snapshot()).toEqual(before);
    // The real run does what the preview said, tenant by tenant.
    const real = JSON.parse((await cli('migrate:tenants', '--json')).stdout);
    expect(real.ok).toBe(true);
    expect(Object.fromEntries(real.tenants.map((t: { orgId: string; migrations: string[] }) => [t.orgId, t.migrations]))).toEqual({
      org_a: [PROJECTS],
      org_b: [PROJECTS],
      org_c: [NICKNAME, PROJECTS],
    });

    // Now org_b loses PROJECTS by hand: the registry still shows it current.
    await knex.raw('drop table ??.projects', [b]);
    await knex.withSchema(b).table('knex_migrations').where({ name: PROJECTS }).delete();
    // A plain run trusts the registry for a current tenant (it is not opened); --verify opens it.
    const plain = JSON.parse((await cli('migrate:tenants', '--dry-run', '--json')).stdout);
    expect(plain.plan).toEqual([{ fromVersion: PROJECTS, migrations: [], tenantCount: 3, orgIds: ['org_a', 'org_b', 'org_c'] }]);
    const verified = JSON.parse((await cli('migrate:tenants', '--dry-run', '--verify', '--json')).stdout);
    expect(verified.plan).toEqual([
      { fromVersion: NICKNAME, migrations: [PROJECTS], tenantCount: 1, orgIds: ['org_b'] },
      { fromVersion: PROJECTS, migrations: [], tenantCount: 2, orgIds: ['org_a', 'org_c'] },
    ]);
    // The rollback opens every tenant: org_b has nothing of the newest release (PROJECTS) to undo.
    const rollback = JSON.parse((await cli('rollback:tenants', '--dry-run', '--json')).stdout);
    expect(rollback.plan).toEqual([
      { fromVersion: NICKNAME, migrations: [], tenantCount: 1, orgIds: ['org_b'] },
      { fromVersion: PROJECTS, migrations: [PROJECTS], tenantCount: 2, orgIds: ['org_a', 'org_c'] },
    ]);
    const undone = JSON.parse((await cli('rollback:tenants', '--json')).stdout);
    expect(Object.fromEntries(undone.tenants.map((t: { orgId: string; status: string }) => [t.orgId, t.status]))).toEqual({
      org_a: 'rolled-back',
      org_b: 'unchanged',
      org_c: 'rolled-back',
    });
  });

  it('a tenant whose schema (or its bookkeeping) is gone fails the dry run (exit 1) as it fails the real run; provision refuses what the real provision refuses (exit 2)', async () => {
    const knex = db.knex();
    await knex.raw('drop schema ?? cascade', [tenantSchemaName('org_c')]);
    const preview = await cli('migrate:tenants', '--dry-run', '--json');
    expect(preview.code, preview.stderr).toBe(1);
    const report = JSON.parse(preview.stdout);
    expect(report.ok).toBe(false);
    expect(report.missingSchemas).toEqual([{ orgId: 'org_c', schema: tenantSchemaName('org_c') }]);
    expect(report.error).toMatch(/"org_c" \(tid_\w+\): registered, but the schema does not exist/);
    // The others are still planned, and their SQL captured.
    expect(report.plan.flatMap((group: { orgIds: string[] }) => group.orgIds).sort()).toEqual(['org_a', 'org_b']);
    expect(report.sql[PROJECTS]).toBeDefined();
    const human = await cli('migrate:tenants', '--dry-run');
    expect(human.code).toBe(1);
    expect(human.stdout + human.stderr).toMatch(/"org_c" \(tid_\w+\): registered, but the schema does not exist/);
    const real = await cli('migrate:tenants', '--json');
    expect(real.code).toBe(1);
    expect(JSON.parse(real.stdout).tenants.find((t: { orgId: string }) => t.orgId === 'org_c').status).toBe('failed');

    // provision:tenant of that org, or of an org whose schema exists unregistered: exit 2 in both.
    const gone = await cli('provision:tenant', 'org_c', '--dry-run');
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/registered, but the schema is missing/);
    expect((await cli('provision:tenant', 'org_c')).code).toBe(2);
    // A schema emptied by hand (no knex_migrations): migrate and rollback fail for it, in the dry run too;
    // provision:tenant builds it anew, in the dry run too.
    const b = tenantSchemaName('org_b');
    await knex.raw('drop schema ?? cascade', [b]);
    await knex.raw('create schema ??', [b]);
    // (org_b is current by the registry now: a plain migrate:tenants does not open it, --tenant does.)
    for (const command of [['migrate:tenants', '--tenant', 'org_b'], ['rollback:tenants', '--tenant', 'org_b']]) {
      const emptied = await cli(...command, '--dry-run', '--json');
      expect(emptied.code, command.join(' ')).toBe(1);
      expect(JSON.parse(emptied.stdout).missingBookkeeping, command.join(' ')).toEqual([{ orgId: 'org_b', schema: b }]);
      expect(JSON.parse(emptied.stdout).error, command.join(' ')).toMatch(/"org_b" \(tid_\w+\): registered, but the schema has no knex_migrations/);
      const realOnEmptied = await cli(...command, '--json');
      expect(realOnEmptied.code, command.join(' ')).toBe(1);
      expect(JSON.parse(realOnEmptied.stdout).tenants[0].status).toBe('failed');
    }
    const rebuild = await cli('provision:tenant', 'org_b', '--dry-run', '--json');
    expect(rebuild.code, rebuild.stderr).toBe(0);
    expect(JSON.parse(rebuild.stdout).plan).toEqual([{ fromVersion: null, migrations: fs.readdirSync(tenant).sort(), tenantCount: 1, orgIds: ['org_b'] }]);
    expect((await cli('provision:tenant', 'org_b')).code).toBe(0);

    await knex.raw('create schema ??', [tenantSchemaName('org_stray')]);
    const stray = await cli('provision:tenant', 'org_stray', '--dry-run');
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/already exists but no tenant is registered/);
    expect((await cli('provision:tenant', 'org_stray')).code).toBe(2);
    await knex.raw('drop schema ??', [tenantSchemaName('org_stray')]);
  }, 180_000); // many CLI runs

  it('a migration that ends its transaction through Knex (knex.commit()) is held back in the dry run, leaves nothing behind, and fails the real run by name', async () => {
    const ENDS = '20260301000005_ends_with_knex_commit.ts';
    writeMigration(tenant, ENDS, `await knex.schema.createTable('before_end', (t) => { t.increments('id'); });\n  await knex.commit();\n  await knex.schema.createTable('after_end', (t) => { t.increments('id'); });`);
    const before = await snapshot();
    const preview = await cli('migrate:tenants', '--dry-run', '--json');
    expect(preview.code, preview.stderr).toBe(0);
    expect(JSON.parse(preview.stdout).notCaptured[ENDS]).toMatch(/ends the transaction itself \(COMMIT;\)/);
    expect(await snapshot()).toEqual(before); // no tm_lint_ scratch schema, no before_end anywhere
    const lint = await cli('lint', '--json');
    expect(lint.code, lint.stderr).toBe(0);
    expect(await snapshot()).toEqual(before);

    // The real run, as plain Knex: what it sent before knex.commit() is committed; the tenant is failed, by name.
    const real = await cli('migrate:tenants', '--json');
    expect(real.code).toBe(1);
    const failed = JSON.parse(real.stdout).tenants.find((t: { status: string }) => t.status === 'failed');
    expect(failed.error).toMatch(/20260301000005_ends_with_knex_commit\.ts \(up\) failed: it ended its transaction itself \(knex\.commit\(\) or knex\.rollback\(\)\)/);
  });

  it('the dry run checks --concurrency as the real command does (exit 2)', async () => {
    for (const args of [['migrate:tenants', '--concurrency', '0'], ['rollback:tenants', '--concurrency', 'abc'], ['provision:tenant', 'org_new', '--concurrency', '999']]) {
      const result = await cli(...args, '--dry-run');
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/--concurrency must be a whole number from 1 to 256/);
    }
  });
  it('the lint pass before a run leaves nothing in the session of the tenants after it (its connection is closed)', async () => {
    writeMigration(
      tenant,
      '20260301000005_prepares.ts',
      `const { rows } = await knex.raw("select name from pg_prepared_statements where from_sql");
       if (rows.length > 0) throw new Error('inherited ' + JSON.stringify(rows));
       await knex.raw('prepare p_here as select 1');`,
    );
    const result = await cli('migrate:tenants', '--json', '--concurrency', '1');
    expect(result.code, result.stdout).toBe(0);
    expect(JSON.parse(result.stdout).summary).toMatchObject({ total: 3, migrated: 3 });
  });
});
