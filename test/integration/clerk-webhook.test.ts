/**
 * The Clerk webhook handler, end to end: the example server (examples/clerk-webhook/server.ts) runs
 * as its own process on 127.0.0.1 and receives deliveries signed with the real svix library.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Webhook } from 'svix';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clerkWebhookMiddleware } from '../../src/clerk/node-middleware.ts';
import { handleClerkWebhook } from '../../src/clerk/webhook.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { repoRoot, runCli, startCli, type CliProcess } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants, tenantSchemas } from '../support/fleet.ts';
import { copyTree, fixture, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_clerk_webhook' });
const SECRET = `whsec_${crypto.randomBytes(24).toString('base64')}`;
const OTHER_SECRET = `whsec_${crypto.randomBytes(24).toString('base64')}`;
let server: CliProcess;
let endpoint: string;

/** A delivery as Svix sends it: headers signed over `${id}.${timestamp}.${body}`. */
function signed(event: unknown, options: { secret?: string; id?: string; at?: Date } = {}) {
  const body = JSON.stringify(event);
  const id = options.id ?? `msg_${crypto.randomBytes(8).toString('hex')}`;
  const at = options.at ?? new Date();
  const signature = new Webhook(options.secret ?? SECRET).sign(id, at, body);
  return { body, headers: { 'svix-id': id, 'svix-timestamp': String(Math.floor(at.getTime() / 1000)), 'svix-signature': signature } };
}

const created = (orgId: string) => ({ type: 'organization.created', object: 'event', data: { id: orgId, object: 'organization', name: orgId } });

