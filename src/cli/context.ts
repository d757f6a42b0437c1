/**
 * What every database command needs: validated configuration and one pool for the whole run.
 * Commands import the library (and with it knex and pg) only when they run, so `--version` and
 * `--help` start without loading them.
 */
import type { Config } from '../config/load-config.ts';
import type { Database } from '../db/connection.ts';
import { UsageError } from '../errors.ts';
import { parseDuration } from '../config/duration.ts';
import { checkRetries, type LiveSettings } from '../db/lock-settings.ts';
import type { Output } from './output.ts';

/** The command main.ts is running: what the run ledger records when it changes the database. */
export interface CommandRun {
  command: string;
  /** The command line after the program name (redacted before it is stored). */
  args: readonly string[];
  output: Output;
  /** Whether it may change the database (a dry run does not): only those get a ledger row. */
  changesDatabase: boolean;
}

let current: CommandRun | undefined;

/** Set by main.ts around each command body. */
export function setCurrentCommand(run: CommandRun | undefined): void {
  current = run;
}

export interface CommonFlags {
  concurrency?: string;
}

/** `--lock-timeout`, `--lock-retries`, `--statement-timeout` (commands that change schemas). */
export interface LockFlags {
  lockTimeout?: string;
  lockRetries?: string;
  statementTimeout?: string;
}

/**
 * The lock settings a command runs with: each flag wins over its variable (already read into
 * `config.live`). Bad values are exit 2 before anything runs (one parser: config/duration.ts).
 */
export function liveFrom(flags: LockFlags, config: Config): LiveSettings {
  return {
    lockTimeoutMs: flags.lockTimeout === undefined ? config.live.lockTimeoutMs : parseDuration(flags.lockTimeout, '--lock-timeout'),
    lockRetries: flags.lockRetries === undefined ? config.live.lockRetries : checkRetries(flags.lockRetries, '--lock-retries'),
    statementTimeoutMs: flags.statementTimeout === undefined ? config.live.statementTimeoutMs : parseDuration(flags.statementTimeout, '--statement-timeout'),
  };
}

/** Adds the three lock flags to a command that changes schemas. */
export function lockOptions<C extends { option(flags: string, description: string): C }>(command: C): C {
  return command
    .option('--lock-timeout <ms|s>', 'longest wait for a table lock after the tool\'s own lock, e.g. 500 or 2s; 0 = wait forever (default TENANT_LOCK_TIMEOUT or 1s)')
    .option('--lock-retries <n>', 'how often a tenant held up by a lock timeout or deadlock is re-queued (default TENANT_LOCK_RETRIES or 10)')
    .option('--statement-timeout <ms|s>', 'statement_timeout of the tool\'s transactions; 0 = off (default TENANT_STATEMENT_TIMEOUT or off)');
}

/** Resolves `--concurrency` (wins) or TENANT_CONCURRENCY. */
export async function concurrencyFrom(flags: CommonFlags, config: Config): Promise<number> {
  if (flags.concurrency === undefined) return config.tenantConcurrency;
  const { parseConcurrency } = await import('../config/load-config.ts');
  return parseConcurrency(flags.concurrency, '--concurrency');
}

/**
 * Loads the configuration, opens the database with a pool sized for `concurrency` tenants (plus
 * one for fleet-wide queries), runs `fn` and always closes the pool.
 */
export async function withDatabase<T>(
  flags: CommonFlags,
  fn: (db: Database, config: Config, concurrency: number) => Promise<T>,
): Promise<T> {
  // Loaded here, not at the top: `--help` and `--version` never read a configuration (nor dotenv).
  const { loadConfig } = await import('../config/load-config.ts');
  const config = loadConfig();
  // Library calls without a `roles` option (tenantGroupRole in a master migration) see these too.
  (await import('../roles/settings.ts')).useProcessRolesSettings(config.roles);
  const concurrency = await concurrencyFrom(flags, config);
  // DB_POOL_MAX below the concurrency is safe (behind a connection limit, or the single-session
  // embedded server): the fleet commands then work on as many tenants at once as the pool holds.
  const { openDatabase } = await import('../db/connection.ts');
  const db = await openDatabase(config, { poolSize: config.poolMax ?? concurrency + 1 });
  try {
    if (!current?.changesDatabase) return await fn(db, config, concurrency);
    return await recorded(db, current, () => fn(db, config, concurrency));
  } finally {
    await db.close();
  }
}

/**
 * Runs a command that changes the database with its row in the run ledger: written before, completed
 * after — also when the command fails or throws. A ledger error is a warning, never the command's.
 */
async function recorded<T>(db: Database, run: CommandRun, body: () => Promise<T>): Promise<T> {
  const ledger = await import('../history/run-ledger.ts');
  const { currentActor, redactArgs } = await import('../history/actor.ts');
  const warn = (error: unknown) => run.output.warn(`the run history (${ledger.RUNS_TABLE.schema}.${ledger.RUNS_TABLE.table}) was not written: ${(error as Error).message}`);
  const id = await ledger.startRun(db.knex, { command: run.command, args: redactArgs(run.args), actor: currentActor() }).catch((error: unknown) => {
    warn(error);
    return undefined;
  });
  const finish = async (outcome: 'ok' | 'failed', entry: ReturnType<typeof ledger.ledgerEntryOf>) => {
    if (id !== undefined) await ledger.finishRun(db.knex, id, { outcome, ...entry }).catch(warn);
  };
  try {
    const value = await body();
    await finish(value === 0 ? 'ok' : 'failed', ledger.ledgerEntryOf(run.output.lastResult));
    return value;
  } catch (error) {
    if (error instanceof UsageError) {
      if (id !== undefined) await ledger.discardRun(db.knex, id).catch(warn);
      throw error;
    }
    await finish('failed', { summary: run.output.lastResult ?? null, failures: [{ error: (error as Error).message ?? String(error) }] });
    throw error;
  }
}
