/**
 * The fast path (src/migration/replay-script.ts): once a tenant of a run has shown what its pending
 * migrations send, each later tenant costs one round trip — and keeps every guarantee: checked
 * under its lock, all or nothing, failures named, org ids kept as data.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { schemaLockKey } from '../../src/db/advisory-lock.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { recordSql } from '../support/record-sql.ts';
import fs from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/cli.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_one_script' });

beforeEach(() => dropAllTenants(db.knex()));
afterEach(async () => {
  await expectNoLeftovers(db.knex());
  await dropAllTenants(db.knex());
});

/** The statements sent that mention a schema. */
/** What was sent for one org — not the run's one checksum read of the most-migrated tenant's bookkeeping. */
const about = (sent: readonly string[], orgId: string) =>
  sent.filter((text) => text.includes(tenantSchemaName(orgId)) && text !== `select name from "${tenantSchemaName(orgId)}".knex_migrations`);

async function appliedNames(orgId: string): Promise<string[]> {
  return db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name');
}

async function registryRow(orgId: string): Promise<{ migration_version: string | null; migration_count: number }> {
  return db.knex()('tenants').withSchema('public').where({ org_id: orgId }).first('migration_version', 'migration_count');
}

describe('one round trip per tenant', () => {
  it('migrates every tenant after the first with one script, and leaves the same schema and bookkeeping', async () => {
    const orgs = ['org_1', 'org_2', 'org_3', 'org_4'];
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgs, { directory: tree });
    writeMigration(tree, '20260301000000_projects.ts', "await knex.schema.createTable('projects', (t) => { t.increments('id'); t.text('name').index(); });");
    writeMigration(tree, '20260301000001_tasks.ts', "await knex.schema.createTable('tasks', (t) => { t.increments('id'); t.integer('project_id').references('id').inTable('projects'); });");

    let result!: Awaited<ReturnType<typeof migrateTenants>>;
    const sent = await recordSql(async () => {
      result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1 });
    });

    expect(result.summary).toMatchObject({ total: 4, migrated: 4 });
    // The first tenant runs the migration modules, statement by statement as plain Knex does.
    expect(about(sent, 'org_1').length).toBeGreaterThan(1);
    for (const orgId of orgs.slice(1)) {
      const script = about(sent, orgId);
      expect(script).toHaveLength(1);
      expect(script[0]).toMatch(/^-- tenant-migrate: replay of learned DDL\nbegin isolation level read committed\n;\nselect pg_advisory_xact_lock\([\s\S]*create table "projects"[\s\S]*create table "tasks"[\s\S]*\ncommit$/);
    }
    for (const orgId of orgs) {
      expect(await appliedNames(orgId)).toEqual(['20260101000001_org_users.ts', '20260301000000_projects.ts', '20260301000001_tasks.ts']);
      const batches = await db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('batch');
      expect(batches).toEqual([1, 2, 2]);
      expect(await registryRow(orgId)).toEqual({ migration_version: '20260301000001_tasks.ts', migration_count: 3 });
      const columns = await db
        .knex()('information_schema.columns')
        .where({ table_schema: tenantSchemaName(orgId), table_name: 'tasks' })
        .orderBy('column_name')
        .pluck('column_name');
      expect(columns).toEqual(['id', 'project_id']);
    }
  });

  it('provisions every org after the first with one script; org ids with quotes, dollars and backslashes stay data', async () => {
    const tree = copyTree('tenant-basic');
    const odd = [`org_'quote";--`, 'org_$$dollar$tm_guard$', 'org_back\\slash\\', 'org_ünï€ode'];
    let result!: Awaited<ReturnType<typeof provisionTenant>>;
    const sent = await recordSql(async () => {
      result = await provisionTenant(db.knex(), ['org_plain', ...odd], { directory: tree, concurrency: 1 });
    });
    expect(result.ok).toBe(true);
    expect(result.tenants.map((tenant) => tenant.status)).toEqual(['provisioned', 'provisioned', 'provisioned', 'provisioned', 'provisioned']);
    for (const orgId of odd) {
      const script = about(sent, orgId);
      expect(script).toHaveLength(1);
      // The org id reaches the SQL text only hex-encoded.
      expect(script[0]).toContain(Buffer.from(orgId, 'utf8').toString('hex'));
      expect(script[0]).not.toContain(orgId);
      expect(await appliedNames(orgId)).toHaveLength(3);
    }
    const registered = await db.knex()('tenants').withSchema('public').orderBy('org_id').select('org_id', 'schema_name', 'migration_count');
    expect(registered).toEqual(
      ['org_plain', ...odd].sort().map((orgId) => ({ org_id: orgId, schema_name: tenantSchemaName(orgId), migration_count: 3 })),
    );
  });
});

