/**
 * How long a tenant held up by a lock waits before it is queued again: growing (250 ms, 500 ms,
 * 1 s … up to 10 s) so a long blocker is not hammered, and jittered (50–100 % of that) so tenants
 * held up together — every tenant's transaction behind one shared table — do not all come back at
 * once (the "full jitter" lesson of AWS's backoff study; GitLab's with_lock_retries grows likewise).
 */
export const FIRST_PAUSE_MS = 250;
export const MAX_PAUSE_MS = 10_000;

/**
 * @param attempt the attempt that just failed (1 for the first)
 * @example retryPauseMs(1) // 125…250
 */
export function retryPauseMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}
