/**
 * One schema, retried like a fleet tenant (issue #20): for `migrate:master` / `rollback:master`,
 * where the shared tables in `public` are the hottest case. An attempt that fails on a lock
 * timeout or a deadlock rolled back whole; it is tried again after a jittered, growing pause, up to
 * the budget, with the blocker monitor naming who held it up.
 */
import type { Knex } from 'knex';
import { startBlockerMonitor, type Blocker } from '../db/blocker-monitor.ts';
import { lockFailureOf, type LockFailure } from '../db/lock-errors.ts';
import { withLiveAttempt, type LiveSettings } from '../db/lock-settings.ts';
import { poolSizeOf } from '../db/connection.ts';
import { retryPauseMs } from './retry-pause.ts';
import type { RetryEvent } from './run-fleet.ts';

/** The last attempt's failure, with what the run knows about it. */
export interface HeldUp {
  failure: LockFailure;
  attempts: number;
  blockedBy: Blocker[];
}

/**
 * Runs `fn` until it succeeds, fails for another reason, or the budget is spent. Resolves with its
 * value and the attempts taken; rejects with the last error, `heldUp` attached when locks stopped it.
 *
 * @example
 *   const { value, attempts } = await withLockRetries(knex, liveSettingsOf(options), () => runSchema(knex, run));
 */
export async function withLockRetries<T>(
  knex: Knex,
  settings: LiveSettings,
  fn: () => Promise<T>,
  hooks: { onHeldUp?(blockers: Blocker[]): void; onRetry?(event: RetryEvent): void } = {},
): Promise<{ value: T; attempts: number }> {
  const monitor = poolSizeOf(knex) > 1 ? await startBlockerMonitor(knex) : undefined;
  try {
    let blockedBy: Blocker[] = [];
    for (let attempts = 1; ; attempts++) {
      let unwatch: (() => void) | undefined;
      try {
        const value = await withLiveAttempt(
          {
            settings,
            onBackend: (backend) => {
              unwatch?.();
              unwatch = monitor?.watch(backend, (blockers) => {
                blockedBy = blockers;
                hooks.onHeldUp?.(blockers);
              });
            },
          },
          fn,
        );
        return { value, attempts };
      } catch (error) {
        const failure = lockFailureOf(error);
        if (!failure) throw error;
        if (!failure.retryable || attempts > settings.lockRetries) throw Object.assign(error as object, { heldUp: { failure, attempts, blockedBy } satisfies HeldUp });
        const pauseMs = retryPauseMs(attempts);
        hooks.onRetry?.({ attempt: attempts, reason: failure.reason, pauseMs, blockedBy });
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      } finally {
        unwatch?.();
      }
    }
  } finally {
    await monitor?.stop();
  }
}

/** The `heldUp` that {@link withLockRetries} attached to an error, if any. */
export function heldUpOf(error: unknown): HeldUp | undefined {
  return (error as { heldUp?: HeldUp } | null)?.heldUp;
}
