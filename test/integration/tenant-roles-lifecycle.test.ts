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
import { defaultGroupRoleName, tenantRoleName, tenantRolePrefix, tenantSchemaName } from '../../src/tenants/naming.ts';
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
    expect(await rolesOfDatabase()).toEqual([]);
  });

  /** Roles of this database: tenant roles (prefix) and the default group. None may exist after a refusal. */
  const rolesOfDatabase = async () =>
    (
      await roles.tool().raw<{ rows: { rolname: string }[] }>(
        'select rolname from pg_roles where (rolname >= ? and rolname < ?) or rolname = ? order by 1',
        [tenantRolePrefix(db.name), `${tenantRolePrefix(db.name)}~`, defaultGroupRoleName(db.name)],
      )
    ).rows.map((row) => row.rolname);

  it('preflight, each refusal on a real server (exit 2, the reason, no role created): a superuser app role, BYPASSRLS, a member of the owner, the owner of a tenant schema; 16+: no ADMIN on the group', async () => {
    const suffix = db.name.slice(-8);
    const made: string[] = [];
    const appRole = async (name: string, attributes: string) => {
      const role = `tm_test_${name}_${suffix}`;
      await withAdminClient((client) => client.query(`create role ${quoteIdent(role)} ${attributes.includes('nologin') ? attributes : `login noinherit ${attributes}`}`));
      made.push(role);
      return role;
    };
    // A tenant schema (the pattern's) owned by a role of its own, whose member the app role is.
    const orphan = tenantSchemaName('org_life_owned');
    try {
      const superuser = await appRole('super', 'superuser');
      const bypass = await appRole('bypass', 'bypassrls');
      const member = await appRole('member', '');
      await withAdminClient((client) => client.query(`grant ${quoteIdent(roles.toolRole)} to ${quoteIdent(member)}`));
      const owner = await appRole('owner', '');
      const ownerMember = await appRole('ownermember', '');
      await withAdminClient((client) => client.query(`grant ${quoteIdent(owner)} to ${quoteIdent(ownerMember)}`));
      await db.knex().raw(`create schema ${quoteIdent(orphan)} authorization ${quoteIdent(owner)}`);
      const cases: [string, RegExp][] = [
        [superuser, /TENANT_APP_ROLE "tm_test_super_\w+" is a superuser, which no privilege stops/],
        [bypass, /TENANT_APP_ROLE "tm_test_bypass_\w+" has BYPASSRLS: ALTER ROLE \S+ NOBYPASSRLS/],
        [member, new RegExp(`TENANT_APP_ROLE "tm_test_member_\\w+" is a member of "${roles.toolRole}", which owns the tenant schemas`)],
        [owner, new RegExp(`TENANT_APP_ROLE "tm_test_owner_\\w+" owns \\(or is a member of the owner of\\) tenant schemas ${orphan}`)],
        [ownerMember, new RegExp(`TENANT_APP_ROLE "tm_test_ownermember_\\w+" owns \\(or is a member of the owner of\\) tenant schemas ${orphan}`)],
      ];
      for (const [app, reason] of cases) {
        const refused = await runCli(['provision:tenant', A], { env: env({ TENANT_APP_ROLE: app }) });
        expect([app, refused.code]).toEqual([app, 2]);
        expect(refused.stderr).toMatch(reason);
        expect(refused.stderr).toMatch(/Nothing was changed/);
      }
      if (roles.version() >= 160000) {
        // A group made by another role: from 16 a CREATEROLE role administers only the roles it made.
        const group = await appRole('group', 'nologin');
        const refused = await runCli(['provision:tenant', A], { env: env({ TENANT_GROUP_ROLE: group }) });
        expect(refused.code).toBe(2);
        expect(refused.stderr).toMatch(new RegExp(`has no ADMIN option on the group role "${group}"`));
      }
      expect(await rolesOfDatabase()).toEqual([]);
      expect(await registryExists()).toBe(false);
    } finally {
      await db.knex().raw(`drop schema if exists ${quoteIdent(orphan)}`);
      await withAdminClient(async (client) => {
        for (const role of made) await client.query(`drop role if exists ${quoteIdent(role)}`);
      });
    }
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
    // Drift alone (every tenant has its role) fails --check too: here the tenant role owns a table.
    await roles.tool().raw(`create table ${quoteIdent(tenantSchemaName(A))}.owned_by_role (id int)`);
    // As a superuser: a new owner needs CREATE on the schema, which a tenant role never gets.
    await db.knex().raw(`alter table ${quoteIdent(tenantSchemaName(A))}.owned_by_role owner to ${quoteIdent(roleOf(A))}`);
    const drifted = await runCli(['status', '--json', '--verify', '--check'], { env: env() });
    expect(drifted.code).toBe(1);
    expect(JSON.parse(drifted.stdout).tenants).toMatchObject({ missingRoleOrgIds: [], grantDriftOrgIds: [A] });
    await roles.tool().raw(`drop table ${quoteIdent(tenantSchemaName(A))}.owned_by_role`);
    expect((await runCli(['status', '--json', '--verify', '--check'], { env: env() })).code).toBe(0);
  });

  it('memberships: the app role in each tenant role (16+: INHERIT FALSE, SET TRUE; 15: the app role is NOINHERIT), the tenant role in the group, the tool in the tenant role (16+: SET TRUE)', async () => {
    const { rows } = await roles.tool().raw<{ rows: { member: string; role: string; inherit: boolean; set: boolean }[] }>(
      roles.version() >= 160000
        ? `select m.rolname as member, r.rolname as role, a.inherit_option as inherit, a.set_option as set
             from pg_auth_members a join pg_roles m on m.oid = a.member join pg_roles r on r.oid = a.roleid where r.rolname = ? or m.rolname = ? order by 1, 2`
        : `select m.rolname as member, r.rolname as role, m.rolinherit as inherit, true as set
             from pg_auth_members a join pg_roles m on m.oid = a.member join pg_roles r on r.oid = a.roleid where r.rolname = ? or m.rolname = ? order by 1, 2`,
      [roleOf(A), roleOf(A)],
    );
    // On 16+ a CREATEROLE role is also made a member of each role it creates (ADMIN, no INHERIT,
    // no SET: createrole_self_grant): the tool's own grant WITH SET TRUE is a second row.
    const of = (member: string, role: string) => rows.filter((row) => row.member === member && row.role === role);
    expect(of(roles.appRole, roleOf(A))).toEqual([expect.objectContaining({ inherit: false, set: true })]);
    expect(of(roleOf(A), defaultGroupRoleName(db.name))).toEqual([expect.objectContaining({ inherit: true })]);
    expect(of(roles.toolRole, roleOf(A)).some((row) => row.set)).toBe(true);
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
