/**
 * What a failed attempt at a schema means for the run: held up by a lock (try again later, without
 * holding a worker), stopped by a limit or an operator (do not), or anything else.
 *
 * SQLSTATEs (PostgreSQL, Appendix A):
 * - 55P03 lock_not_available — lock_timeout ran out (also NOWAIT): `lock_timeout`, retried;
 * - 40P01 deadlock_detected — this side was the victim: `deadlock`, retried;
 * - 40001 serialization_failure — every tool transaction is READ COMMITTED, so only a migration's
 *   own SERIALIZABLE work raises it: treated like a deadlock (issue #20);
 * - 57014 query_canceled — statement_timeout (`statement_timeout`) or pg_cancel_backend
 *   (`canceled`): never retried, the limit or the operator meant it.
 */
export type LockReason = 'lock_timeout' | 'deadlock' | 'statement_timeout' | 'canceled';

export interface LockFailure {
  reason: LockReason;
  /** Worth another attempt: nothing of it was applied, and waiting may end it. */
  retryable: boolean;
  /** The server's error. */
  error: Error & { code: string };
}

/**
 * An attempt that must not be retried automatically even when a lock stopped it — a `transaction:
 * false` migration, whose statements committed as they went (CREATE INDEX CONCURRENTLY leaves an
 * INVALID index behind when it times out).
 */
export class NotRetryableError extends Error {
  override readonly name = 'NotRetryableError';
  constructor(message: string, override readonly cause: unknown) {
    super(message, { cause });
  }
}

/**
 * Classifies an attempt's failure by the server error in its cause chain (the executor wraps it:
 * StepError → cause). Undefined for failures that are not about locks or limits.
 *
 * @example
 *   const failure = lockFailureOf(error);
 *   if (failure?.retryable) requeue(tenant);
 */
export function lockFailureOf(error: unknown): LockFailure | undefined {
  let retryable = true;
  for (let current = error, depth = 0; current instanceof Error && depth < 10; current = current.cause, depth++) {
    if (current instanceof NotRetryableError) retryable = false;
    // Only an error that named a committed part (CommittedBeforeFailingError …) carries its own name.
    if (current.name === 'CommittedBeforeFailingError' || current.name === 'CommitUnknownError') retryable = false;
    const code = (current as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    const error = current as Error & { code: string };
    switch (code) {
      case '55P03':
        return { reason: 'lock_timeout', retryable, error };
      case '40P01':
      case '40001':
        return { reason: 'deadlock', retryable, error };
      case '57014':
        // The server's words are the only difference (same SQLSTATE); lc_messages is English on
        // the servers we know, and a translated message counts as an operator's cancel: not retried.
        return { reason: /statement timeout/i.test(current.message) ? 'statement_timeout' : 'canceled', retryable: false, error };
    }
  }
  return undefined;
}
