/**
 * A quick standalone check of `status --verify` at scale (issue 14: ≤ 5 s at 10,000 tenants),
 * lighter than `pnpm bench --scale`: N schemas holding only their Knex bookkeeping (two applied
 * migrations) and N registry rows, laid down by one server-side loop, then `getStatus` timed
 * in-process with and without `verify`; then a `migrate:tenants --dry-run` with one migration
 * pending in every tenant (it reads every tenant's bookkeeping too, to plan each one).
 *
 *   pnpm exec tsx bench/verify-at-scale.ts <admin postgres URL> [tenants=10000]
 *
 * Creates a scratch database `tm_verify_scale_<random>` and drops it at the end.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import pg from 'pg';
import { dryRun } from '../src/dry-run/dry-run.ts';
import { getStatus } from '../src/status/get-status.ts';
import { ensureRegistry } from '../src/tenants/registry.ts';

const [adminUrl, rawCount = '10000'] = process.argv.slice(2);
if (!adminUrl) {
  process.stderr.write('usage: tsx bench/verify-at-scale.ts <admin postgres URL> [tenants]\n');
  process.exit(2);
}
const tenants = Number(rawCount);
const name = `tm_verify_scale_${crypto.randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`create database ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const knex = knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 5 } });
const trees = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-verify-scale-'));
try {
  await ensureRegistry(knex);
  const started = performance.now();
  // In batches of 500 tenants per statement, so no transaction holds too many locks.
  for (let from = 1; from <= tenants; from += 500) {
    await knex.raw(
      `do $$ declare s text; begin
         for i in ${from}..${Math.min(from + 499, tenants)} loop
           s := 'tid_' || lpad(to_hex(i), 10, '0');
           execute format('create schema %I', s);
           execute format('create table %I.knex_migrations (id serial primary key, name varchar(255), batch integer, migration_time timestamptz)', s);
           execute format('insert into %I.knex_migrations (name, batch) values (%L, 1), (%L, 1)', s, 'm1.ts', 'm2.ts');
           insert into public.tenants (org_id, schema_name, migration_version, migration_count) values ('org_' || i, s, 'm2.ts', 2);
         end loop;
       end $$`,
    );
  }
  await knex.raw('vacuum analyze public.tenants');
  process.stderr.write(`set-up: ${tenants} tenants in ${((performance.now() - started) / 1000).toFixed(1)} s (not timed below)\n`);
  fs.mkdirSync(path.join(trees, 'master'));
  fs.mkdirSync(path.join(trees, 'tenant'));
  for (const file of ['m1.ts', 'm2.ts']) fs.writeFileSync(path.join(trees, 'tenant', file), 'export async function up() {}\n');
  for (const verify of [false, true, false, true, false, true]) {
    const t = performance.now();
    const status = await getStatus(knex, { masterDirectory: path.join(trees, 'master'), tenantDirectory: path.join(trees, 'tenant'), verify });
    const drifted = status.tenants.driftedOrgIds?.length ?? 0;
    if (status.tenants.upToDate !== tenants || drifted !== 0) throw new Error(`expected ${tenants} up to date, got ${JSON.stringify(status.tenants.upToDate)}`);
    process.stdout.write(`${verify ? 'status --verify' : 'status         '}  ${tenants} tenants  ${((performance.now() - t) / 1000).toFixed(2)} s\n`);
  }
  fs.writeFileSync(path.join(trees, 'tenant', 'm3.ts'), "export async function up(knex) { await knex.raw('create table t (id int)'); }\nexport async function down() {}\n");
  for (let run = 0; run < 3; run += 1) {
    const t = performance.now();
    const preview = await dryRun(knex, 'migrate:tenants', { directory: path.join(trees, 'tenant') });
    if (preview.plan.length !== 1 || preview.plan[0]!.tenantCount !== tenants) throw new Error(`expected one group of ${tenants}, got ${JSON.stringify(preview.plan.map((g) => g.tenantCount))}`);
    process.stdout.write(`migrate:tenants --dry-run  ${tenants} tenants  ${((performance.now() - t) / 1000).toFixed(2)} s\n`);
  }
} finally {
  await knex.destroy();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
  fs.rmSync(trees, { recursive: true, force: true });
}
