/**
 * The bench's fleet of N tenants and the (untimed) resets between contenders. A reset drops and
 * re-creates the whole scratch database — much faster than dropping thousands of schemas, and
 * every contender starts from the same clean catalog — then lays down the state a contender needs:
 *
 *   - `empty`:      the registry table only (provisioning starts here);
 *   - `registered`: N registry rows, N empty schemas with empty Knex bookkeeping (fresh migrate);
 *   - `migrated`:   the same, at the newest fixture migration (no-op runs, status).
 */
import { execFileSync } from 'node:child_process';
import knexFactory from 'knex';
import pg from 'pg';
import { tenantSchemaName, validateOrgIds } from '../src/tenants/naming.ts';
import { ensureRegistry } from '../src/tenants/registry.ts';
import { FIXTURE_NAMES, FIXTURE_VERSION, floorMigrateSql, ident, literal, registerEmptySql } from './fixture.ts';
import type { ScratchDatabase } from './server.ts';

export interface BenchTenant {
  orgId: string;
  schema: string;
}

export type FleetState = 'empty' | 'registered' | 'migrated';

/** N org ids that look like Clerk's, and their schemas (org ids sort like their numbers). */
export function benchTenants(n: number): BenchTenant[] {
  const orgIds = Array.from({ length: n }, (_, i) => `org_bench${String(i + 1).padStart(7, '0')}`);
  validateOrgIds(orgIds); // also refuses a hash collision among them
  return orgIds.map((orgId) => ({ orgId, schema: tenantSchemaName(orgId) }));
}

/** Tenants per set-up statement: keeps the locks of one transaction well under the server's lock table. */
const SETUP_BATCH = 100;

export async function resetFleet(db: ScratchDatabase, tenants: readonly BenchTenant[], state: FleetState): Promise<void> {
  await db.recreate();
  const knex = knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 1 } });
  try {
    await ensureRegistry(knex); // the registry exactly as tenant-migrate creates it
  } finally {
    await knex.destroy();
  }
  if (state === 'empty') return;
  await onConnections(db.url, 2, chunks(tenants, SETUP_BATCH), (client, batch) => client.query(registerEmptySql(batch)));
  if (state === 'migrated') {
    await onConnections(db.url, 2, tenants, (client, tenant) => client.query(floorMigrateSql(tenant.schema)));
  }
  await settle(db.url);
}

/** After a reset: statistics for the planner and a checkpoint, so no contender inherits the set-up's dirty pages. */
async function settle(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('vacuum analyze public.tenants');
    await client.query('checkpoint').catch(() => {}); // needs superuser or pg_checkpoint; optional
  } finally {
    await client.end();
  }
  flushFilesystems();
}

/**
 * A reset deletes and creates tens of thousands of files (every table, index, sequence and TOAST
 * relation is a file); when the server is local, let the kernel write back and discard them now,
 * not during the next contender's timed run.
 */
function flushFilesystems(): void {
  try {
    execFileSync('sync', [], { stdio: 'ignore', timeout: 120_000 });
  } catch {
    // no sync(1): nothing to do
  }
}

/** Runs `job` for every item over `n` connections (workers pull the next item; order kept per worker). */
export async function onConnections<T>(
  url: string,
  n: number,
  items: readonly T[],
  job: (client: pg.Client, item: T) => Promise<unknown>,
  applicationName?: string,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    const client = new pg.Client({ connectionString: url, ...(applicationName ? { application_name: applicationName } : {}) });
    await client.connect();
    try {
      while (next < items.length) {
        const item = items[next++]!;
        await job(client, item);
      }
    } finally {
      await client.end();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export interface VerifyOptions {
  /** Whether the registry must show every tenant at the newest migration (not for the naive loop). */
  registry: boolean;
}

/**
 * Checks (untimed) that a contender really did the work: every tenant schema has the fixture's
 * tables including the last migration's column, a sample of schemas has exactly the four
 * bookkeeping rows, and (optionally) the registry agrees.
 */
export async function verifyMigrated(url: string, tenants: readonly BenchTenant[], options: VerifyOptions): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const schemas = tenants.map((tenant) => tenant.schema);
    const { rows } = await client.query<{ tables: number; priority: number }>(
      `select (select count(*)::int from pg_tables where schemaname = any($1) and tablename in ('projects', 'tasks', 'comments')) as tables,
              (select count(*)::int from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
                where n.nspname = any($1) and c.relname = 'tasks' and a.attname = 'priority' and not a.attisdropped) as priority`,
      [schemas],
    );
    const found = rows[0]!;
    if (found.tables !== 3 * tenants.length || found.priority !== tenants.length) {
      throw new Error(
        `verification failed: expected ${3 * tenants.length} fixture tables and ${tenants.length} tasks.priority columns, found ${found.tables} and ${found.priority}`,
      );
    }
    const sample = [...new Set([tenants[0], tenants[Math.floor(tenants.length / 2)], tenants.at(-1)])].filter((t) => t !== undefined);
    for (const tenant of sample) {
      const applied = await client.query<{ name: string }>(`select name from ${ident(tenant.schema)}.knex_migrations order by id`);
      const names = applied.rows.map((row) => row.name);
      if (names.join() !== FIXTURE_NAMES.join()) {
        throw new Error(`verification failed: ${tenant.schema}.knex_migrations holds [${names.join(', ')}], expected [${FIXTURE_NAMES.join(', ')}]`);
      }
    }
    if (options.registry) {
      const registry = await client.query<{ n: number }>(
        `select count(*)::int as n from public.tenants where migration_version = ${literal(FIXTURE_VERSION)} and migration_count = ${FIXTURE_NAMES.length}`,
      );
      if (registry.rows[0]!.n !== tenants.length) {
        throw new Error(`verification failed: the registry shows ${registry.rows[0]!.n} of ${tenants.length} tenants at ${FIXTURE_VERSION}`);
      }
    }
  } finally {
    await client.end();
  }
}

/**
 * A tenant schema's shape, independent of its name: columns (type, null, default), constraints,
 * indexes, and the bookkeeping rows (name, batch). Two contenders that did the same work produce the
 * same fingerprint.
 */
export async function schemaFingerprint(url: string, schema: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const columns = await client.query<{ line: string }>(
      `select c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || case when a.attnotnull then ' not null' else '' end
              || coalesce(' default ' || regexp_replace(pg_get_expr(d.adbin, d.adrelid), '"?' || $1 || '"?\\.', '', 'g'), '') as line
         from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
         left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = $1 and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
        order by 1`,
      [schema],
    );
    const constraints = await client.query<{ line: string }>(
      `select c.relname || ' ' || k.conname || ' ' || replace(pg_get_constraintdef(k.oid), $1 || '.', '') as line
         from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 order by 1`,
      [schema],
    );
    const indexes = await client.query<{ line: string }>(
      `select replace(indexdef, $1 || '.', '') as line from pg_indexes where schemaname = $1 order by 1`,
      [schema],
    );
    const applied = await client.query<{ line: string }>(`select name || ' batch ' || batch as line from ${ident(schema)}.knex_migrations order by id`);
    return [...columns.rows, ...constraints.rows, ...indexes.rows, ...applied.rows].map((row) => row.line).join('\n');
  } finally {
    await client.end();
  }
}
