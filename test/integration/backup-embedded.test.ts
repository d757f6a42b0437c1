/**
 * Backups on the embedded server (PGlite): no pg_dump binary can reach it, so deprovision:tenant
 * uses its own dumper (pg_dump compiled to WebAssembly) and restore:tenant replays the plain SQL
 * through our connection. The same guarantees as on a server: verified before the drop, all or
 * nothing on restore, a damaged dump refused, and the session handed back as it was.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { Webhook } from 'svix';
import { deprovisionTenant } from '../../src/backup/deprovision.ts';
import { handleClerkWebhook } from '../../src/clerk/webhook.ts';
import { restoreTenant } from '../../src/backup/restore.ts';
import { usePglite } from '../support/pglite.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { copyTree, fixture } from '../support/trees.ts';

const pglite = usePglite();

let backupDir: string;

beforeEach(async () => {
  backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-pglite-backups-'));
  const schemas = (await pglite.knex().raw("select nspname from pg_namespace where nspname like 'tid\\_%'")).rows as { nspname: string }[];
  for (const { nspname } of schemas) await pglite.knex().raw('drop schema ?? cascade', [nspname]);
  await pglite.knex().raw('drop table if exists public.tenants');
});

const tree = fixture('tenant-basic');
const rowsOf = (orgId: string) => withTenant(pglite.knex(), orgId, (trx) => trx('org_users').orderBy('id').select('id', 'email'));
const registered = async (orgId: string) => (await pglite.knex()('tenants').where({ org_id: orgId }).first()) !== undefined;
const schemaExists = async (orgId: string) =>
  (await pglite.knex().raw('select 1 from pg_namespace where nspname = ?', [tenantSchemaName(orgId)])).rows.length === 1;

describe('deprovision and restore on the embedded server', () => {
  it('round trip: a verified plain-SQL backup, the drop, a restore — rows (with ? and quotes) and the registry come back', async () => {
    const orgs = ['org_2pglite', `org_"quote'ü→☃`];
    await provisionTenant(pglite.knex(), orgs, { directory: tree });
    for (const orgId of orgs) {
      await withTenant(pglite.knex(), orgId, (trx) => trx('org_users').insert([{ email: `what?@${orgId}` }, { email: "o'brien@x.test" }]));
    }
    const before = await Promise.all(orgs.map(rowsOf));
    const pathBefore = (await pglite.knex().raw('show search_path')).rows[0].search_path;

    const result = await deprovisionTenant(pglite.knex(), orgs, { backupDir, dumpSchema: pglite.server().dumpSchema });
    expect(result.tenants.map((tenant) => [tenant.status, tenant.error])).toEqual([
      ['deprovisioned', undefined],
      ['deprovisioned', undefined],
    ]);
    for (const orgId of orgs) {
      expect(await schemaExists(orgId)).toBe(false);
      expect(await registered(orgId)).toBe(false);
    }
    // The dumper ran in the one session the pool uses: it is handed back writable, with its path.
    expect((await pglite.knex().raw('show search_path')).rows[0].search_path).toBe(pathBefore);
    expect((await pglite.knex().raw('show transaction_read_only')).rows[0].transaction_read_only).toBe('off');

    const manifests = result.tenants.map((tenant) => tenant.manifest!);
    for (const [index, file] of manifests.entries()) {
      const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
      expect(manifest).toMatchObject({ orgId: result.tenants[index]!.orgId, format: 'plain', newestMigration: '20260201000003_nickname.ts', migrationCount: 3 });
      expect(manifest.dumpFile).toMatch(/\.sql$/);
      expect(manifest.pgDumpVersion).toMatch(/\(PGlite\)$/);
    }

    const ahead = copyTree('tenant-basic');
    fs.writeFileSync(path.join(ahead, '20260301000004_later.ts'), 'export async function up(pglite.knex()) { await pglite.knex().schema.createTable("later", (t) => t.increments()); }\nexport async function down(pglite.knex()) { await pglite.knex().schema.dropTable("later"); }\n');
    for (const file of manifests) {
      const restored = await restoreTenant(pglite.knex(), file, { directory: ahead });
      expect(restored).toMatchObject({ ok: true, newestMigration: '20260201000003_nickname.ts', migrationCount: 3, pending: ['20260301000004_later.ts'] });
    }
    expect(await Promise.all(orgs.map(rowsOf))).toEqual(before);
    for (const orgId of orgs) {
      expect(await pglite.knex()('tenants').where({ org_id: orgId }).first()).toMatchObject({ schema_name: tenantSchemaName(orgId), migration_version: '20260201000003_nickname.ts', migration_count: 3 });
    }
    expect((await pglite.knex().raw('show search_path')).rows[0].search_path).toBe(pathBefore);
    // Restored sequences go on where they were.
    await withTenant(pglite.knex(), orgs[0]!, (trx) => trx('org_users').insert({ email: 'next@x.test' }));
    expect((await rowsOf(orgs[0]!)).at(-1)).toMatchObject({ id: 3, email: 'next@x.test' });
  });

  it('a dump that fails leaves the tenant untouched and no file behind', async () => {
    await provisionTenant(pglite.knex(), ['org_dumpfails'], { directory: tree });
    const failing = async () => {
      throw new Error('pg_dump: out of memory');
    };
    const result = await deprovisionTenant(pglite.knex(), ['org_dumpfails'], { backupDir, dumpSchema: failing });
    expect(result.ok).toBe(false);
    expect(result.tenants[0]).toMatchObject({ status: 'failed' });
    expect(result.tenants[0]!.error).toContain('pg_dump: out of memory');
    expect(await schemaExists('org_dumpfails')).toBe(true);
    expect(await registered('org_dumpfails')).toBe(true);
    expect(fs.readdirSync(backupDir)).toEqual([]);
  });

  it('a truncated dump does not verify: nothing is dropped', async () => {
    await provisionTenant(pglite.knex(), ['org_truncated'], { directory: tree });
    const truncated = async (schema: string) => {
      const whole = await pglite.server().dumpSchema(schema);
      return whole.slice(0, whole.indexOf('-- PostgreSQL database dump complete'));
    };
    const result = await deprovisionTenant(pglite.knex(), ['org_truncated'], { backupDir, dumpSchema: truncated });
    expect(result.tenants[0]!.error).toMatch(/is incomplete .* nothing was dropped/);
    expect(await schemaExists('org_truncated')).toBe(true);
    expect(await registered('org_truncated')).toBe(true);
  });

  it('a damaged dump is refused before anything is written, and a restore that fails keeps nothing', async () => {
    await provisionTenant(pglite.knex(), ['org_damaged', 'org_badsql'], { directory: tree });
    const result = await deprovisionTenant(pglite.knex(), ['org_damaged', 'org_badsql'], { backupDir, dumpSchema: pglite.server().dumpSchema });
    expect(result.ok).toBe(true);
    const [damaged, badSql] = result.tenants.map((tenant) => tenant.manifest!);

    const damagedDump = path.join(backupDir, JSON.parse(fs.readFileSync(damaged!, 'utf8')).dumpFile);
    fs.appendFileSync(damagedDump, '-- one more line\n');
    await expect(restoreTenant(pglite.knex(), damaged!, { directory: tree })).rejects.toThrow(/does not match its manifest \(sha256 [0-9a-f]{64}, manifest [0-9a-f]{64}\)/);
    expect(await schemaExists('org_damaged')).toBe(false);

    // A dump whose SQL fails halfway (with a matching sha256: the manifest rewritten): all or nothing.
    const manifest = JSON.parse(fs.readFileSync(badSql!, 'utf8'));
    const dumpPath = path.join(backupDir, manifest.dumpFile);
    const sql = fs.readFileSync(dumpPath, 'utf8').replace('-- PostgreSQL database dump complete', 'select 1/0;\n-- PostgreSQL database dump complete');
    fs.writeFileSync(dumpPath, sql);
    const { createHash } = await import('node:crypto');
    fs.writeFileSync(badSql!, JSON.stringify({ ...manifest, sha256: createHash('sha256').update(sql).digest('hex'), dumpSize: Buffer.byteLength(sql) }));
    await expect(restoreTenant(pglite.knex(), badSql!, { directory: tree })).rejects.toThrow(/restore failed, nothing kept: division by zero/);
    expect(await schemaExists('org_badsql')).toBe(false);
    expect(await registered('org_badsql')).toBe(false);
    expect((await pglite.knex().raw('show search_path')).rows[0].search_path).not.toBe('');
  });

  it("Clerk's organization.deleted with onDeleted: 'deprovision' backs the org up with PGlite's dumper, then drops it", async () => {
    const secret = `whsec_${Buffer.from('tenant-migrate-test-secret-0123').toString('base64')}`;
    await provisionTenant(pglite.knex(), ['org_clerkgone'], { directory: tree });
    const body = JSON.stringify({ type: 'organization.deleted', object: 'event', data: { id: 'org_clerkgone', deleted: true } });
    const id = 'msg_embedded1';
    const now = new Date();
    const request = new Request('http://localhost/webhooks/clerk', {
      method: 'POST',
      body,
      headers: { 'svix-id': id, 'svix-timestamp': String(Math.floor(now.getTime() / 1000)), 'svix-signature': new Webhook(secret).sign(id, now, body) },
    });
    // No dumpSchema passed: the handler finds this process's embedded server behind the Knex connection.
    const response = await handleClerkWebhook(request, { knex: pglite.knex(), signingSecret: secret, onDeleted: 'deprovision', backupDir, onError: () => {} });
    const answer = (await response.json()) as { manifest: string };
    expect(response.status, JSON.stringify(answer)).toBe(200);
    expect(answer).toMatchObject({ ok: true, deprovisioned: true, schema: tenantSchemaName('org_clerkgone') });
    expect(JSON.parse(fs.readFileSync(answer.manifest, 'utf8'))).toMatchObject({ orgId: 'org_clerkgone', format: 'plain' });
    expect(await schemaExists('org_clerkgone')).toBe(false);
    expect(await registered('org_clerkgone')).toBe(false);
  });
});
