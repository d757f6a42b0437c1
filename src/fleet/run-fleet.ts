/**
 * Runs one job per tenant with bounded concurrency. Fail-fast by default: after the first failure
 * no new tenant starts (those in flight finish) and the rest are reported `skipped`. A tenant's
 * failure never changes what happens to another tenant that runs.
 *
 * Retry, don't queue (issue #20): an attempt that fails on a lock timeout or a deadlock rolled back
 * whole, so the tenant is re-queued after a jittered, growing pause (retry-pause.ts) — without
 * holding a worker: the rest of the fleet goes on meanwhile. Past its budget (`lockRetries`) the
 * tenant fails with `reason`, `attempts` and `blockedBy` (the sessions that held it up, named by
 * the blocker monitor), and counts for fail-fast like any failure.
 */
import type { Knex } from 'knex';
import { startBlockerMonitor, describeBlockers, type Blocker, type BlockerMonitor } from '../db/blocker-monitor.ts';
import { lockFailureOf, type LockFailure } from '../db/lock-errors.ts';
import { liveSettingsOf, withLiveAttempt, type LiveSettings } from '../db/lock-settings.ts';
import { poolSizeOf } from '../db/connection.ts';
import { describeError } from '../migration/describe-error.ts';
import type { TenantResult } from '../report/results.ts';
import type { TenantRecord } from '../tenants/registry.ts';
import { retryPauseMs } from './retry-pause.ts';

export interface FleetOptions {
  concurrency: number;
  continueOnError?: boolean;
  /** Called as each tenant finishes (also for skipped ones), for progress output. */
  onTenantDone?(result: TenantResult): void;
  /** Lock timeout, retry budget, statement limit. Default: the environment's, else the defaults. */
  live?: LiveSettings;
  /** The database: names the sessions that hold a tenant up (a monitor connection outside the pool). */
  knex?: Knex;
  /** While a tenant waits for a lock: who holds it up (sampled every ≥ 250 ms). */
  onHeldUp?(tenant: Pick<TenantRecord, 'orgId' | 'schema'>, blockers: Blocker[]): void;
  /** A tenant held up was rolled back and goes back to the queue after `pauseMs`. */
  onRetry?(tenant: Pick<TenantRecord, 'orgId' | 'schema'>, event: RetryEvent): void;
  /** Aborted (Ctrl-C): no tenant starts any more; tenants pausing before a retry are reported `skipped`. */
  signal?: AbortSignal;
}

export interface RetryEvent {
  attempt: number;
  reason: LockFailure['reason'];
  pauseMs: number;
  blockedBy: Blocker[];
}

export type TenantJob = (tenant: TenantRecord) => Promise<Pick<TenantResult, 'status' | 'migrations'>>;

interface Entry {
  tenant: TenantRecord;
  index: number;
  attempts: number;
  started?: number;
  /** Who held the tenant up when last seen waiting (kept across its attempts). */
  blockedBy: Blocker[];
}

/** Runs `job` for every tenant; results keep the tenants' order. Never throws for a tenant's failure. */
export async function runFleet(tenants: readonly TenantRecord[], job: TenantJob, options: FleetOptions): Promise<TenantResult[]> {
  const settings = options.live ?? liveSettingsOf();
  // The embedded server serves one session: a monitor connection would wait for the run itself.
  const monitor = options.knex && poolSizeOf(options.knex) > 1 && tenants.length > 0 ? await startBlockerMonitor(options.knex) : undefined;
  try {
    return await schedule(tenants, job, options, settings, monitor);
  } finally {
    await monitor?.stop();
  }
}

