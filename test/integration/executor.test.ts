/**
 * The executor's `modules` route (src/migration/run-schema.ts): a migration sees what plain Knex
 * shows it, and a failure names the migration and leaves the tenant untouched.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_ddl_batch' });

beforeEach(() => dropAllTenants(db.knex()));
afterEach(async () => {
  await expectNoLeftovers(db.knex());
  await dropAllTenants(db.knex());
});

describe('the modules route', () => {
  it('a migration reads its own DDL, inside and after a savepoint', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_reads'], { directory: tree });
    writeMigration(
      tree,
      '20260301000000_reads_its_ddl.ts',
      `await knex.schema.createTable('c', (t) => { t.increments('id'); t.text('v'); });
       if (!(await knex.schema.hasTable('c'))) throw new Error('hasTable did not see c');
       await knex('c').insert({ v: 'row' });
       await knex.transaction(async (nested) => {
         await nested.schema.createTable('d', (t) => t.increments('id'));
         await nested('d').insert({});
       });
       const [{ n }] = await knex('d').count({ n: '*' });
       if (Number(n) !== 1) throw new Error('d should have one row');`,
    );
    const result = await migrateTenants(db.knex(), { directory: tree });
    expect(result.tenants[0]?.error).toBeUndefined();
    expect(result.tenants[0]?.status).toBe('migrated');
  });

  it('a failing statement fails its own migration, names it, and the tenant keeps nothing', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_ddl_error'], { directory: tree });
    writeMigration(tree, '20260301000000_fine.ts', "await knex.schema.createTable('fine', (t) => t.increments('id'));");
    writeMigration(
      tree,
      '20260301000001_broken_fk.ts',
      `await knex.schema.createTable('e', (t) => { t.increments('id'); });
       await knex.schema.createTable('f', (t) => { t.integer('x').references('id').inTable('no_such_table'); });`,
    );
    const result = await migrateTenants(db.knex(), { directory: tree });
    const tenant = result.tenants[0]!;
    expect(tenant.status).toBe('failed');
    expect(tenant.error).toContain('migration 20260301000001_broken_fk.ts (up) failed: relation "no_such_table" does not exist');
    expect(tenant.error).toMatch(/SQL: .*no_such_table/);
    const tables = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName('org_ddl_error') }).pluck('table_name');
    expect(tables).not.toContain('fine');
    expect(tables).not.toContain('e');
  });

  it('a migration that calls knex.rollback() or knex.commit() fails its tenant by name; a nested transaction that commits or rolls back its savepoint is fine', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_ends_a', 'org_ends_b'], { directory: tree });
    writeMigration(
      tree,
      '20260301000000_nested_is_fine.ts',
      `await knex.transaction(async (nested) => { await nested.schema.createTable('kept', (t) => t.increments('id')); });
       await knex.transaction(async (nested) => { await nested.schema.createTable('undone', (t) => t.increments('id')); await nested.rollback(); }).catch(() => {});
       const nested = await knex.transaction();
       await nested.schema.createTable('explicit', (t) => t.increments('id'));
       await nested.commit();`,
    );
    const fine = await migrateTenants(db.knex(), { directory: tree, tenants: ['org_ends_a'] });
    expect(fine.tenants[0]?.error).toBeUndefined();
    const tablesOf = (orgId: string) => db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName(orgId) }).pluck('table_name');
    expect(await tablesOf('org_ends_a')).toEqual(expect.arrayContaining(['kept', 'explicit']));
    expect(await tablesOf('org_ends_a')).not.toContain('undone');

    writeMigration(tree, '20260301000001_rolls_back.ts', `await knex.schema.createTable('rolled', (t) => t.increments('id'));\n       await knex.rollback();`);
    const rolled = await migrateTenants(db.knex(), { directory: tree, tenants: ['org_ends_b'] });
    expect(rolled.tenants[0]?.status).toBe('failed');
    expect(rolled.tenants[0]?.error).toMatch(/20260301000001_rolls_back\.ts \(up\) failed: it ended its transaction itself \(knex\.commit\(\) or knex\.rollback\(\)\)/);
    // Rolled back whole, the migration before it too: the tenant is untouched.
    expect(await tablesOf('org_ends_b')).not.toEqual(expect.arrayContaining(['kept']));
    expect(await tablesOf('org_ends_b')).not.toContain('rolled');
    expect(await db.knex().withSchema(tenantSchemaName('org_ends_b')).from('knex_migrations').pluck('name')).toEqual(['20260101000001_org_users.ts']);
  });

  it('session state set inside a DO block is not inherited by the next tenant (fast path on and off)', async () => {
    for (const fastPath of [true, false]) {
      await dropAllTenants(db.knex());
      const tree = copyTree('tenant-basic', 1);
      const orgIds = ['org_do_1', 'org_do_2', 'org_do_3'];
      await provisionTenant(db.knex(), orgIds, { directory: tree });
      writeMigration(
        tree,
        '20260301000000_marks_the_session.ts',
        `await knex.raw("do $$ begin if coalesce(current_setting('app.seen', true), '') <> '' then raise exception 'inherited %', current_setting('app.seen', true); end if; perform set_config('app.seen', current_schema(), false); end $$");
         await knex.raw('create table marked (id int)');`,
      );
      const warnings: string[] = [];
      const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1, fastPath, onWarning: (message) => warnings.push(message) });
      expect(result.tenants.map((t) => t.error ?? t.status), `fastPath ${fastPath}`).toEqual(['migrated', 'migrated', 'migrated']);
      expect(warnings.join('\n')).toContain('(a DO block that may change the session (set_config())); its connection was closed');
    }
  });

  it('an error the migration caught after the transaction was aborted names the migration, not the bookkeeping', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_swallows'], { directory: tree });
    writeMigration(tree, '20260301000000_swallows_an_error.ts', "await knex.schema.createTable('kept_not', (t) => t.increments('id'));\n       try { await knex.raw('select 1/0'); } catch {}");
    const result = await migrateTenants(db.knex(), { directory: tree });
    expect(result.tenants[0]?.status).toBe('failed');
    expect(result.tenants[0]?.error).toMatch(/migration 20260301000000_swallows_an_error\.ts \(up\) failed: an error inside it was caught, but PostgreSQL had already aborted the transaction/);
    expect(await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName('org_swallows'), table_name: 'kept_not' }).pluck('table_name')).toEqual([]);
  });

  it('a migration that sent COMMIT itself and then failed says that what came before the COMMIT stays', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_commits_then_fails'], { directory: tree });
    writeMigration(tree, '20260301000000_commits_then_fails.ts', "await knex.raw('create table before_commit (id int)');\n       await knex.raw('COMMIT');\n       await knex.raw('select 1/0');");
    const result = await migrateTenants(db.knex(), { directory: tree });
    expect(result.tenants[0]?.status).toBe('failed');
    expect(result.tenants[0]?.error).toMatch(/20260301000000_commits_then_fails\.ts \(up\) failed: division by zero.* — after it had sent "COMMIT" itself: what it sent before that committed, what came after ran outside a transaction, and all of it stays, not recorded as applied/);
    const schema = tenantSchemaName('org_commits_then_fails');
    expect(await db.knex()('information_schema.tables').where({ table_schema: schema, table_name: 'before_commit' }).pluck('table_name')).toEqual(['before_commit']);
    expect(await db.knex().withSchema(schema).from('knex_migrations').pluck('name')).toEqual(['20260101000001_org_users.ts']);
  });
  it('what a migration leaves in the session by ways its statements do not show is never inherited by the next tenant (fast path on and off)', async () => {
    // Each migration first fails if the session it got carries anything, then leaves something behind.
    const detector = `const { rows: [seen] } = await knex.raw(\`select current_setting('statement_timeout') as setting,
         (select count(*)::int from pg_class where relnamespace = pg_my_temp_schema()) as temps,
         (select count(*)::int from pg_cursors where is_holdable) as cursors,
         (select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and objid = 4242) as locks,
         current_setting('default_transaction_isolation') as isolation\`);
       if (seen.setting !== '0' || seen.temps || seen.cursors || seen.locks || seen.isolation !== 'read committed') throw new Error('inherited ' + JSON.stringify(seen));`;
    const leaks = [
      `await knex.raw("create or replace function leak() returns void language plpgsql as $f$ begin perform set_config('statement_timeout', '12345', false); end $f$"); await knex.raw('select leak()');`,
      `await knex.raw("do $$ begin execute 'set statement_timeout = 12345'; end $$");`,
      `await knex.raw("do $$ begin execute 'se' || 't default_transaction_isolation = serializable'; end $$");`,
      `await knex.raw('select * into temp tt from (select 1 as a) s');`,
      `await knex.raw('declare c1 cursor with hold for select 1');`,
      `await knex.raw('select pg_advisory_lock(1, 4242)');`,
    ];
    for (const [index, leak] of leaks.entries()) {
      for (const fastPath of [true, false]) {
        await dropAllTenants(db.knex());
        const tree = copyTree('tenant-basic', 1);
        await provisionTenant(db.knex(), ['org_leak_1', 'org_leak_2', 'org_leak_3'], { directory: tree });
        writeMigration(tree, `2026030100000${index}_leaves_something.ts`, `${detector}\n       ${leak}\n       await knex.raw('create table left_behind (id int)');`);
        const result = await migrateTenants(db.knex(), { directory: tree, concurrency: 1, fastPath, onWarning: () => {} });
        expect(result.tenants.map((t) => t.error ?? t.status), `${leak} · fast path ${fastPath}`).toEqual(['migrated', 'migrated', 'migrated']);
      }
    }
  }, 120_000);
  it('a replayed DO block that changes the session by dynamic SQL: the connection is closed, the next tenant starts clean', async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_dyn_1', 'org_dyn_2', 'org_dyn_3', 'org_dyn_4'], { directory: tree });
    // Plain DDL only (replayed after the first tenant): the block notes the statement_timeout it found
    // in a table comment, then sets one for the session by dynamic SQL.
    writeMigration(
      tree,
      '20260301000000_dynamic_set.ts',
      `await knex.raw("do $$ begin execute format('comment on table org_users is %L', current_setting('statement_timeout')); execute 'set statement_timeout = 12345'; end $$");
       await knex.raw('create table dynamic_set (id int)');`,
    );
    // One connection, so every tenant's run gets the session the previous one left.
    const oneConnection = db.createKnex({ pool: { min: 1, max: 1 } });
    const result = await migrateTenants(oneConnection, { directory: tree, concurrency: 1, fastPath: true, onWarning: () => {} });
    expect(result.tenants.map((t) => t.error ?? t.status)).toEqual(['migrated', 'migrated', 'migrated', 'migrated']);
    const found = await db.knex().raw("select obj_description(format('%I.org_users', nspname)::regclass) as seen from pg_namespace where nspname like 'tid\\_%' order by 1");
    expect(found.rows.map((row: { seen: string }) => row.seen)).toEqual(['0', '0', '0', '0']);
  });
});