async function deliver(delivery: { body: string; headers: Record<string, string> }) {
  const response = await fetch(endpoint, { method: 'POST', body: delivery.body, headers: { 'content-type': 'application/json', ...delivery.headers } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Registry rows (none when the registry was never created: the handler wrote nothing). */
async function registered(): Promise<string[]> {
  const { rows } = await db.knex().raw<{ rows: { exists: boolean }[] }>("select to_regclass('public.tenants') is not null as exists");
  return rows[0]!.exists ? db.knex()('tenants').orderBy('org_id').pluck('org_id') : [];
}

beforeAll(async () => {
  // The example app, started the way its README says (startCli's helper runs a file under tsx).
  server = startCli([], {
    env: { ...treeEnv(db.url, { tenant: fixture('tenant-basic') }), CLERK_WEBHOOK_SIGNING_SECRET: SECRET, PORT: '0' },
    script: path.join(repoRoot, 'examples/clerk-webhook/server.ts'),
    timeoutMs: 300_000,
  });
  // A tsx start-up plus a database connection: slow on a loaded machine, hence the longer wait.
  await server.waitForOutput(/listening on (http:\S+)/, 100_000);
  endpoint = /listening on (http:\S+)/.exec(server.stdout())![1]!;
}, 120_000);
afterAll(async () => {
  server.kill('SIGTERM');
  // It stops after its open requests; a client's idle keep-alive socket must not hold the suite up.
  const fallback = setTimeout(() => server.kill('SIGKILL'), 5_000);
  await server.done;
  clearTimeout(fallback);
});
beforeEach(() => dropAllTenants(db.knex()));

describe('Clerk webhook (example server)', () => {
  it('organization.created provisions the org and answers 200 after the commit', async () => {
    const answer = await deliver(signed(created('org_2webhook')));
    expect(answer).toEqual({
      status: 200,
      body: { ok: true, type: 'organization.created', orgId: 'org_2webhook', schema: tenantSchemaName('org_2webhook'), status: 'provisioned' },
    });
    // Answered, so committed: visible from another connection at once.
    expect(await registered()).toEqual(['org_2webhook']);
    const tables = await db.knex()('information_schema.tables').where({ table_schema: tenantSchemaName('org_2webhook') }).pluck('table_name');
    expect(tables.sort()).toEqual(['knex_migrations', 'knex_migrations_lock', 'notes', 'org_users']);
  });

  it('a redelivery (same svix-id) answers 200 and leaves one tenant', async () => {
    const delivery = signed(created('org_redelivered'));
    expect((await deliver(delivery)).status).toBe(200);
    const again = await deliver(delivery);
    expect(again).toMatchObject({ status: 200, body: { ok: true, status: 'up-to-date' } });
    expect(await registered()).toEqual(['org_redelivered']);
    expect(await tenantSchemas(db.knex())).toEqual([tenantSchemaName('org_redelivered')]);
  });

  it('concurrent duplicate deliveries of one org: all 200, exactly one tenant, provisioned once', async () => {
    const sameId = signed(created('org_concurrent'));
    const deliveries = [sameId, sameId, sameId, ...Array.from({ length: 5 }, () => signed(created('org_concurrent')))];
    const answers = await Promise.all(deliveries.map(deliver));
    for (const answer of answers) expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answers.filter((answer) => answer.body.status === 'provisioned')).toHaveLength(1);
    expect(await registered()).toEqual(['org_concurrent']);
    expect(await tenantSchemas(db.knex())).toEqual([tenantSchemaName('org_concurrent')]);
  });

  it('refuses with 400 and writes nothing: tampered body, wrong secret, stale timestamp, no signature', async () => {
    const genuine = signed(created('org_genuine'));
    const tampered = { ...genuine, body: genuine.body.replace('org_genuine', 'org_attacker') };
    const wrongSecret = signed(created('org_wrong_secret'), { secret: OTHER_SECRET });
    const stale = signed(created('org_stale'), { at: new Date(Date.now() - 6 * 60 * 1000) });
    const unsigned = { body: genuine.body, headers: {} };
    for (const [what, delivery] of Object.entries({ tampered, wrongSecret, stale, unsigned })) {
      const answer = await deliver(delivery);
      expect(answer.status, what).toBe(400);
      expect(String(answer.body.error), what).toMatch(/signature verification failed/);
    }
    expect(await registered()).toEqual([]);
    expect(await tenantSchemas(db.knex())).toEqual([]);
  });

  it('organization.deleted marks the tenant (drops nothing) and status lists it', async () => {
    expect((await deliver(signed(created('org_leaving')))).status).toBe(200);
    expect((await deliver(signed(created('org_staying')))).status).toBe(200);
    const deleted = { type: 'organization.deleted', object: 'event', data: { id: 'org_leaving', object: 'organization', deleted: true } };
    expect(await deliver(signed(deleted))).toEqual({ status: 200, body: { ok: true, type: 'organization.deleted', orgId: 'org_leaving', marked: true } });
    const rows = await db.knex()('tenants').orderBy('org_id').select('org_id', db.knex().raw('deleted_at is not null as deleted'));
    expect(rows).toEqual([{ org_id: 'org_leaving', deleted: true }, { org_id: 'org_staying', deleted: false }]);
    expect(await tenantSchemas(db.knex())).toHaveLength(2);

    const statusEnv = treeEnv(db.url, { tenant: fixture('tenant-basic') });
    const json = await runCli(['status', '--json'], { env: statusEnv });
    expect(JSON.parse(json.stdout).tenants.deletedOrgIds).toEqual(['org_leaving']);
    const text = await runCli(['status'], { env: statusEnv });
    expect(text.stdout).toContain('Deleted in Clerk, awaiting deprovisioning: org_leaving');

    // An org that never had a tenant: nothing to mark, still 200 so Svix stops retrying.
    const unknown = { type: 'organization.deleted', data: { id: 'org_never_seen' } };
    expect(await deliver(signed(unknown))).toMatchObject({ status: 200, body: { marked: false } });
  });

  it('organization.deleted before any tenant exists (no registry yet) answers 200, marked: false', async () => {
    const deleted = { type: 'organization.deleted', data: { id: 'org_first_event', deleted: true } };
    expect(await deliver(signed(deleted))).toMatchObject({ status: 200, body: { ok: true, marked: false } });
    expect(await tenantSchemas(db.knex())).toEqual([]);
  });

  it('unknown event types answer 200 and are ignored', async () => {
    const answer = await deliver(signed({ type: 'user.created', data: { id: 'user_2abc' } }));
    expect(answer).toEqual({ status: 200, body: { ok: true, ignored: true, type: 'user.created' } });
    expect(await registered()).toEqual([]);
  });
});

describe('handleClerkWebhook (Fetch API)', () => {
  const request = (delivery: { body: string; headers: Record<string, string> }) =>
    new Request('http://127.0.0.1/webhooks/clerk', { method: 'POST', body: delivery.body, headers: delivery.headers });

  it('provisions from a Fetch Request and answers a Fetch Response', async () => {
    const response = await handleClerkWebhook(request(signed(created('org_fetch'))), {
      knex: db.knex(),
      signingSecret: SECRET,
      tenantDirectory: fixture('tenant-basic'),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ ok: true, orgId: 'org_fetch', status: 'provisioned' });
    expect(await registered()).toEqual(['org_fetch']);
  });

  it('a failing provision answers 500 (so Svix retries) and commits nothing', async () => {
    const tree = copyTree('tenant-basic', 1);
    writeMigration(tree, '20260101000002_broken.ts', "  await knex.raw('select * from no_such_table');");
    const errors: string[] = [];
    const response = await handleClerkWebhook(request(signed(created('org_broken'))), {
      knex: db.knex(),
      signingSecret: SECRET,
      tenantDirectory: tree,
      onError: (message) => errors.push(message),
    });
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: string }).error).toContain('no_such_table');
    expect(errors.join('\n')).toContain('org_broken');
    expect(await registered()).toEqual([]);
    expect(await tenantSchemas(db.knex())).toEqual([]);
  });

  it("onDeleted: 'deprovision' without backupDir is refused clearly: 500 from the handler, an error from the middleware", async () => {
    const options = { knex: db.knex(), signingSecret: SECRET, onDeleted: 'deprovision' as const, onError: () => {} };
    const response = await handleClerkWebhook(request(signed(created('org_x'))), options);
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: string }).error).toMatch(/'deprovision' needs backupDir/);
    expect(() => clerkWebhookMiddleware(options)).toThrow(/'deprovision' needs backupDir/);
    expect(() => clerkWebhookMiddleware({ knex: db.knex(), signingSecret: '' })).toThrow(/CLERK_WEBHOOK_SIGNING_SECRET/);
    expect(await registered()).toEqual([]);
  });

  it("onDeleted: 'deprovision' drops a deleted org after a verified backup (the catalog dumper: no pg_dump needed), and a redelivery is a no-op", async () => {
    const backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-clerk-backups-'));
    const errors: string[] = [];
    const options = { knex: db.knex(), signingSecret: SECRET, onDeleted: 'deprovision' as const, backupDir, tenantDirectory: fixture('tenant-basic'), onError: (message: string) => errors.push(message) };
    expect((await handleClerkWebhook(request(signed(created('org_gone'))), options)).status).toBe(200);
    const deleted = signed({ type: 'organization.deleted', object: 'event', data: { id: 'org_gone', deleted: true } });
    const response = await handleClerkWebhook(request(deleted), options);
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ ok: true, orgId: 'org_gone', deprovisioned: true, schema: tenantSchemaName('org_gone') });
    expect(fs.existsSync(body.manifest as string)).toBe(true);
    expect(JSON.parse(fs.readFileSync(body.manifest as string, 'utf8'))).toMatchObject({ orgId: 'org_gone', format: 'sql' });
    expect(await registered()).toEqual([]);
    expect(await tenantSchemas(db.knex())).toEqual([]);
    // Svix redelivers: the org is gone already, answered 200 with nothing done.
    const again = await handleClerkWebhook(request(deleted), options);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ ok: true, deprovisioned: false });
    expect(errors).toEqual([]);
  });
});
