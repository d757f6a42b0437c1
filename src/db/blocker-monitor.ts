/**
 * Names what holds a tenant up. While tool backends may be waiting for a lock, one connection of
 * its own — outside the pool, so outside `--concurrency` — asks every `intervalMs` (≥ 250 ms) which
 * of them wait (`pg_blocking_pids`) and walks each chain to its root: the session that holds the
 * lock and waits for nobody (pid 0 is a prepared transaction). What it reports of that session —
 * user, application_name, state, how long its transaction has been open, its query with every
 * literal replaced — is what pg_stat_activity shows the tool's role: without pg_read_all_stats
 * (or being that user), state, transaction age and query are hidden, and the report says so.
 */
import type { Knex } from 'knex';
import { loadRedaction, redactQuery } from './redact-query.ts';
import { HIDDEN_NOTE, type Blocker } from '../report/blockers.ts';

export { describeBlockers, HIDDEN_NOTE, type Blocker } from '../report/blockers.ts';

/** The session at the root of a wait, as `--json` prints it under `blockedBy`. */
export interface BlockerMonitor {
  /** Watches a backend while its attempt may wait; call the returned function when the attempt ends. */
  watch(pid: number, onHeldUp?: (blockers: Blocker[]) => void): () => void;
  /** The root blockers last seen for `pid` (kept after the wait ended, until `watch` is called again). */
  blockersOf(pid: number): Blocker[];
  stop(): Promise<void>;
}

export const MIN_INTERVAL_MS = 250;
const FIRST_LOOK_MS = 100;
const GRACE_MS = 15_000;

/** Walks from each waiting backend to the sessions that block it and nobody blocks. */
const ROOT_BLOCKERS = `
with recursive chain(waiter, pid, depth, seen) as (
  select w.pid, b.pid, 1, array[w.pid]
    from unnest(?::int[]) as w(pid), unnest(pg_blocking_pids(w.pid)) as b(pid)
  union all
  select c.waiter, b.pid, c.depth + 1, c.seen || c.pid
    from chain c, unnest(pg_blocking_pids(c.pid)) as b(pid)
   where c.pid <> 0 and c.depth < 16 and not b.pid = any(c.seen)
)
select distinct on (c.waiter, c.pid) c.waiter, c.pid, a.usename as "user", a.application_name as "applicationName", a.state,
       (extract(epoch from clock_timestamp() - a.xact_start) * 1000)::bigint as "transactionMs", a.query,
       a.pid is not null and a.state is null as hidden
  from chain c left join pg_stat_activity a on a.pid = c.pid
 where c.pid = 0 or cardinality(pg_blocking_pids(c.pid)) = 0`;

interface Row extends Omit<Blocker, 'query'> {
  waiter: number;
  query: string | null;
  hidden: boolean;
}

/** What a role without pg_read_all_stats is told instead of another user's state and query. */

/**
 * Starts the monitor on a raw connection of Knex's (`acquireRawConnection`: the dialect's seam,
 * outside the pool). Sampling runs only while something is watched.
 *
 * @example
 *   const monitor = await startBlockerMonitor(knex);
 *   const unwatch = monitor.watch(pid, (blockers) => progress.heldUp(orgId, blockers));
 */
export async function startBlockerMonitor(knex: Knex, { intervalMs = MIN_INTERVAL_MS }: { intervalMs?: number } = {}): Promise<BlockerMonitor> {
  await loadRedaction();
  // Opened now, not at the first look: under load a connection (and its authentication) takes
  // longer than a short lock wait lasts.
  let connection: unknown = await knex.client.acquireRawConnection().catch(() => undefined);
  const interval = Math.max(intervalMs, MIN_INTERVAL_MS);
  const watched = new Map<number, ((blockers: Blocker[]) => void) | undefined>();
  const last = new Map<number, Blocker[]>();
  let timer: NodeJS.Timeout | undefined;
  let sampling: Promise<void> | undefined;
  let stopped = false;
  // Sampling goes on for a while after the last watched attempt ended: a tenant re-queued after a
  // short pause is then seen at the same cadence, not only by a first look that may miss its wait.
  let lastWatched = 0;
  const active = () => watched.size > 0 || Date.now() - lastWatched < GRACE_MS;

  const sample = async () => {
    if (watched.size === 0 || stopped) return;
    try {
      connection ??= await knex.client.acquireRawConnection();
      const { rows } = await knex.raw<{ rows: Row[] }>(ROOT_BLOCKERS, [[...watched.keys()]]).connection(connection);
      const byWaiter = new Map<number, Blocker[]>();
      for (const row of rows) {
        const list = byWaiter.get(row.waiter) ?? [];
        list.push(blockerOf(row));
        byWaiter.set(row.waiter, list);
      }
      for (const [waiter, blockers] of byWaiter) {
        if (!watched.has(waiter)) continue;
        last.set(waiter, blockers);
        watched.get(waiter)?.(blockers);
      }
    } catch {
      // A monitor that cannot see (a connection refused, a server that lacks the function) names
      // nothing; the run itself goes on.
      await dropConnection();
    }
  };
  const dropConnection = async () => {
    const old = connection;
    connection = undefined;
    if (old) await knex.client.destroyRawConnection(old).catch(() => {});
  };
  let nextAt = 0;
  const schedule = (ms: number) => {
    if (timer) clearTimeout(timer);
    nextAt = Date.now() + ms;
    timer = setTimeout(tick, ms);
  };
  const tick = () => {
    timer = undefined;
    sampling = sample().finally(() => {
      sampling = undefined;
      if (!stopped && active()) schedule(interval);
    });
  };
  return {
    watch(pid, onHeldUp) {
      watched.set(pid, onHeldUp);
      last.delete(pid);
      // Idle until now: the first look comes soon (a wait shorter than a lock timeout of a few hundred
      // ms would otherwise end unseen); from then on, one look per interval.
      // Each new attempt gets a first look soon after it starts, whatever the cadence was.
      if (!sampling && !stopped && (!timer || nextAt - Date.now() > FIRST_LOOK_MS)) schedule(FIRST_LOOK_MS);
      return () => {
        watched.delete(pid);
        lastWatched = Date.now();
      };
    },
    blockersOf: (pid) => last.get(pid) ?? [],
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await sampling;
      await dropConnection();
    },
  };
}

function blockerOf(row: Row): Blocker {
  if (row.pid === 0) return { pid: 0, user: null, applicationName: null, state: 'prepared transaction', transactionMs: null, query: null };
  return {
    pid: row.pid,
    user: row.user,
    applicationName: row.applicationName,
    state: row.hidden ? null : row.state,
    transactionMs: row.transactionMs === null ? null : Number(row.transactionMs),
    query: row.hidden || !row.query || row.query === '<insufficient privilege>' ? null : redactQuery(row.query),
  };
}

