/**
 * Issue 8's confirmed defects of the old fast path, each as a user meets it: what a tenant is
 * reported as, and what it holds, must be what plain Knex gives — and a tenant reported migrated or
 * provisioned has committed. Each migration runs over several tenants, so the replay of learned
 * SQL is taken for the later ones wherever the migration allows it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateMaster } from '../../src/master/master.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { ensureRegistry } from '../../src/tenants/registry.ts';
import { schemaLockKey } from '../../src/db/advisory-lock.ts';
import { createTestDatabase, useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, writeMigration } from '../support/trees.ts';
import knexFactory from 'knex';
import { knexConfig } from '../../src/db/connection.ts';

const db = useFreshDatabase({ prefix: 'tm_trust' });
const orgs = ['org_t1', 'org_t2', 'org_t3', 'org_t4'];

beforeEach(() => dropAllTenants(db.knex()));
afterEach(async () => {
  await expectNoLeftovers(db.knex());
  await dropAllTenants(db.knex());
});

const tables = async (orgId: string) =>
  ((await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName(orgId) }).pluck('table_name')) as string[]).sort();
const applied = (orgId: string) => db.knex().withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name');

describe('defect 1: a savepoint whose error the migration swallows', () => {
  // The savepoint comes last: nothing the migration sends after it could reveal an aborted transaction.
  const body = `await knex.schema.createTable('before_sp', (t) => t.increments('id'));
    await knex.schema.createTable('after_sp', (t) => t.increments('id'));
    try {
      await knex.transaction((sp) => sp.raw('create unique index users_email_domain on org_users ((split_part(email, \\'@\\', 2)))'));
    } catch {}`;

  it('migrate:tenants: the savepoint rolls back, the rest commits — on tenants whose data violates the index too', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), orgs, { directory: tree });
    // org_t2 and org_t4 have two users of one domain: the unique index fails there.
    for (const orgId of ['org_t2', 'org_t4']) {
      await db.knex().withSchema(tenantSchemaName(orgId)).into('org_users').insert([{ email: 'a@same.io' }, { email: 'b@same.io' }]);
    }
    writeMigration(tree, '20260301000000_optional_index.ts', body);
    const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1 });
    expect(result.tenants.map((t) => t.status)).toEqual(['migrated', 'migrated', 'migrated', 'migrated']);
    for (const orgId of orgs) {
      expect(await tables(orgId)).toEqual(['after_sp', 'before_sp', 'knex_migrations', 'knex_migrations_lock', 'org_users']);
      expect(await applied(orgId)).toContain('20260301000000_optional_index.ts');
      const indexes = await db.knex()('pg_indexes').where({ schemaname: tenantSchemaName(orgId), indexname: 'users_email_domain' }).pluck('indexname');
      expect(indexes).toHaveLength(['org_t2', 'org_t4'].includes(orgId) ? 0 : 1);
    }
  });

  it('provision:tenant: an org whose own seed data violates the index is provisioned and committed', async () => {
    const tree = copyTree('tenant-basic', 1);
    writeMigration(
      tree,
      '20260301000000_seed_then_optional_index.ts',
      `await knex('org_users').insert([{ email: 'a@same.io' }, { email: 'b@same.io' }]);\n${body}`,
    );
    const result = await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    expect(result.tenants.map((t) => t.status)).toEqual(['provisioned', 'provisioned', 'provisioned', 'provisioned']);
    for (const orgId of orgs) {
      expect(await tables(orgId)).toContain('after_sp');
      expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('org_users').count({ n: '*' })).toEqual([{ n: 2 }]);
    }
  });
});

describe('defect 2: a read right after DDL gets its own result', () => {
  it('count()-then-seed seeds every provisioned org; pluck and raw reads after DDL see their own rows', async () => {
    const tree = copyTree('tenant-basic', 1);
    writeMigration(
      tree,
      '20260301000000_settings_with_defaults.ts',
      `await knex.schema.createTable('settings', (t) => { t.text('key').primary(); t.text('value'); });
       const [{ n }] = await knex('settings').count({ n: '*' });
       if (Number(n) === 0) await knex('settings').insert([{ key: 'theme', value: 'light' }, { key: 'lang', value: 'en' }]);
       await knex.raw('create index settings_value on settings (value)');
       const keys = await knex('settings').orderBy('key').pluck('key');
       if (keys.join() !== 'lang,theme') throw new Error('pluck saw ' + JSON.stringify(keys));
       await knex.raw('comment on table settings is \\'defaults\\'; create table settings_audit (id serial)');
       const { rows } = await knex.raw('select count(*)::int as n from settings');
       if (rows?.[0]?.n !== 2) throw new Error('raw read saw ' + JSON.stringify(rows));`,
    );
    const result = await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    expect(result.tenants.map((t) => t.error ?? t.status)).toEqual(['provisioned', 'provisioned', 'provisioned', 'provisioned']);
    for (const orgId of orgs) {
      expect(await db.knex().withSchema(tenantSchemaName(orgId)).from('settings').orderBy('key').pluck('value')).toEqual(['en', 'light']);
    }
  });
});

describe('defect 3: a trailing -- comment', () => {
  it('does not swallow what follows: every tenant commits the view and its bookkeeping', async () => {
    const tree = copyTree('tenant-basic', 1);
    // "select * from org_users" followed by a swallowed separator would take the next word
    // (COMMIT) as a table alias, leaving the transaction open.
    writeMigration(tree, '20260301000000_users_view.ts', "await knex.raw('create view all_users as select * from org_users -- every user');");
    const result = await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    expect(result.tenants.map((t) => t.status)).toEqual(['provisioned', 'provisioned', 'provisioned', 'provisioned']);
    for (const orgId of orgs) {
      expect(await applied(orgId)).toEqual(['20260101000001_org_users.ts', '20260301000000_users_view.ts']);
      const views = await db.knex()('information_schema.views').where({ table_schema: tenantSchemaName(orgId) }).pluck('table_name');
      expect(views).toEqual(['all_users']);
    }
  });
});

describe('defect 4: the isolation level is stated, not assumed', () => {
  for (const isolation of ['repeatable read', 'serializable']) {
    it(`with default_transaction_isolation = ${isolation}, concurrent runs apply each migration once and both succeed`, async () => {
      const extra = await createTestDatabase('tm_trust_iso');
      const knexA = knexFactory(knexConfig(extra.connection, 3));
      const knexB = knexFactory(knexConfig(extra.connection, 3));
      try {
        await knexA.raw(`alter database ?? set default_transaction_isolation = '${isolation}'`, [extra.name]);
        await knexA.destroy();
        await knexB.destroy();
        const a = knexFactory(knexConfig(extra.connection, 3));
        const b = knexFactory(knexConfig(extra.connection, 3));
        try {
          expect((await a.raw('show default_transaction_isolation')).rows[0].default_transaction_isolation).toBe(isolation);
          // Idempotent DDL, slow: a run that planned from a snapshot older than its lock would
          // apply it a second time without an error — only the bookkeeping would show it.
          const master = copyTree('master-basic', 0);
          writeMigration(master, '20260101000000_shared.ts', "await knex.raw('create table if not exists shared_things (id int)'); await knex.raw('select pg_sleep(0.2)');");
          const masterRuns = await Promise.all([migrateMaster(a, { directory: master }), migrateMaster(b, { directory: master })]);
          expect(masterRuns.map((run) => run.error ?? run.status).sort()).toEqual(['migrated', 'up-to-date']);
          expect(await a('knex_migrations').withSchema('public').pluck('name')).toEqual(['20260101000000_shared.ts']);

          const tree = copyTree('tenant-basic', 1);
          const fleet = ['org_i1', 'org_i2', 'org_i3', 'org_i4', 'org_i5', 'org_i6'];
          await provisionTenant(a, fleet, { directory: tree });
          // Slow and idempotent, as above: both runs overlap on every tenant.
          writeMigration(tree, '20260301000000_slow.ts', "await knex.raw('create table if not exists s1 (id int)'); await knex.raw('select pg_sleep(0.05)');");
          const [runA, runB] = await Promise.all([
            migrateTenants(a, { directory: tree, concurrency: 2, continueOnError: true }),
            migrateTenants(b, { directory: tree, concurrency: 2, continueOnError: true }),
          ]);
          for (const run of [runA, runB]) expect(run.tenants.filter((t) => t.status === 'failed').map((t) => t.error)).toEqual([]);
          for (const orgId of fleet) {
            const names = await a.withSchema(tenantSchemaName(orgId)).from('knex_migrations').pluck('name');
            expect(names).toEqual(['20260101000001_org_users.ts', '20260301000000_slow.ts']);
          }
        } finally {
          await Promise.all([a.destroy(), b.destroy()]);
        }
      } finally {
        await extra.drop();
      }
    });
  }
});

describe('defect 5: query options reach the server', () => {
  it("rowMode: 'array' after DDL comes back as arrays", async () => {
    const tree = copyTree('tenant-basic', 1);
    writeMigration(
      tree,
      '20260301000000_array_rows.ts',
      `await knex.schema.createTable('flags', (t) => t.text('name'));
       const result = await knex.raw('select 1 as a, 2 as b').options({ rowMode: 'array' });
       if (!Array.isArray(result.rows[0]) || result.rows[0][1] !== 2) throw new Error('rowMode ignored: ' + JSON.stringify(result.rows));`,
    );
    const result = await provisionTenant(db.knex(), orgs, { directory: tree, concurrency: 1 });
    expect(result.tenants.map((t) => t.error ?? t.status)).toEqual(['provisioned', 'provisioned', 'provisioned', 'provisioned']);
  });
});

describe('a transaction the server did not commit', () => {
  it('is reported failed, never migrated', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_t1'], { directory: tree });
    // The migration would end the transaction itself: sent, what it did would be rolled back and its
    // bookkeeping would commit on its own (the tenant recorded as migrated with nothing applied).
    writeMigration(tree, '20260301000000_ends_its_transaction.ts', "await knex.schema.createTable('gone', (t) => t.increments('id')); await knex.raw('rollback');");
    const result = await migrateTenants(db.knex(), { directory: tree });
    expect(result.tenants[0]).toMatchObject({ status: 'failed' });
    expect(result.tenants[0]!.error).toMatch(/20260301000000_ends_its_transaction\.ts \(up\) failed: it sent "rollback", which was not sent on/);
    expect(await tables('org_t1')).not.toContain('gone');
    const schema = tenantSchemaName('org_t1');
    expect(await db.knex().withSchema(schema).from('knex_migrations').pluck('name')).toEqual(['20260101000001_org_users.ts']);
    expect(await db.knex()('tenants').where({ org_id: 'org_t1' }).first('migration_version', 'migration_count')).toEqual({ migration_version: '20260101000001_org_users.ts', migration_count: 1 });

    // Caught by the migration, ABORT too: still refused — it meant to undo its work.
    fs.rmSync(path.join(tree, '20260301000000_ends_its_transaction.ts'));
    writeMigration(tree, '20260301000001_aborts_quietly.ts', "await knex.schema.createTable('gone', (t) => t.increments('id')); await knex.raw('abort').catch(() => {});");
    const caught = await migrateTenants(db.knex(), { directory: tree });
    expect(caught.tenants[0]!.error, caught.tenants[0]!.error).toMatch(/it sent "abort", which was not sent on/);
    expect(await db.knex().withSchema(schema).from('knex_migrations').pluck('name')).toEqual(['20260101000001_org_users.ts']);
    expect(await tables('org_t1')).not.toContain('gone');
  });
});


describe("a session's catalog cache is not the truth after an advisory lock", () => {
  it('a run that waited for another to create knex_migrations reads its rows, never applies the tree again', async () => {
    const extra = await createTestDatabase('tm_trust_cache');
    const a = knexFactory(knexConfig(extra.connection, 1));
    const b = knexFactory(knexConfig(extra.connection, 1));
    // A third session holds public's lock, so that A and then B queue for it before either has
    // looked at (or created) knex_migrations — the order in which two deploys can meet.
    const holder = knexFactory(knexConfig(extra.connection, 1));
    const waiting = async (count: number) => {
      for (let i = 0; i < 400; i++) {
        // This database's waiters only: other test files run at once against the same server.
        const { rows } = await holder.raw(
          "select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())",
        );
        if (rows[0].n >= count) return;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error(`${count} runs never queued for the lock`);
    };
    try {
      await ensureRegistry(a); // what migrate:master creates first; no bookkeeping yet
      const master = copyTree('master-basic', 0);
      writeMigration(master, '20260101000000_slow.ts', "await knex.raw('create table if not exists slow_things (id int)'); await knex.raw('select pg_sleep(0.5)');");
      await holder.raw('select pg_advisory_lock(?, ?)', [...schemaLockKey('public')]);
      const runA = migrateMaster(a, { directory: master });
      await waiting(1);
      // B's session has looked the table up before (any earlier query of a long-lived pool can have):
      // its catalog cache now says "no such table".
      expect((await b.raw("select to_regclass('public.knex_migrations') as oid")).rows[0].oid).toBeNull();
      const runB = migrateMaster(b, { directory: master });
      await waiting(2);
      await holder.raw('select pg_advisory_unlock(?, ?)', [...schemaLockKey('public')]);
      const results = await Promise.all([runA, runB]);
      expect(results.map((run) => run.error ?? run.status)).toEqual(['migrated', 'up-to-date']);
      expect(await a('knex_migrations').withSchema('public').pluck('name')).toEqual(['20260101000000_slow.ts']);
    } finally {
      await Promise.all([a.destroy(), b.destroy(), holder.destroy()]);
      await extra.drop();
    }
  });
});
