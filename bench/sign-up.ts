/**
 * `pnpm exec tsx bench/sign-up.ts` (BENCH_DATABASE_URL: an admin URL of a LOCAL server): two
 * measurements for issue 23.
 *
 * 1. Backend memory per schema (how DB_SCHEMAS_PER_CONNECTION's default was chosen): one pooled
 *    connection, never recycled, provisions org after org with the bench's four-migration tree and
 *    with a generated 150-migration tree (bench/long-tree.ts); its backend's RssAnon
 *    (/proc/<pid>/status) is read as it goes.
 * 2. Sign-up latency with the long tree: `provisionTenant` in one long-lived process (the first
 *    call, then later ones), `provision:tenant` as a fresh CLI process, and the floor: a plain
 *    `pg_dump -n` of a freshly provisioned tenant restored under a new schema name with psql.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import knexFactory from 'knex';
import pg from 'pg';
import { knexConfig } from '../src/db/connection.ts';
import { tenantSchemaName } from '../src/tenants/naming.ts';
import { provisionTenant } from '../src/tenants/provision.ts';
import { runCli } from './cli-process.ts';
import { FIXTURE_DIR } from './fixture.ts';
import { writeLongTree } from './long-tree.ts';

const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
// Two databases: a database holds tenants of one tree (the checksums refuse another).
const name = `tm_bench_signup_${process.pid}`;
const url = Object.assign(new URL(admin), { pathname: `/${name}` }).toString();
const smallName = `${name}_small`;
const smallUrl = Object.assign(new URL(admin), { pathname: `/${smallName}` }).toString();
/** The URL in the shape loadConfig gives knexConfig. */
function connectionSettingsOf(text: string) {
  const parsed = new URL(text);
  return { host: parsed.hostname, port: Number(parsed.port || 5432), database: parsed.pathname.slice(1), user: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) || undefined };
}
const log = (line: string) => process.stderr.write(`${line}\n`);

const adminClient = new pg.Client({ connectionString: admin });
await adminClient.connect();
await adminClient.query(`create database "${name}"`);
await adminClient.query(`create database "${smallName}"`);
const longTree = writeLongTree(150);
try {
  await memoryPerSchema(smallUrl, 'four-migration tree', FIXTURE_DIR, 200, 'org_mem_small');
  await memoryPerSchema(url, '150-migration tree', longTree, 40, 'org_mem_long');
  await signUpLatency(longTree);
} finally {
  fs.rmSync(longTree, { recursive: true, force: true });
  await adminClient.query(`drop database if exists "${name}" with (force)`);
  await adminClient.query(`drop database if exists "${smallName}" with (force)`);
  await adminClient.end();
}

function rssAnonKb(pid: number): number {
  return Number(/RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

async function memoryPerSchema(url: string, label: string, tree: string, orgs: number, prefix: string): Promise<void> {
  // One connection, never retired (0): what a pool did before recycling.
  const knex = knexFactory(knexConfig(connectionSettingsOf(url), 1, 60_000, 0));
  try {
    const pid = (await knex.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    const start = rssAnonKb(pid);
    const points: string[] = [];
    for (let i = 1; i <= orgs; i++) {
      await provisionTenant(knex, [`${prefix}_${i}`], { directory: tree, concurrency: 1 });
      if (i % Math.max(1, Math.floor(orgs / 5)) === 0) points.push(`${i}: ${(rssAnonKb(pid) / 1024).toFixed(1)} MB`);
    }
    const end = rssAnonKb(pid);
    log(`[memory] ${label}: backend RssAnon ${(start / 1024).toFixed(1)} MB → ${(end / 1024).toFixed(1)} MB over ${orgs} schemas = ${((end - start) / orgs).toFixed(0)} KB per schema (${points.join(', ')})`);
  } finally {
    await knex.destroy();
  }
}

async function signUpLatency(tree: string): Promise<void> {
  const knex = knexFactory(knexConfig(connectionSettingsOf(url), 2));
  try {
    const times: number[] = [];
    for (let i = 1; i <= 8; i++) {
      const started = performance.now();
      const result = await provisionTenant(knex, [`org_signup_${i}`], { directory: tree });
      if (result.tenants[0]?.status !== 'provisioned') throw new Error(JSON.stringify(result));
      times.push(performance.now() - started);
    }
    log(`[sign-up] in one process, 150 migrations: first ${(times[0]! / 1000).toFixed(2)} s, later ${times.slice(1).map((ms) => (ms / 1000).toFixed(2)).join(', ')} s`);
  } finally {
    await knex.destroy();
  }
  const cli: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const run = await runCli(['provision:tenant', `org_signup_cli_${i}`], { DATABASE_URL: url, TENANT_MIGRATIONS_DIR: tree });
    if (run.exitCode !== 0) throw new Error(run.stderr);
    cli.push(`${(run.ms / 1000).toFixed(2)} s (itself ${((run.selfMs ?? 0) / 1000).toFixed(2)} s)`);
  }
  log(`[sign-up] CLI, fresh process each: ${cli.join(', ')}`);
  // The floor: a plain dump of a freshly provisioned tenant, restored under a new name.
  const source = tenantSchemaName('org_signup_1');
  const dump = execFileSync('pg_dump', ['--no-owner', '--no-privileges', '-n', source, url], { maxBuffer: 64 * 1024 * 1024 }).toString();
  const restores: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const target = tenantSchemaName(`org_signup_floor_${i}`);
    const sql = dump.replaceAll(source, target);
    const started = performance.now();
    execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', '-1', url], { input: sql, stdio: ['pipe', 'ignore', 'pipe'] });
    restores.push(`${((performance.now() - started) / 1000).toFixed(2)} s`);
  }
  log(`[sign-up] floor, psql of a plain pg_dump (${(dump.length / 1024).toFixed(0)} KB): ${restores.join(', ')}`);
}