describe('a wrong prediction or a failure falls back to the ordinary path', () => {
  it('a tenant migrated behind the registry\'s back is not migrated twice, and its registry row is corrected', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_a', 'org_b'], { directory: tree });
    // Idempotent DDL: replayed on a tenant that already has it, it would succeed — only the guard
    // stops a second bookkeeping row.
    const name = '20260301000000_labels.ts';
    writeMigration(tree, name, "await knex.raw('create table if not exists labels (id serial primary key)');");
    // org_b gets the migration by hand, as stock Knex would: its own bookkeeping, no registry update.
    const schemaB = tenantSchemaName('org_b');
    await db.knex().raw('create table ??.labels (id serial primary key)', [schemaB]);
    await db.knex().withSchema(schemaB).into('knex_migrations').insert({ name, batch: 2, migration_time: db.knex().fn.now() });

    const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1 });

    expect(result.tenants.map((tenant) => [tenant.orgId, tenant.status])).toEqual([
      ['org_a', 'migrated'],
      ['org_b', 'up-to-date'],
    ]);
    expect(await appliedNames('org_b')).toEqual(['20260101000001_org_users.ts', name]);
    expect(await registryRow('org_b')).toEqual({ migration_version: name, migration_count: 2 });
  });

  it('a tenant whose replayed DDL fails is named with its migration, keeps nothing, and the next tenant is unharmed', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_1', 'org_2', 'org_3'], { directory: tree });
    writeMigration(tree, '20260301000000_tags.ts', "await knex.schema.createTable('tags', (t) => { t.increments('id'); });");
    writeMigration(tree, '20260301000001_topics.ts', "await knex.schema.createTable('topics', (t) => { t.increments('id'); });");
    // org_2 already has a "topics" table: the second migration cannot apply there.
    await db.knex().raw('create table ??.topics (id int)', [tenantSchemaName('org_2')]);
    // One connection: the tenant after the failure reuses the connection the failed script ran on.
    const knex = db.createKnex({ pool: { min: 0, max: 1 } });

    const result = await migrateTenants(knex, { directory: tree, concurrency: 1, continueOnError: true });

    expect(result.tenants.map((tenant) => tenant.status)).toEqual(['migrated', 'failed', 'migrated']);
    expect(result.tenants[1]!.error).toContain(`org_2 (${tenantSchemaName('org_2')}): migration 20260301000001_topics.ts (up) failed: relation "topics" already exists`);
    expect(await appliedNames('org_2')).toEqual(['20260101000001_org_users.ts']);
    const tables = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName('org_2') }).pluck('table_name');
    expect(tables).not.toContain('tags');
    expect(await appliedNames('org_3')).toHaveLength(3);
  });

  it('an org provisioned by someone else while its script waits for the lock is caught up, not provisioned twice', async () => {
    const tree = copyTree('tenant-basic');
    const schema = tenantSchemaName('org_late');
    // Another session holds org_late's lock and provisions it (an empty schema, registered) meanwhile.
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('begin');
      await other.query('select pg_advisory_xact_lock($1, $2)', [...schemaLockKey(schema)]);
      // org_first goes first and shows the tree's DDL; org_late's one script then waits for the lock.
      const running = provisionTenant(db.knex(), ['org_first', 'org_late'], { directory: tree, concurrency: 1 });
      await waitForLockWaiter();
      await other.query(`create schema "${schema}"`);
      await other.query(`create table "${schema}".knex_migrations (id serial primary key, name varchar(255), batch integer, migration_time timestamptz)`);
      await other.query(`create table "${schema}".knex_migrations_lock ("index" serial primary key, is_locked integer)`);
      await other.query('insert into public.tenants (org_id, schema_name) values ($1, $2)', ['org_late', schema]);
      await other.query('commit');
      const result = await running;
      expect(result.tenants[1]).toMatchObject({ orgId: 'org_late', status: 'migrated' });
    } finally {
      await other.end();
    }
    expect(await appliedNames('org_late')).toHaveLength(3);
    expect(await db.knex()('tenants').withSchema('public').where({ schema_name: schema }).pluck('org_id')).toEqual(['org_late']);
  });
});

describe('TENANT_MIGRATE_FAST_PATH=off', () => {
  // Process state deciding DDL — what the README tells authors not to do: replayed, every tenant
  // would get the first tenant's table; with the fast path off, each runs the module.
  const counting = `let runs = 0;
export async function up(knex) { runs += 1; await knex.raw('create table run_' + runs + ' (id int)'); }
export async function down() {}
`;
  const tables = async (orgId: string) =>
    (await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName(orgId) }).where('table_name', 'like', 'run\\_%').pluck('table_name')) as string[];

  it('runs every migration module for every tenant: no replay script is sent', async () => {
    const tree = copyTree('tenant-basic', 1);
    fs.writeFileSync(path.join(tree, '20260301000000_counting.js'), counting);
    const orgs = ['org_off_1', 'org_off_2', 'org_off_3'];
    const off = await runCli(['provision:tenant', ...orgs, '--concurrency', '1', '--json'], {
      env: { ...treeEnv(db.url, { tenant: tree }), TENANT_MIGRATE_FAST_PATH: 'off' },
    });
    expect(off.code).toBe(0);
    expect(await Promise.all(orgs.map(tables))).toEqual([['run_1'], ['run_2'], ['run_3']]);
  });

  it('on (the default), later tenants get the first tenant\'s SQL — why process state must not decide DDL', async () => {
    const tree = copyTree('tenant-basic', 1);
    fs.writeFileSync(path.join(tree, '20260301000000_counting.js'), counting);
    const orgs = ['org_on_1', 'org_on_2', 'org_on_3'];
    const sent = await recordSql(() => provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 }));
    expect(await Promise.all(orgs.map(tables))).toEqual([['run_1'], ['run_1'], ['run_1']]);
    expect(sent.filter((text) => text.startsWith('-- tenant-migrate: replay'))).toHaveLength(2);
    const offSent = await recordSql(() =>
      provisionTenant(db.knex(), ['org_off_lib_1', 'org_off_lib_2'], { directory: tree, concurrency: 1, fastPath: false }),
    );
    expect(offSent.filter((text) => text.startsWith('-- tenant-migrate: replay'))).toEqual([]);
  });
});

/** Resolves once a session waits for an advisory lock. */
async function waitForLockWaiter(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    // pg_locks is the whole server's: other test files run at once in other databases.
    const { rows } = await db
      .knex()
      .raw("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())");
    if (rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('nobody waited for the advisory lock');
}