function schedule(tenants: readonly TenantRecord[], job: TenantJob, options: FleetOptions, settings: LiveSettings, monitor: BlockerMonitor | undefined): Promise<TenantResult[]> {
  const results: TenantResult[] = new Array<TenantResult>(tenants.length);
  const queue: Entry[] = tenants.map((tenant, index): Entry => ({ tenant, index, attempts: 0, blockedBy: [] }));
  const pausing = new Map<Entry, NodeJS.Timeout>();
  let running = 0;
  let stopped = false;
  let onAbort = () => {};

  return new Promise<TenantResult[]>((resolve) => {
    const finish = (entry: Entry, result: Omit<TenantResult, 'orgId' | 'schema'>) => {
      const full: TenantResult = { orgId: entry.tenant.orgId, schema: entry.tenant.schema, ...result };
      results[entry.index] = full;
      options.onTenantDone?.(full);
    };
    const skip = (entry: Entry) => finish(entry, { status: 'skipped', migrations: [], ms: 0, ...(entry.attempts > 0 ? { attempts: entry.attempts } : {}) });
    const stopPausing = () => {
      for (const [entry, timer] of pausing) {
        clearTimeout(timer);
        skip(entry);
      }
      pausing.clear();
    };
    const settle = () => {
      if (running === 0 && queue.length === 0 && pausing.size === 0) resolve(results);
    };
    onAbort = () => {
      stopped = true;
      stopPausing();
      settle();
    };
    if (options.signal?.aborted) stopped = true;
    else options.signal?.addEventListener('abort', onAbort, { once: true });

    const attempt = async (entry: Entry) => {
      entry.attempts += 1;
      entry.started ??= performance.now();
      let unwatch: (() => void) | undefined;
      const onBackend = (backend: number) => {
        unwatch?.();
        unwatch = monitor?.watch(backend, (blockers) => {
          entry.blockedBy = blockers;
          options.onHeldUp?.(entry.tenant, blockers);
        });
      };
      try {
        const outcome = await withLiveAttempt({ settings, onBackend }, () => job(entry.tenant));
        finish(entry, { ...outcome, ms: elapsed(entry.started), ...(entry.attempts > 1 ? { attempts: entry.attempts } : {}) });
      } catch (error) {
        const failure = lockFailureOf(error);
        const blockedBy = failure ? entry.blockedBy : [];
        if (failure?.retryable && entry.attempts <= settings.lockRetries && !stopped) {
          const pauseMs = retryPauseMs(entry.attempts);
          options.onRetry?.(entry.tenant, { attempt: entry.attempts, reason: failure.reason, pauseMs, blockedBy });
          pausing.set(
            entry,
            setTimeout(() => {
              pausing.delete(entry);
              if (stopped) skip(entry);
              else queue.push(entry);
              pump();
            }, pauseMs),
          );
          return;
        }
        if (!options.continueOnError) {
          stopped = true;
          stopPausing();
        }
        finish(entry, {
          status: 'failed',
          migrations: [],
          error: tenantErrorMessage(entry.tenant, error) + heldUpNote(failure, entry.attempts, settings, blockedBy),
          ms: elapsed(entry.started),
          ...(failure ? { reason: failure.reason, attempts: entry.attempts, blockedBy } : {}),
        });
      } finally {
        unwatch?.();
      }
    };

    const pump = () => {
      while (running < options.concurrency && queue.length > 0) {
        const entry = queue.shift()!;
        if (stopped) {
          skip(entry);
          continue;
        }
        running += 1;
        void attempt(entry).finally(() => {
          running -= 1;
          pump();
        });
      }
      settle();
    };
    pump();
  }).finally(() => options.signal?.removeEventListener('abort', onAbort));
}

/** What a tenant's error adds when locks stopped it: how often it was tried, and who held it up. */
function heldUpNote(failure: LockFailure | undefined, attempts: number, settings: LiveSettings, blockedBy: readonly Blocker[]): string {
  if (!failure) return '';
  const tries = failure.retryable ? ` after ${attempts} attempt${attempts === 1 ? '' : 's'} (lock timeout ${settings.lockTimeoutMs} ms, ${settings.lockRetries} retries): nothing of it was applied; the next run picks it up` : '';
  const who = blockedBy.length > 0 ? ` — ${describeBlockers(blockedBy)}` : '';
  return `${tries}${who}`;
}

function elapsed(started: number | undefined): number {
  return started === undefined ? 0 : Math.round(performance.now() - started);
}

/** "org_a (tid_…): 2026…_notes.ts (up) failed: <PostgreSQL's message, detail, hint>". */
export function tenantErrorMessage(tenant: Pick<TenantRecord, 'orgId' | 'schema'>, error: unknown): string {
  const where = `${tenant.orgId} (${tenant.schema})`;
  const err = error as { migration?: string; direction?: string; cause?: unknown };
  if (error instanceof Error && err.migration) {
    return `${where}: migration ${err.migration} (${err.direction}) failed: ${describeError(err.cause)}`;
  }
  return `${where}: ${describeError(error)}`;
}
