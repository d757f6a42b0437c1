/**
 * Issue 21, shared tables: a master migration grants a public table to the group with
 * `tenantGroupRole(knex)`, and inside `withTenant` the application (its own login role) reads it.
 * The settings come from the project's `.env`, as a real project keeps them: the group the run
 * creates (TENANT_GROUP_ROLE) is the one the migration names.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { quoteIdent, useFreshDatabase, withAdminClient } from '../support/database.ts';
import { useRoleLogins } from '../support/roles.ts';
import { copyTree } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_roles_group' });
const roles = useRoleLogins(db);
const group = `tm_test_group_${crypto.randomBytes(4).toString('hex')}`;

afterAll(async () => {
  // Before the database and the file's roles go: the group's privileges, then the group.
  await db.knex().raw(`drop owned by ${quoteIdent(group)}`).catch(() => {});
  await withAdminClient((client) => client.query(`drop role if exists ${quoteIdent(group)}`));
}, 60_000);

describe('a shared table granted to the group by a master migration (settings in .env)', { timeout: 240_000 }, () => {
  it('tenantGroupRole(knex) names TENANT_GROUP_ROLE from .env; the app reads the table inside withTenant only', async () => {
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-roles-group-'));
    try {
      const master = path.join(project, 'migrations/master');
      fs.mkdirSync(master, { recursive: true });
      const index = pathToFileURL(path.resolve('src/index.ts')).href;
      fs.writeFileSync(
        path.join(master, '20260101000000_plans.ts'),
        `import { tenantGroupRole } from ${JSON.stringify(index)};
export async function up(knex) {
  await knex.schema.createTable('plans', (table) => { table.increments('id'); table.text('name').notNullable(); });
  await knex('plans').insert({ name: 'pro' });
  await knex.raw('grant select on public.plans to ??', [await tenantGroupRole(knex)]);
}
export async function down(knex) { await knex.schema.dropTable('plans'); }
`,
      );
      const tenant = copyTree('tenant-basic', 2);
      // Only DATABASE_URL in the environment: the roles settings are the project's .env.
      fs.writeFileSync(
        path.join(project, '.env'),
        [`TENANT_ROLES=on`, `TENANT_APP_ROLE=${roles.appRole}`, `TENANT_GROUP_ROLE=${group}`, `MASTER_MIGRATIONS_DIR=migrations/master`, `TENANT_MIGRATIONS_DIR=${tenant}`, ''].join('\n'),
      );
      const env = { DATABASE_URL: roles.url('tool') };
      const migrated = await runCli(['migrate:master'], { env, cwd: project });
      expect(migrated.code, migrated.stderr + migrated.stdout).toBe(0);
      const provisioned = await runCli(['provision:tenant', 'org_group_a'], { env, cwd: project });
      expect(provisioned.code, provisioned.stderr + provisioned.stdout).toBe(0);
      expect(await withTenant(roles.app(), 'org_group_a', (trx) => trx('plans').pluck('name'))).toEqual(['pro']);
      await expect(roles.app().raw('select * from public.plans')).rejects.toMatchObject({ code: '42501' });
    } finally {
      fs.rmSync(project, { recursive: true, force: true });
    }
  });
});
