/**
 * `pnpm bench:citus`: provisioning and migrating tenants on the Citus cluster of
 * scripts/citus-cluster.sh against a single PostgreSQL server on the same machine, side by side in
 * one run, medians per tenant. Trees: test/fixtures/citus (a reference table, bigint ids, pgvector).
 *
 *   CITUS_DATABASE_URL=postgres://postgres@127.0.0.1:9700/postgres \
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres pnpm bench:citus [--tenants 100] [--reps 3]
 *
 * The single server gets a scratch database (dropped at the end); the cluster's `postgres`
 * database is emptied of tenants before every run (it is the test cluster's, not yours).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import knexFactory, { type Knex } from 'knex';
import { migrateMaster } from '../src/master/master.ts';
import { migrateTenants } from '../src/tenants/migrate-tenants.ts';
import { provisionTenant } from '../src/tenants/provision.ts';

const { values } = parseArgs({ options: { tenants: { type: 'string', default: '100' }, reps: { type: 'string', default: '3' } } });
const TENANTS = Number(values.tenants);
const REPS = Number(values.reps);
const citusUrl = process.env.CITUS_DATABASE_URL;
const singleAdminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!citusUrl || !singleAdminUrl) {
  console.error('bench:citus needs CITUS_DATABASE_URL (scripts/citus-cluster.sh up) and BENCH_DATABASE_URL (a single PostgreSQL 15 with pgvector).');
  process.exit(2);
}

const repo = path.resolve(import.meta.dirname, '..');
const masterDir = path.join(repo, 'test/fixtures/citus/master');
const orgIds = Array.from({ length: TENANTS }, (_, i) => `org_bench${String(i).padStart(5, '0')}`);

/** The tenant tree, then a release of two plain-DDL migrations to time migrate:tenants with. */
function trees(): { base: string; release: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-citus-bench-'));
  for (const file of fs.readdirSync(path.join(repo, 'test/fixtures/citus/tenant'))) fs.copyFileSync(path.join(repo, 'test/fixtures/citus/tenant', file), path.join(base, file));
  const release = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-citus-bench-'));
  fs.cpSync(base, release, { recursive: true });
  fs.writeFileSync(path.join(release, '20260201000000_notes.ts'), "export async function up(knex) { await knex.raw('create table notes (id bigserial primary key, account_id bigint references accounts (id), body text)'); }\nexport async function down(knex) { await knex.raw('drop table notes'); }\n");
  fs.writeFileSync(path.join(release, '20260201000001_account_note.ts'), "export async function up(knex) { await knex.raw('alter table accounts add column note text'); }\nexport async function down(knex) { await knex.raw('alter table accounts drop column note'); }\n");
  return { base, release };
}

async function reset(knex: Knex): Promise<void> {
  const { rows } = await knex.raw<{ rows: { nspname: string }[] }>("select nspname from pg_namespace where nspname like 'tid\\_%'");
  for (const { nspname } of rows) await knex.raw('drop schema ?? cascade', [nspname]);
  for (const table of ['tenants', 'tenant_migrate_releases', 'knex_migrations', 'knex_migrations_lock', 'plans']) await knex.raw('drop table if exists public.?? cascade', [table]);
  await migrateMaster(knex, { directory: masterDir });
}

async function measure(knex: Knex, tree: { base: string; release: string }): Promise<{ provision: number; migrate: number }> {
  await reset(knex);
  let started = performance.now();
  const provisioned = await provisionTenant(knex, orgIds, { directory: tree.base, concurrency: 4 });
  const provision = performance.now() - started;
  started = performance.now();
  const migrated = await migrateTenants(knex, { directory: tree.release, concurrency: 4 });
  const migrate = performance.now() - started;
  if (!provisioned.ok || !migrated.ok || migrated.summary.migrated !== TENANTS) throw new Error('a bench run failed');
  return { provision, migrate };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const admin = knexFactory({ client: 'pg', connection: singleAdminUrl, pool: { min: 0, max: 1 } });
const scratch = `tm_citus_bench_${process.pid}`;
await admin.raw('create database ??', [scratch]);
const singleUrl = new URL(singleAdminUrl);
singleUrl.pathname = `/${scratch}`;
const targets = {
  single: knexFactory({ client: 'pg', connection: singleUrl.toString(), pool: { min: 0, max: 5 } }),
  citus: knexFactory({ client: 'pg', connection: citusUrl, pool: { min: 0, max: 5 } }),
};
try {
  await targets.single.raw('create extension if not exists vector');
  const tree = trees();
  const runs: Record<keyof typeof targets, { provision: number; migrate: number }[]> = { single: [], citus: [] };
  for (let rep = 0; rep < REPS; rep++) {
    // Alternating, so a slower moment of the machine does not land on one side only.
    for (const name of ['single', 'citus'] as const) runs[name].push(await measure(targets[name], tree));
  }
  const perTenant = (name: keyof typeof targets, what: 'provision' | 'migrate') => median(runs[name].map((run) => run[what])) / TENANTS;
  console.log(`${TENANTS} tenants, concurrency 4, median of ${REPS} (ms per tenant)`);
  console.log('                  single server   Citus (1+2 nodes)   ratio');
  for (const what of ['provision', 'migrate'] as const) {
    const single = perTenant('single', what);
    const citus = perTenant('citus', what);
    console.log(`${what.padEnd(18)}${single.toFixed(1).padStart(13)}   ${citus.toFixed(1).padStart(17)}   ${(citus / single).toFixed(2)}x`);
  }
  await reset(targets.citus);
} finally {
  await targets.single.destroy();
  await targets.citus.destroy();
  await admin.raw('drop database if exists ?? with (force)', [scratch]);
  await admin.destroy();
}
