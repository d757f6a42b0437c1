/**
 * Lays down a large bench fleet (untimed set-up for `pnpm bench --scale` at 100,000 tenants) in its
 * own database, resumably, so it can run for an hour in the background before the measurements:
 *
 *   pnpm exec tsx bench/lay-down.ts --url postgres://postgres@127.0.0.1:5432/bench_scale_100k \
 *     --size 100000 --pending 2000 [--connections 2] [--fresh]
 *
 * Tenants 1..size-pending are provisioned at the newest fixture migration by the floor SQL (many
 * tenants per query string, one transaction each; `tasks.priority` declared in its CREATE TABLE, not
 * added by ADD COLUMN … DEFAULT, whose cost grows with the catalog: fixture.ts, LAY_DOWN_DDL); the last `pending` are registered with empty
 * schemas, so a fresh `migrate:tenants` and the floor can both be timed on the full catalog.
 * Prints one progress line per 1,000 tenants with the floor's own rate: how DDL slows as the
 * catalog grows. Connections are replaced every 2,000 tenants (a backend's catalog cache grows
 * with every relation it touches). Re-running skips tenants already registered.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import knexFactory from 'knex';
import pg from 'pg';
import { ensureRegistry } from '../src/tenants/registry.ts';
import { layDownProvisionSql, registerEmptySql } from './fixture.ts';
import { benchTenants, type BenchTenant } from './fleet.ts';

/** Tenants per query string (each its own transaction). */
const PER_QUERY = 10;
/** The catalogs a lay-down grows: vacuumed and analysed at its end. */
const CATALOGS = ['pg_class', 'pg_attribute', 'pg_depend', 'pg_type', 'pg_constraint', 'pg_index', 'pg_attrdef', 'pg_sequence', 'pg_namespace', 'pg_shdepend'];
/** A connection is replaced after this many tenants. */
const PER_CONNECTION = 2000;

export interface LayDownOptions {
  url: string;
  size: number;
  /** The last `pending` tenants are registered with empty schemas (not migrated). */
  pending: number;
  connections: number;
  /** Drop the database first. */
  fresh?: boolean;
  log: (line: string) => void;
}

export interface LayDownReport {
  /** Tenants laid down by this call (others were there already). */
  laidDown: number;
  seconds: number;
  /** The floor's ms per tenant over this call's migrated tenants (undefined when none). */
  floorMsPerTenant: number | undefined;
}

/** Lays the fleet down (resumably); see the module comment. */
export async function layDown(options: LayDownOptions): Promise<LayDownReport> {
  const { url, size, pending, connections, log } = options;
  const started = Date.now();
  await prepareDatabase(url, options.fresh ?? false);
  const done = await registered(url);
  const all = benchTenants(size);
  const migrated = all.slice(0, size - pending).filter((tenant) => !done.has(tenant.orgId));
  const empty = all.slice(size - pending).filter((tenant) => !done.has(tenant.orgId));
  log(`${done.size} already registered; to lay down: ${migrated.length} migrated, ${empty.length} pending`);
  let count = 0;
  let windowStart = Date.now();
  let windowCount = 0;
  const floorStarted = Date.now();
  await onRecycledConnections(url, connections, chunk(migrated, PER_QUERY), async (client, batch) => {
    await client.query(batch.map((tenant) => layDownProvisionSql(tenant.orgId, tenant.schema)).join('\n'));
    const before = count;
    count += batch.length;
    if (Math.floor(count / 1000) > Math.floor(before / 1000)) {
      const ms = (Date.now() - windowStart) / (count - windowCount);
      log(`${done.size + count} laid down; floor ${ms.toFixed(1)} ms/tenant over the last ${count - windowCount} (${connections} connections)`);
      windowStart = Date.now();
      windowCount = count;
    }
  });
  const floorMs = Date.now() - floorStarted;
  await onRecycledConnections(url, connections, chunk(empty, 100), (client, batch) => client.query(registerEmptySql(batch)));
  const settle = new pg.Client({ connectionString: url });
  await settle.connect();
  await settle.query('vacuum analyze public.tenants');
  // What autovacuum would have done on a server that has it on (this test server has it off):
  // without it pg_class keeps its dead rows and a reltuples of a few hundred, and every catalog
  // query is planned for a tiny table (docs/at-scale.md: pg_dump -n 118.7 s → 31.8 s at 36,320).
  await settle.query(`vacuum (analyze) ${CATALOGS.join(', ')}`);
  await settle.query('checkpoint');
  await settle.end();
  log(`done: ${size} tenants (${pending} pending)`);
  return {
    laidDown: migrated.length + empty.length,
    seconds: (Date.now() - started) / 1000,
    floorMsPerTenant: migrated.length > 0 ? floorMs / migrated.length : undefined,
  };
}

async function prepareDatabase(url: string, fresh: boolean): Promise<void> {
  const target = new URL(url);
  const name = target.pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    if (fresh) await client.query(`drop database if exists "${name}" with (force)`);
    const exists = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  try {
    await ensureRegistry(knex);
  } finally {
    await knex.destroy();
  }
}

async function registered(url: string): Promise<Set<string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ org_id: string }>('select org_id from public.tenants');
    return new Set(rows.map((row) => row.org_id));
  } finally {
    await client.end();
  }
}

async function onRecycledConnections<T>(url: string, connections: number, items: readonly T[], job: (client: pg.Client, item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const perConnection = Math.max(1, Math.floor(PER_CONNECTION / PER_QUERY));
  const worker = async () => {
    while (next < items.length) {
      const client = new pg.Client({ connectionString: url, application_name: 'tenant-migrate-bench-lay-down', options: '-c synchronous_commit=off' });
      await client.connect();
      try {
        for (let served = 0; served < perConnection && next < items.length; served++) await job(client, items[next++]!);
      } finally {
        await client.end();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(connections, items.length)) }, worker));
}

function chunk(items: readonly BenchTenant[], n: number): BenchTenant[][] {
  const out: BenchTenant[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

// Run as a script: the lay-down in the background, logging to stdout.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      size: { type: 'string' },
      pending: { type: 'string', default: '0' },
      connections: { type: 'string', default: '2' },
      fresh: { type: 'boolean', default: false },
    },
  });
  if (!values.url || !values.size) throw new Error('usage: lay-down.ts --url URL --size N [--pending P] [--connections C] [--fresh]');
  const started = Date.now();
  await layDown({
    url: values.url,
    size: Number(values.size),
    pending: Number(values.pending),
    connections: Number(values.connections),
    fresh: values.fresh,
    log: (line) => console.log(`${new Date().toISOString()} +${((Date.now() - started) / 1000).toFixed(0)}s ${line}`),
  });
}
