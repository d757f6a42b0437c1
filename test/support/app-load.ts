/**
 * A real application beside the tool (issue #20): on every tenant, several connections in a loop of
 * short transactions — insert a note, count the notes — recording each transaction's latency, every
 * error, and every insert that committed. And blockers: a session that holds a lock on one tenant's
 * table (a long report, a stuck worker) for a while, or until released.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import pg from 'pg';

export interface AppStats {
  /** Per schema: the longest transaction (ms), how many committed, their latencies. */
  bySchema: Map<string, { worstMs: number; committed: number; latencies: number[] }>;
  errors: string[];
}

export interface AppLoad {
  stats: AppStats;
  /** Stops the loops (each finishes its transaction) and closes the connections. */
  stop(): Promise<AppStats>;
}

/**
 * Starts `perTenant` connections per schema, each looping `begin; insert into notes; select count(*); commit`.
 * Bounded: every loop ends at `stop()` or after `maxMs`, whichever comes first.
 */
export async function startAppLoad(url: string, schemas: readonly string[], { perTenant = 2, maxMs = 60_000, table = 'notes' } = {}): Promise<AppLoad> {
  const stats: AppStats = { bySchema: new Map(), errors: [] };
  let stopping = false;
  const deadline = Date.now() + maxMs;
  const loops: Promise<void>[] = [];
  for (const schema of schemas) {
    stats.bySchema.set(schema, { worstMs: 0, committed: 0, latencies: [] });
    for (let i = 0; i < perTenant; i++) {
      const client = new pg.Client({ connectionString: url, application_name: 'test-app' });
      await client.connect();
      await client.query(`set search_path = "${schema}"`);
      loops.push(
        (async () => {
          try {
            while (!stopping && Date.now() < deadline) {
              const started = performance.now();
              try {
                await client.query('begin');
                await client.query(`insert into ${table} (body) values ($1)`, [`note ${crypto.randomUUID()}`]);
                await client.query(`select count(*) from ${table}`);
                await client.query('commit');
                const ms = performance.now() - started;
                const entry = stats.bySchema.get(schema)!;
                entry.committed += 1;
                entry.latencies.push(ms);
                entry.worstMs = Math.max(entry.worstMs, ms);
              } catch (error) {
                stats.errors.push(`${schema}: ${(error as Error).message}`);
                await client.query('rollback').catch(() => {});
              }
              await new Promise((resolve) => setTimeout(resolve, 5));
            }
          } finally {
            await client.end().catch(() => {});
          }
        })(),
      );
    }
  }
  return {
    stats,
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return stats;
    },
  };
}

export interface Blocker {
  pid: number;
  /** Ends the blocker's transaction (commit) and closes it. */
  release(): Promise<void>;
}

/**
 * A session that opens a transaction and takes `sql`'s locks (say a read: ACCESS SHARE), then keeps
 * the transaction open for `holdMs` (or until released; at most `maxMs`).
 */
export async function startBlocker(url: string, sql: string, { holdMs, maxMs = 200_000, applicationName = 'report-worker' }: { holdMs?: number; maxMs?: number; applicationName?: string } = {}): Promise<Blocker> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  await client.connect();
  const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  await client.query('begin');
  await client.query(sql);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    clearTimeout(timer);
    await client.query('commit').catch(() => {});
    await client.end().catch(() => {});
  };
  const timer = setTimeout(() => void release(), holdMs ?? maxMs);
  return { pid, release };
}

/** p-th percentile (0–100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * The pid of a tenant-migrate backend that waits for `blockerPid`, polled every 20 ms; undefined
 * when none did within `maxMs`.
 */
export async function waitForToolBlockedBy(url: string, blockerPid: number, maxMs = 30_000): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url, application_name: 'test-watch' });
  await client.connect();
  try {
    const deadline = Date.now() + maxMs;
    while (Date.now() < deadline) {
      const { rows } = await client.query<{ pid: number }>(
        "select pid from pg_stat_activity where application_name = 'tenant-migrate' and $1 = any(pg_blocking_pids(pid))",
        [blockerPid],
      );
      if (rows[0]) return rows[0].pid;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return undefined;
  } finally {
    await client.end();
  }
}

/**
 * Ends `blocker` `holdMs` after the tool was first seen waiting for it (the CLI takes a while to
 * start, so a fixed hold would often end before the tool arrives). Bounded: gives up after `maxMs`.
 */
export function releaseAfterToolWaited(url: string, blocker: Blocker, holdMs: number, maxMs = 150_000): Promise<void> {
  return (async () => {
    await waitForToolBlockedBy(url, blocker.pid, maxMs);
    await new Promise((resolve) => setTimeout(resolve, holdMs));
    await blocker.release();
  })();
}

/** The migrations `schema`'s own knex_migrations records, in the order they were applied. */
export async function appliedMigrations(knex: Knex, schema: string): Promise<string[]> {
  return (await knex.withSchema(schema).from('knex_migrations').orderBy('id').pluck('name')) as string[];
}

/** Whether `schema.table` has `column`. */
export async function hasColumn(knex: Knex, schema: string, table: string, column: string): Promise<boolean> {
  const rows = await knex('information_schema.columns').where({ table_schema: schema, table_name: table, column_name: column });
  return rows.length > 0;
}
