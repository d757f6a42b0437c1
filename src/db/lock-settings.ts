/**
 * How long the tool's transactions may wait for a table lock, how often a tenant held up is tried
 * again, and an optional statement limit — resolved once per command from the options (the CLI
 * passes its flags and environment), and applied to every transaction the tool runs against a
 * schema, after its own advisory locks (issue #20).
 *
 * Why these defaults (measured with `pnpm bench --live`, docs/live-fleet.md):
 * - lock_timeout 1 s: under a steady application load an ALTER TABLE on a written table is granted
 *   its lock within milliseconds (the application's transactions are short), so 1 s never cuts an
 *   ordinary migration short; and while it waits, every application query on that table queues
 *   behind it — 1 s is a stall a web request survives, where the 8 s of a blocked run was an outage.
 * - 10 retries, pauses growing from 250 ms to 10 s (jittered): an attempt every 1–11 s for over
 *   40 s, so a tenant blocked by a 12-second transaction is migrated in the same run.
 * - statement_timeout off: a long data migration is legitimate; teams that want a runaway one
 *   stopped set it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { parseDuration } from '../config/duration.ts';
import { UsageError } from '../errors.ts';

export const DEFAULT_LOCK_TIMEOUT_MS = 1000;
export const DEFAULT_LOCK_RETRIES = 10;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 0;
/** A budget past this is a typo: at the longest pause it would keep a run going for hours. */
export const MAX_LOCK_RETRIES = 1000;

/** The library options (also of `handleClerkWebhook`, deprovision, restore, move). */
export interface LiveOptions {
  /** `lock_timeout` of every tool transaction after its advisory lock (ms; 0 = wait forever). Default 1000. */
  lockTimeoutMs?: number;
  /** How many times a tenant held up by a lock timeout or a deadlock is tried again. Default 10. */
  lockRetries?: number;
  /** `statement_timeout` of every tool transaction after its advisory lock (ms; 0 = off, the default). */
  statementTimeoutMs?: number;
}

export type LiveSettings = Required<LiveOptions>;

/** Only the lock options of a larger options object (to pass on to another command). */
export function liveOptionsOf(options: LiveOptions): LiveOptions {
  const { lockTimeoutMs, lockRetries, statementTimeoutMs } = options;
  return { ...(lockTimeoutMs !== undefined ? { lockTimeoutMs } : {}), ...(lockRetries !== undefined ? { lockRetries } : {}), ...(statementTimeoutMs !== undefined ? { statementTimeoutMs } : {}) };
}

/**
 * The settings a command runs with: each option, else its variable (TENANT_LOCK_TIMEOUT,
 * TENANT_LOCK_RETRIES, TENANT_STATEMENT_TIMEOUT), else the default.
 * @throws UsageError (exit 2) for a malformed variable or option.
 */
export function liveSettingsOf(options: LiveOptions = {}, env: NodeJS.ProcessEnv = process.env): LiveSettings {
  const duration = (value: number | undefined, name: string, variable: string, fallback: number) => {
    if (value !== undefined) {
      if (!Number.isInteger(value) || value < 0) throw new UsageError(`${name} must be a whole number of milliseconds (0 = off), got ${value}. Nothing was changed.`);
      return parseDuration(String(value), name);
    }
    const raw = env[variable]?.trim();
    return raw ? parseDuration(raw, variable) : fallback;
  };
  return {
    lockTimeoutMs: duration(options.lockTimeoutMs, 'lockTimeoutMs', 'TENANT_LOCK_TIMEOUT', DEFAULT_LOCK_TIMEOUT_MS),
    lockRetries: options.lockRetries !== undefined ? checkRetries(String(options.lockRetries), 'lockRetries') : env.TENANT_LOCK_RETRIES?.trim() ? checkRetries(env.TENANT_LOCK_RETRIES, 'TENANT_LOCK_RETRIES') : DEFAULT_LOCK_RETRIES,
    statementTimeoutMs: duration(options.statementTimeoutMs, 'statementTimeoutMs', 'TENANT_STATEMENT_TIMEOUT', DEFAULT_STATEMENT_TIMEOUT_MS),
  };
}

/** `--lock-retries` / TENANT_LOCK_RETRIES: a whole number from 0 (never retry) to 1000. */
export function checkRetries(raw: string, source: string): number {
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || n > MAX_LOCK_RETRIES) {
    throw new UsageError(`${source} must be a whole number from 0 to ${MAX_LOCK_RETRIES} (how often a tenant held up by a lock is tried again), got "${raw}". Nothing was changed.`);
  }
  return n;
}

/**
 * The statement that applies the settings: `local` for a transaction (`SET LOCAL`, ends with it),
 * else for the session (a `transaction: false` migration; put back with {@link resetTimeoutsSql}).
 * A migration that sets its own lock_timeout afterwards keeps its own.
 */
export function timeoutsSql(settings: Pick<LiveSettings, 'lockTimeoutMs' | 'statementTimeoutMs'>, local = true): string {
  return (
    `select set_config('lock_timeout', '${Math.trunc(settings.lockTimeoutMs)}ms', ${local}) as lock_timeout, ` +
    `set_config('statement_timeout', '${Math.trunc(settings.statementTimeoutMs)}ms', ${local}) as statement_timeout`
  );
}

/** Puts the session's own settings back after a `transaction: false` migration. */
export const RESET_TIMEOUTS_SQL = 'reset lock_timeout; reset statement_timeout';

/** `PGOPTIONS` for pg_dump / pg_restore / psql: the same limits, for the whole session. */
export function pgOptionsOf(settings: Pick<LiveSettings, 'lockTimeoutMs' | 'statementTimeoutMs'>, existing = process.env.PGOPTIONS): string {
  return [existing?.trim(), `-c lock_timeout=${Math.trunc(settings.lockTimeoutMs)}`, `-c statement_timeout=${Math.trunc(settings.statementTimeoutMs)}`].filter(Boolean).join(' ');
}

/**
 * One attempt at a schema: the settings it runs under, and where the executor says which backend
 * it runs on (the blocker monitor watches that pid while the attempt may wait).
 */
export interface LiveAttempt {
  settings: LiveSettings;
  onBackend?(pid: number): void;
}

const attempts = new AsyncLocalStorage<LiveAttempt>();

/**
 * Runs `fn` as one attempt: every tool transaction it opens (through the executor, the seeds,
 * deprovision …) applies `attempt.settings` after its advisory lock. Carried by AsyncLocalStorage
 * so the fleet layer decides it once for every command, without each job passing it down.
 */
export function withLiveAttempt<T>(attempt: LiveAttempt, fn: () => Promise<T>): Promise<T> {
  return attempts.run(attempt, fn);
}

/** The attempt running now, else one with the settings of the environment (a library call outside a fleet). */
export function currentAttempt(): LiveAttempt {
  return attempts.getStore() ?? { settings: liveSettingsOf() };
}
