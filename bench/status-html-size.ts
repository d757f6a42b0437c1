/**
 * How big `status --html` gets at scale (issue 22: "under a few MB at 10,000 tenants"): N registry
 * rows with Clerk-like org ids (32 characters) and their schemas, the worst case for the page —
 * every tenant behind, 10 % also deleted in Clerk, 1 % with their schema gone — and a history
 * whose latest run failed in every tenant (a 200-character error each). Prints the page's size.
 *
 *   pnpm exec tsx bench/status-html-size.ts <admin postgres URL> [tenants=10000] [out.html]
 *
 * Creates a scratch database `tm_html_size_<random>` and drops it at the end.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import pg from 'pg';
import { finishRun, startRun } from '../src/history/run-ledger.ts';
import { tenantTimes } from '../src/history/tenant-times.ts';
import { getStatus } from '../src/status/get-status.ts';
import { writeStatusHtml } from '../src/status/html-report.ts';
import { ensureRegistry } from '../src/tenants/registry.ts';

const [adminUrl, rawCount = '10000', outArg] = process.argv.slice(2);
if (!adminUrl) {
  process.stderr.write('usage: tsx bench/status-html-size.ts <admin postgres URL> [tenants] [out.html]\n');
  process.exit(2);
}
const tenants = Number(rawCount);
const name = `tm_html_size_${crypto.randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`create database ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const knex = knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 2 } });
const trees = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-html-size-'));
const out = outArg ?? path.join(trees, 'fleet.html');
try {
  await ensureRegistry(knex);
  for (let from = 1; from <= tenants; from += 500) {
    await knex.raw(
      `do $$ declare s text; begin
         for i in ${from}..${Math.min(from + 499, tenants)} loop
           s := 'tid_' || lpad(to_hex(i), 10, '0');
           if i % 100 <> 0 then execute format('create schema %I', s); end if;
           insert into public.tenants (org_id, schema_name, migration_version, migration_count, deleted_at)
           values ('org_2' || substr(md5(i::text), 1, 27), s, 'm2.ts', 2, case when i % 10 = 0 then now() end);
         end loop;
       end $$`,
    );
  }
  fs.mkdirSync(path.join(trees, 'master'));
  fs.mkdirSync(path.join(trees, 'tenant'));
  for (const file of ['m1.ts', 'm2.ts', 'm3.ts']) fs.writeFileSync(path.join(trees, 'tenant', file), 'export async function up() {}\n');
  const orgs = (await knex('tenants').select('org_id', 'schema_name')) as { org_id: string; schema_name: string }[];
  const id = await startRun(knex, { command: 'migrate:tenants', args: ['migrate:tenants', '--continue-on-error'], actor: { osUser: 'ci', host: 'runner', pid: 1 } as never });
  const error = `migration m3.ts (up) failed: ${'x'.repeat(160)}`;
  await finishRun(knex, id, {
    outcome: 'failed',
    summary: { total: orgs.length, failed: orgs.length },
    failures: orgs.map((org) => ({ orgId: org.org_id, schema: org.schema_name, error })),
    tenantTimes: tenantTimes(orgs.map((_, i) => ({ status: 'failed', ms: (i * 37) % 4000 }))),
  });
  const status = await getStatus(knex, { masterDirectory: path.join(trees, 'master'), tenantDirectory: path.join(trees, 'tenant') });
  const started = performance.now();
  const bytes = await writeStatusHtml(knex, out, { status, masterDirectory: path.join(trees, 'master'), database: 'bench' });
  process.stdout.write(
    `${tenants} tenants (${status.tenants.behind} behind, ${status.tenants.deletedOrgIds.length} deleted, ${status.missingSchemas.length} missing schemas, a run failed in all): ` +
      `page ${(bytes / 1024 / 1024).toFixed(2)} MB (${bytes} bytes), written in ${((performance.now() - started) / 1000).toFixed(2)} s\n`,
  );
} finally {
  await knex.destroy();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
  if (!outArg) fs.rmSync(trees, { recursive: true, force: true });
}
