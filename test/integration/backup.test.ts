/**
 * deprovision:tenant with a verified backup, and restore:tenant — with the real pg_dump, pg_restore
 * and psql of this machine. Where they are older than the server (the embedded PostgreSQL 17 leg
 * with Debian's 15 client), the commands must refuse clearly and change nothing.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deprovisionTenant } from '../../src/backup/deprovision.ts';
import { libpqEnvironment } from '../../src/backup/pg-tools.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants, tenantSchemas } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_backup' });
afterEach(() => expectNoLeftovers(db.knex()));

let backupDir: string;
beforeEach(async () => {
  await dropAllTenants(db.knex());
  backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-backups-'));
});

/** Major version of the pg_dump on PATH, or 0 when there is none. */
function clientMajor(): number {
  try {
    return Number(/\(PostgreSQL\)\s+(\d+)/.exec(execFileSync('pg_dump', ['--version'], { encoding: 'utf8' }))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
async function serverMajor(): Promise<number> {
  return Math.floor(Number((await db.knex().raw("select current_setting('server_version_num') as n")).rows[0].n) / 10000);
}

// These tests are pg_dump's (TENANT_BACKUP_DUMPER=pg_dump); the catalog dumper's are in backup-catalog-dump.test.ts.
const env = (tree = fixture('tenant-basic')) => ({ ...treeEnv(db.url, { tenant: tree }), TENANT_BACKUP_DUMPER: 'pg_dump' });
const rowsOf = (orgId: string) => withTenant(db.knex(), orgId, (trx) => trx('org_users').orderBy('id').select('id', 'email'));
const registered = async (orgId: string) => (await db.knex()('tenants').where({ org_id: orgId }).first()) !== undefined;

describe('deprovision:tenant and restore:tenant', () => {
  it('round trip: deprovision with a verified backup, restore, the rows come back (org ids with quotes and unicode too)', async ({ skip }) => {
    const orgs = ['org_2roundtrip', `org_"quote'ü→☃`];
    await provisionTenant(db.knex(), orgs, { directory: fixture('tenant-basic') });
    for (const orgId of orgs) await withTenant(db.knex(), orgId, (trx) => trx('org_users').insert([{ email: `a@${orgId}` }, { email: 'b@x.test' }]));
    const before = await Promise.all(orgs.map(rowsOf));

    if (clientMajor() < (await serverMajor())) {
      // This leg's pg_dump cannot dump this server: a clear refusal, and nothing changed.
      const refused = await runCli(['deprovision:tenant', ...orgs, '--backup-dir', backupDir], { env: env() });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/pg_dump .* is older than the server \(PostgreSQL \d+\): install the PostgreSQL \d+ client tools/);
      expect(await Promise.all(orgs.map(rowsOf))).toEqual(before);
      expect(fs.readdirSync(backupDir)).toEqual([]);
      skip('the pg_dump here is older than the server: the refusal is what this leg can show');
    }

    const result = await runCli(['deprovision:tenant', ...orgs, '--backup-dir', backupDir, '--json'], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.tenants.map((t: { status: string }) => t.status)).toEqual(['deprovisioned', 'deprovisioned']);
    // In org id order, as every fleet command reports: the quoted one sorts first.
    report.tenants.sort((a: { orgId: string }, b: { orgId: string }) => orgs.indexOf(a.orgId) - orgs.indexOf(b.orgId));
    for (const orgId of orgs) {
      expect(await tenantSchemas(db.knex())).not.toContain(tenantSchemaName(orgId));
      expect(await registered(orgId)).toBe(false);
    }
    const manifests = report.tenants.map((t: { manifest: string }) => t.manifest as string);
    const manifest = JSON.parse(fs.readFileSync(manifests[1], 'utf8'));
    expect(manifest).toMatchObject({ orgId: orgs[1], schema: tenantSchemaName(orgs[1]!), newestMigration: '20260201000003_nickname.ts', migrationCount: 3, format: 'custom' });
    expect(path.basename(manifests[1])).toMatch(/^org_~22quote~27~c3~bc~e2~86~92~e2~98~83__tid_[0-9a-f]{10}__\d{8}T\d{6}Z\.json$/);
    expect(fs.statSync(path.join(backupDir, manifest.dumpFile)).size).toBe(manifest.dumpSize);

    // Restore both; a tree one release ahead shows the restored tenant behind.
    const ahead = copyTree('tenant-basic');
    fs.writeFileSync(path.join(ahead, '20260301000000_tags.js'), "export async function up(knex) { await knex.raw('create table tags (id serial)'); }\nexport async function down(knex) { await knex.raw('drop table tags'); }\n");
    for (const [i, file] of manifests.entries()) {
      const restored = await runCli(['restore:tenant', file, '--json'], { env: env(ahead) });
      expect(restored.code, restored.stderr).toBe(0);
      expect(JSON.parse(restored.stdout)).toMatchObject({ ok: true, orgId: orgs[i], newestMigration: '20260201000003_nickname.ts', migrationCount: 3, pending: ['20260301000000_tags.js'] });
    }
    expect(await Promise.all(orgs.map(rowsOf))).toEqual(before);
    const status = JSON.parse((await runCli(['status', '--json', '--verify'], { env: env(ahead) })).stdout);
    expect(status.tenants).toMatchObject({ total: 2, behind: 2, driftedOrgIds: [] });
    // A second restore of the same backup is refused: the org exists again.
    const again = await runCli(['restore:tenant', manifests[0]], { env: env() });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is registered/);
  });

  it('a dump that fails leaves the tenant untouched and no backup files behind', async ({ skip }) => {
    if (clientMajor() < (await serverMajor())) skip('pg_dump here is older than the server (see the round trip test)');
    await provisionTenant(db.knex(), ['org_locked'], { directory: fixture('tenant-basic') });
    await withTenant(db.knex(), 'org_locked', (trx) => trx('org_users').insert({ email: 'kept@x.test' }));
    // Another session holds the tenant's table: the lock that holds writes off from the dump to the drop
    // (taken before pg_dump starts) is not granted in time.
    const holder = db.createKnex({ pool: { min: 0, max: 1 } });
    const trx = await holder.transaction();
    await trx.raw(`lock table ${tenantSchemaName('org_locked')}.org_users in access exclusive mode`);
    try {
      const result = await deprovisionTenant(db.knex(), ['org_locked'], { backupDir, connection: db.connection, lockWaitTimeoutMs: 300, dumper: 'pg_dump' });
      expect(result.ok).toBe(false);
      expect(result.tenants[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/could not hold off writes to the schema's tables within 300 ms \(LOCK TABLE … IN EXCLUSIVE MODE/) });
    } finally {
      await trx.rollback();
      await holder.destroy();
    }
    expect(await rowsOf('org_locked')).toEqual([expect.objectContaining({ email: 'kept@x.test' })]);
    expect(await registered('org_locked')).toBe(true);
    expect(fs.readdirSync(backupDir)).toEqual([]);
  });

  it('a damaged dump is refused (sha256) and nothing is restored', async ({ skip }) => {
    if (clientMajor() < (await serverMajor())) skip('pg_dump here is older than the server (see the round trip test)');
    await provisionTenant(db.knex(), ['org_damaged'], { directory: fixture('tenant-basic') });
    const done = JSON.parse((await runCli(['deprovision:tenant', 'org_damaged', '--backup-dir', backupDir, '--json'], { env: env() })).stdout);
    const manifest = done.tenants[0].manifest as string;
    const dump = path.join(backupDir, JSON.parse(fs.readFileSync(manifest, 'utf8')).dumpFile);
    const bytes = fs.readFileSync(dump);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    fs.writeFileSync(dump, bytes);
    const result = await runCli(['restore:tenant', manifest], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/does not match its manifest \(sha256/);
    expect(await tenantSchemas(db.knex())).toEqual([]);
    expect(await registered('org_damaged')).toBe(false);
  });

  it('refuses without --backup-dir (exit 2, nothing dropped); --no-backup drops for good', async () => {
    await provisionTenant(db.knex(), ['org_nobackup'], { directory: fixture('tenant-basic') });
    const refused = await runCli(['deprovision:tenant', 'org_nobackup'], { env: env() });
    expect(refused.code).toBe(2);
    expect(await registered('org_nobackup')).toBe(true);
    expect((await runCli(['deprovision:tenant', 'org_unknown', '--no-backup'], { env: env() })).code).toBe(2);
    const dropped = await runCli(['deprovision:tenant', 'org_nobackup', '--no-backup', '--json'], { env: env() });
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(JSON.parse(dropped.stdout)).toMatchObject({ ok: true, backup: false, tenants: [{ orgId: 'org_nobackup', status: 'deprovisioned' }] });
    expect(await tenantSchemas(db.knex())).toEqual([]);
    expect(await registered('org_nobackup')).toBe(false);
  });

  it('passes the password through the environment, never as an argument', () => {
    const { env: childEnv, cleanup } = libpqEnvironment({ host: 'db.internal', port: 5432, user: 'app', database: 'app', password: 'hunter2', ssl: false }, { PATH: '/bin', PGPASSWORD: 'stale', DATABASE_URL: 'postgres://x:y@z/w' });
    cleanup();
    expect(childEnv).toMatchObject({ PGHOST: 'db.internal', PGPORT: '5432', PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: 'hunter2', PGSSLMODE: 'disable' });
    expect(childEnv.DATABASE_URL).toBeUndefined();
  });
});
