/**
 * Issue 21, the rest of a tenant role's life: the preflight (exit 2, nothing written), status
 * (`missingRoleOrgIds`, `grantDriftOrgIds`, `--check`), a migration that names a tenant role,
 * deprovision (the role goes) and restore (it comes back, with its grants). The tool runs as a
 * non-superuser with CREATEROLE, the application as its own login role.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deprovisionTenant } from '../../src/backup/deprovision.ts';
import { migrateTenants } from '../../src/tenants/migrate-tenants.ts';
import { tenantRoleName, tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { quoteIdent, useFreshDatabase, withAdminClient } from '../support/database.ts';
import { useRoleLogins } from '../support/roles.ts';
import { copyTree, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_roles_life' });
const roles = useRoleLogins(db);

const A = 'org_life_a';
const B = 'org_life_b';
const C = 'org_life_c';
const roleOf = (org: string) => tenantRoleName(db.name, tenantSchemaName(org));
const roleExists = async (org: string) => (await roles.tool().raw('select 1 from pg_roles where rolname = ?', [roleOf(org)])).rows.length === 1;

describe('per-tenant roles: preflight, status, deprovision, restore', { timeout: 240_000 }, () => {
  const tree = copyTree('tenant-basic', 2);
  const master = copyTree('master-basic', 0);
  const env = (extra: Record<string, string> = {}) => ({ ...roles.env(extra), TENANT_MIGRATIONS_DIR: tree, MASTER_MIGRATIONS_DIR: master });
  const registryExists = async () => (await roles.tool().raw("select to_regclass('public.tenants') is not null as e")).rows[0].e as boolean;

  it('preflight: exit 2 with the reason and nothing written — app role missing, the tool itself, a tool without CREATEROLE; on PostgreSQL 15 an inheriting app role', async () => {
    const missing = await runCli(['provision:tenant', A], { env: env({ TENANT_APP_ROLE: 'tm_no_such_app_role' }) });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/TENANT_APP_ROLE "tm_no_such_app_role" does not exist/);
    const itself = await runCli(['provision:tenant', A], { env: env({ TENANT_APP_ROLE: roles.toolRole }) });
    expect(itself.code).toBe(2);
    expect(itself.stderr).toMatch(/is the role tenant-migrate runs as/);
    // The application's login role has no CREATEROLE: as the tool, it is refused.
    const noCreateRole = await runCli(['provision:tenant', A], { env: { ...env({ TENANT_APP_ROLE: roles.toolRole }), DATABASE_URL: roles.url('app') } });
    expect(noCreateRole.code).toBe(2);
    expect(noCreateRole.stderr).toMatch(/cannot create roles: ALTER ROLE .* CREATEROLE/);
    if (roles.version() < 160000) {
      const inheriting = `tm_test_inherit_${db.name.slice(-8)}`;
      await withAdminClient((client) => client.query(`create role ${quoteIdent(inheriting)} login inherit`));
      try {
        const refused = await runCli(['provision:tenant', A], { env: env({ TENANT_APP_ROLE: inheriting }) });
        expect(refused.code).toBe(2);
        expect(refused.stderr).toMatch(/must be NOINHERIT/);
      } finally {
        await withAdminClient((client) => client.query(`drop role ${quoteIdent(inheriting)}`));
      }
    }
    const badSetting = await runCli(['provision:tenant', A], { env: env({ TENANT_ROLES: 'yes' }) });
    expect(badSetting.code).toBe(2);
    expect(badSetting.stderr).toMatch(/TENANT_ROLES must be "on" or "off"/);
    expect(await registryExists()).toBe(false);
  });

  it('status lists tenants without a role and, with --verify, tenants whose grants drifted; --check fails on both; migrate:tenants repairs them', async () => {
    await provisionTenant(roles.tool(), [A, B], { directory: tree, roles: roles.settings });
    await provisionTenant(roles.tool(), [C], { directory: tree, roles: { enabled: false } });
    const status = await runCli(['status', '--json', '--check'], { env: env() });
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout).tenants).toMatchObject({ missingRoleOrgIds: [C] });
    // A privilege taken away by hand, and one given on the bookkeeping.
    await roles.tool().raw(`revoke delete on ${quoteIdent(tenantSchemaName(A))}.notes from ${quoteIdent(roleOf(A))}`);
    await roles.tool().raw(`grant select on ${quoteIdent(tenantSchemaName(B))}.knex_migrations to ${quoteIdent(roleOf(B))}`);
    const verified = await runCli(['status', '--json', '--verify'], { env: env() });
    expect(JSON.parse(verified.stdout).tenants).toMatchObject({ missingRoleOrgIds: [C], grantDriftOrgIds: [A, B] });
    const repaired = await migrateTenants(roles.tool(), { directory: tree, roles: roles.settings, verify: true });
    expect(repaired.summary).toMatchObject({ total: 3, rolesCreated: 1 });
    const after = await runCli(['status', '--json', '--verify', '--check'], { env: env() });
    expect(after.code, after.stdout).toBe(0);
    expect(JSON.parse(after.stdout).tenants).toMatchObject({ missingRoleOrgIds: [], grantDriftOrgIds: [] });
  });

  it('a migration that names a tenant role is refused, and the tenant is untouched', async () => {
    const grant = `await knex.raw('grant select on notes to ${roleOf(B)}');`;
    writeMigration(tree, '20260301000003_grant_to_tenant.ts', grant);
    const result = await migrateTenants(roles.tool(), { directory: tree, roles: roles.settings, tenants: [A], continueOnError: true });
    expect(result.ok).toBe(false);
    expect(result.tenants[0]!.error).toMatch(/names a tenant role/);
    fs.rmSync(path.join(tree, '20260301000003_grant_to_tenant.ts'));
    const applied = await roles.tool().withSchema(tenantSchemaName(A)).from('knex_migrations').pluck('name');
    expect(applied).toHaveLength(2);
  });

  it('deprovision drops the tenant role in its transaction', async () => {
    expect(await roleExists(B)).toBe(true);
    const result = await deprovisionTenant(roles.tool(), [B], { noBackup: true });
    expect(result.ok).toBe(true);
    expect(await roleExists(B)).toBe(false);
  });

  it('restore brings the role back with its memberships and grants: the app reads the restored rows inside withTenant (catalog dumper, the default)', async () => {
    await withTenant(roles.app(), A, (trx) => trx('org_users').insert({ email: 'kept@example.com' }));
    const backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-roles-backup-'));
    const gone = await runCli(['deprovision:tenant', A, '--backup-dir', backupDir, '--json'], { env: env() });
    expect(gone.code, gone.stderr).toBe(0);
    expect(await roleExists(A)).toBe(false);
    const manifest = JSON.parse(gone.stdout).tenants[0].manifest as string;
    expect(JSON.parse(fs.readFileSync(manifest, 'utf8'))).toMatchObject({ format: 'sql' });
    const back = await runCli(['restore:tenant', manifest, '--json'], { env: env() });
    expect(back.code, back.stderr).toBe(0);
    expect(await roleExists(A)).toBe(true);
    expect(await withTenant(roles.app(), A, (trx) => trx('org_users').pluck('email'))).toEqual(['kept@example.com']);
    const status = await runCli(['status', '--json', '--verify', '--check'], { env: env() });
    expect(status.code, status.stdout).toBe(0);
  });
});
