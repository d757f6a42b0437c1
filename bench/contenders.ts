/**
 * The in-process contenders: the naive loop (what teams write today) and the plain-SQL floor.
 */
import fs from 'node:fs';
import knexFactory from 'knex';
import pg from 'pg';
import { FIXTURE_DIR, floorMigrateSql, floorProvisionSql } from './fixture.ts';
import { onConnections, type BenchTenant } from './fleet.ts';

/**
 * The naive loop: list the tenant schemas, then for each, one after the other, a new Knex instance
 * whose search_path is [schema, public] runs `migrate.latest({ schemaName })`, and is destroyed.
 * Knex's defaults otherwise (pool min 2 / max 10, one transaction per migration, lock row).
 */
export async function naiveLoop(url: string): Promise<void> {
  const lister = knexFactory({ client: 'pg', connection: url });
  let schemas: string[];
  try {
    schemas = (await lister('tenants').withSchema('public').orderBy('org_id').pluck('schema_name')) as string[];
  } finally {
    await lister.destroy();
  }
  for (const schema of schemas) {
    const knex = knexFactory({ client: 'pg', connection: url, searchPath: [schema, 'public'] });
    try {
      await knex.migrate.latest({ directory: FIXTURE_DIR, schemaName: schema, tableName: 'knex_migrations', loadExtensions: ['.ts'] });
    } finally {
      await knex.destroy();
    }
  }
}

/**
 * The floor of a fleet migrate: the same DDL, bookkeeping rows and registry update as plain SQL,
 * one transaction (and one round trip) per tenant, over `connections` connections that pull
 * tenants from a shared queue. Connecting is part of the time, as it is for every contender.
 */
export async function floorMigrate(url: string, connections: number): Promise<void> {
  const schemas = await listRegisteredSchemas(url);
  await onConnections(url, connections, schemas, (client, schema) => client.query(floorMigrateSql(schema)));
}

/** The floor of provisioning: schema + bookkeeping + tables + registry row per tenant, one transaction each. */
export async function floorProvision(url: string, tenants: readonly BenchTenant[], connections: number): Promise<void> {
  await onConnections(url, connections, tenants, (client, tenant) => client.query(floorProvisionSql(tenant.orgId, tenant.schema)));
}

async function listRegisteredSchemas(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ schema_name: string }>('select schema_name from public.tenants order by org_id');
    return rows.map((row) => row.schema_name);
  } finally {
    await client.end();
  }
}

/**
 * Peak RSS of this (bench) process during an in-process contender, as growth over its RSS at the
 * start: Linux lets a process reset its own high-water mark (`echo 5 > /proc/self/clear_refs`), so
 * VmHWM afterwards is the peak during the contender. Undefined where that is not available.
 */
export function inProcessRss(): { stop(): { peakKb: number; deltaKb: number } | undefined } {
  const status = () => fs.readFileSync('/proc/self/status', 'utf8');
  const field = (text: string, name: string) => Number(new RegExp(`${name}:\\s+(\\d+)\\s+kB`).exec(text)?.[1]);
  let baseKb: number | undefined;
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    baseKb = field(status(), 'VmRSS');
  } catch {
    baseKb = undefined;
  }
  return {
    stop() {
      if (baseKb === undefined || !Number.isFinite(baseKb)) return undefined;
      const peakKb = field(status(), 'VmHWM');
      return Number.isFinite(peakKb) ? { peakKb, deltaKb: Math.max(0, peakKb - baseKb) } : undefined;
    },
  };
}
