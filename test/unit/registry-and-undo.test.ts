/**
 * TENANT_REGISTRY_TABLE, DB_ACQUIRE_TIMEOUT_MS and `--to` names: checked before anything touches the
 * database. Which release a plain rollback undoes, and the refusal to undo one from beneath.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.ts';
import { UsageError } from '../../src/errors.ts';
import { planDown } from '../../src/migration/plan.ts';
import { undoTarget } from '../../src/migration/undo-target.ts';
import { newestReleaseHolding } from '../../src/tenants/releases.ts';
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

describe('which release a plain rollback undoes (issue 20, item 5)', () => {
  const baseline = { id: 1, kind: 'baseline' as const, migrations: ['m1', 'm2'] };
  const r1 = { id: 2, kind: 'release' as const, migrations: ['m3'] };
  const r2 = { id: 3, kind: 'release' as const, migrations: ['m4'] };

  it('is the newest release some tenant still holds, not the newest recorded', () => {
    expect(newestReleaseHolding([baseline, r1, r2], new Set(['m1', 'm2', 'm3', 'm4']))).toEqual(r2);
    // R2 undone everywhere (a --tenant rollback): R1 is next.
    expect(newestReleaseHolding([baseline, r1, r2], new Set(['m1', 'm2', 'm3']))).toEqual(r1);
    // Only the baseline held: nothing to undo.
    expect(newestReleaseHolding([baseline, r1, r2], new Set(['m1', 'm2']))).toBeUndefined();
  });

  it('gives a migration to the newest row that lists it: a release applied again, a baseline recorded after --all', () => {
    const again = { id: 4, kind: 'release' as const, migrations: ['m4', 'm5'] };
    expect(newestReleaseHolding([baseline, r1, r2, again], new Set(['m4']))).toEqual(again);
    const rebased = { id: 5, kind: 'baseline' as const, migrations: ['m1', 'm2', 'm3'] };
    expect(newestReleaseHolding([baseline, r1, rebased], new Set(['m1', 'm3']))).toBeUndefined();
    // The release keeps only what it owns.
    const older = { id: 2, kind: 'release' as const, migrations: ['m3', 'm4'] };
    const newer = { id: 3, kind: 'release' as const, migrations: ['m4'] };
    expect(newestReleaseHolding([baseline, older, newer], new Set(['m3']))).toEqual({ ...older, migrations: ['m3'] });
  });
});

describe('undoing a release beneath a newer migration', () => {
  const applied = [
    { name: 'm1', batch: 1 },
    { name: 'm4', batch: 2 },
    { name: 'm5', batch: 3 },
  ];

  it('is refused: the migration that stays would sit on what was undone', () => {
    expect(() => planDown(['m1', 'm4', 'm5'], applied, { kind: 'names', names: ['m4'], release: 2 })).toThrow(
      /m5 is applied here, newer than m4 of release #2 being undone.*nothing was undone in this tenant/,
    );
  });

  it('is planned from the top', () => {
    expect(planDown(['m1', 'm4', 'm5'], applied, { kind: 'names', names: ['m5'] }).steps).toEqual(['m5']);
    expect(planDown(['m1', 'm4', 'm5'], applied, { kind: 'names', names: ['m4', 'm5'] }).steps).toEqual(['m5', 'm4']);
    expect(planDown(['m1', 'm4', 'm5'], applied, { kind: 'names', names: ['m9'] }).steps).toEqual([]);
  });
});
