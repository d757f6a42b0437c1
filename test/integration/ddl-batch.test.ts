/**
 * A migration's DDL goes to PostgreSQL in one round trip (src/migration/ddl-batch.ts), without
 * changing what the migration sees or what a failure reports.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { recordSql } from '../support/record-sql.ts';
import { copyTree, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_ddl_batch' });

beforeEach(() => dropAllTenants(db.knex()));
afterEach(() => dropAllTenants(db.knex()));

describe('DDL batching', () => {
  it("sends a migration's DDL statements together, in order, in one round trip", async () => {
    const tree = copyTree('tenant-basic', 1);
    await provisionTenant(db.knex(), ['org_batch'], { directory: tree });
    writeMigration(
      tree,
      '20260301000000_three_tables.ts',
      `await knex.schema.createTable('a', (t) => { t.increments('id'); t.text('name').index(); });
       await knex.schema.createTable('b', (t) => { t.increments('id'); t.integer('a_id').references('id').inTable('a'); });
       await knex.raw('comment on table b is \\'batched\\'');`,
    );
    const sent = await recordSql(() => migrateTenants(db.knex(), { directory: tree }));
    const ddl = sent.filter((text) => /create table|create index|comment on/i.test(text));
    expect(ddl).toHaveLength(1);
    expect(ddl[0]).toMatch(/create table "a"[\s\S]*create index[\s\S]*create table "b"[\s\S]*foreign key[\s\S]*comment on table b/);
    const { rows } = await db.knex().raw("select obj_description(?::regclass) as comment", [`${tenantSchemaName('org_batch')}.b`]);
    expect(rows[0].comment).toBe('batched');
  });

  it('sends held-back DDL before a statement that reads, and before a savepoint', async () => {
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

  it('a failing held-back statement fails its own migration, names it, and the tenant keeps nothing', async () => {
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
});
