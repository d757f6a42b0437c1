/**
 * The one parser for durations a user types (`--lock-timeout`, `TENANT_LOCK_TIMEOUT`,
 * `--statement-timeout`, `query:tenants --statement-timeout`): a bare number is milliseconds, an
 * `s` suffix seconds (`ms` is accepted too), `0` means off where the setting allows it.
 */
import { UsageError } from '../errors.ts';

/** PostgreSQL's own ceiling for lock_timeout and statement_timeout (INT_MAX milliseconds). */
export const MAX_DURATION_MS = 2_147_483_647;

/**
 * @example
 *   parseDuration('200', '--lock-timeout')  // 200
 *   parseDuration('1.5s', '--lock-timeout') // 1500
 *   parseDuration('0', '--lock-timeout')    // 0 (off)
 * @throws UsageError (exit 2) for anything else, a fraction of a millisecond, or a value past
 *   `max` (default: PostgreSQL's limit, about 24.8 days); with `allowZero: false`, for 0.
 */
export function parseDuration(raw: string, source: string, { allowZero = true, max = MAX_DURATION_MS }: { allowZero?: boolean; max?: number } = {}): number {
  const text = raw.trim().toLowerCase();
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text);
  const ms = match ? Number(match[1]) * (match[2] === 's' ? 1000 : 1) : Number.NaN;
  const example = allowZero ? 'e.g. 500 (milliseconds), 2s (seconds) or 0 (off)' : 'e.g. 500 (milliseconds) or 2s (seconds)';
  if (!Number.isInteger(ms)) throw new UsageError(`${source} "${raw}" is not a duration: ${example}. Nothing was changed.`);
  if (ms === 0 && !allowZero) throw new UsageError(`${source} must be more than 0 (got "${raw}"). Nothing was changed.`);
  if (ms > max) throw new UsageError(`${source} "${raw}" is out of range: at most ${max} ms. Nothing was changed.`);
  return ms;
}

/** How a duration reads back to a user: `800 ms`, `2 s`, `off`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return 'off';
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
