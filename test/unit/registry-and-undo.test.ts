/** TENANT_REGISTRY_TABLE, DB_ACQUIRE_TIMEOUT_MS and `--to` names: checked before anything touches the database. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.ts';
import { UsageError } from '../../src/errors.ts';
import { undoTarget } from '../../src/migration/undo-target.ts';
import { parseRegistryTable, registrySql } from '../../src/tenants/registry-table.ts';

describe('TENANT_REGISTRY_TABLE', () => {
  it('takes a table name, optionally schema-qualified, and quotes it', () => {
    expect(parseRegistryTable('tm.org_registry')).toEqual({ schema: 'tm', table: 'org_registry' });
    expect(parseRegistryTable('tenant_registry')).toEqual({ schema: 'public', table: 'tenant_registry' });
    expect(registrySql(parseRegistryTable('tm.Org'))).toBe('"tm"."Org"');
  });

  it.each(['a.b.c', 'x; drop table t', '"quoted"', '', '1abc', 'public.'])('refuses %j with exit 2', (raw) => {
    expect(() => parseRegistryTable(raw)).toThrow(UsageError);
  });

  it('is read by loadConfig, with public.tenants and a 60 s acquire timeout by default', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-registry-'));
    try {
      const base = { DATABASE_URL: 'postgres://u@h/db' };
      const config = loadConfig({ env: base, cwd, requireMigrationDirs: false });
      expect(config.registryTable).toEqual({ schema: 'public', table: 'tenants' });
      expect(config.acquireTimeoutMs).toBe(60_000);
      const custom = loadConfig({ env: { ...base, TENANT_REGISTRY_TABLE: 'tm.registry', DB_ACQUIRE_TIMEOUT_MS: '250' }, cwd, requireMigrationDirs: false });
      expect(custom).toMatchObject({ registryTable: { schema: 'tm', table: 'registry' }, acquireTimeoutMs: 250 });
      expect(() => loadConfig({ env: { ...base, DB_ACQUIRE_TIMEOUT_MS: 'soon' }, cwd, requireMigrationDirs: false })).toThrow(/DB_ACQUIRE_TIMEOUT_MS/);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('--to <migration>', () => {
  const names = ['20260101000001_org_users.ts', '20260101000002_notes.ts'];

  it('names a file of the tree, with or without its extension', () => {
    expect(undoTarget(names, '20260101000001_org_users.ts', 'tenant')).toBe('20260101000001_org_users.ts');
    expect(undoTarget(names, '20260101000001_org_users', 'tenant')).toBe('20260101000001_org_users.ts');
  });

  it('refuses anything else, saying which tree it looked in', () => {
    expect(() => undoTarget(names, '20260101000003', 'master')).toThrow(/no file of that name in the master migrations directory/);
  });
});
