/** Issue 21: the per-tenant roles settings and role names (no database). */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.ts';
import { readRolesSettings } from '../../src/roles/settings.ts';
import { defaultGroupRoleName, tenantRoleName, tenantRolePrefix, tenantSchemaName } from '../../src/tenants/naming.ts';

describe('TENANT_ROLES, TENANT_APP_ROLE, TENANT_GROUP_ROLE', () => {
  it('default off; on needs the app role; each value validated', () => {
    expect(readRolesSettings({})).toEqual({ enabled: false });
    expect(readRolesSettings({ TENANT_ROLES: 'off' })).toEqual({ enabled: false, off: true });
    expect(readRolesSettings({ TENANT_ROLES: 'ON', TENANT_APP_ROLE: 'app' })).toEqual({ enabled: true, appRole: 'app' });
    expect(() => readRolesSettings({ TENANT_ROLES: 'yes' })).toThrow(/TENANT_ROLES must be "on" or "off"/);
    expect(() => readRolesSettings({ TENANT_ROLES: 'on' })).toThrow(/needs TENANT_APP_ROLE/);
    expect(() => readRolesSettings({ TENANT_ROLES: 'on', TENANT_APP_ROLE: 'x'.repeat(64) })).toThrow(/longer than 63 bytes/);
    expect(() => readRolesSettings({ TENANT_ROLES: 'on', TENANT_APP_ROLE: 'pg_read_all_data' })).toThrow(/reserves/);
    expect(() => readRolesSettings({ TENANT_ROLES: 'on', TENANT_APP_ROLE: 'public' })).toThrow(/reserved/);
    expect(() => readRolesSettings({ TENANT_ROLES: 'on', TENANT_APP_ROLE: 'app', TENANT_GROUP_ROLE: 'app' })).toThrow(/two different roles/);
  });

  it('loadConfig reads them (exit 2 on a bad value)', () => {
    const env = { DATABASE_URL: 'postgres://u@localhost/app', TENANT_ROLES: 'on', TENANT_APP_ROLE: 'app', TENANT_GROUP_ROLE: 'app_tenants' };
    expect(loadConfig({ env, requireMigrationDirs: false }).roles).toEqual({ enabled: true, appRole: 'app', groupRole: 'app_tenants' });
    expect(() => loadConfig({ env: { ...env, TENANT_ROLES: 'maybe' }, requireMigrationDirs: false })).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
});

describe('role names', () => {
  it('database + schema, at most 63 bytes, distinct per database, the group outside the tenant roles range', () => {
    const schema = tenantSchemaName('org_2abc123def456');
    const staging = tenantRoleName('app_staging', schema);
    const production = tenantRoleName('app_production', schema);
    expect(staging).toMatch(/^tm_[0-9a-f]{10}_tid_[0-9a-f]{10}$/);
    expect(staging).not.toBe(production);
    expect(Buffer.byteLength(tenantRoleName('d'.repeat(63), schema))).toBeLessThanOrEqual(63);
    const prefix = tenantRolePrefix('app_staging');
    const group = defaultGroupRoleName('app_staging');
    expect(staging.startsWith(prefix)).toBe(true);
    expect(group >= prefix && group < `${prefix}~`).toBe(false);
  });
});
