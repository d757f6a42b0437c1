/**
 * What every database command needs: validated configuration and one pool for the whole run.
 * Commands import the library (and with it knex and pg) only when they run, so `--version` and
 * `--help` start without loading them.
 */
import { loadConfig, parseConcurrency, type Config } from '../config/load-config.ts';
import type { Database } from '../db/connection.ts';

export interface CommonFlags {
  concurrency?: string;
}

/** Resolves `--concurrency` (wins) or TENANT_CONCURRENCY. */
export function concurrencyFrom(flags: CommonFlags, config: Config): number {
  return flags.concurrency === undefined ? config.tenantConcurrency : parseConcurrency(flags.concurrency, '--concurrency');
}

/**
 * Loads the configuration, opens the database with a pool sized for `concurrency` tenants (plus
 * one for fleet-wide queries), runs `fn` and always closes the pool.
 */
export async function withDatabase<T>(
  flags: CommonFlags,
  fn: (db: Database, config: Config, concurrency: number) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  const concurrency = concurrencyFrom(flags, config);
  // DB_POOL_MAX below the concurrency is safe (behind a connection limit, or the single-session
  // embedded server): the fleet commands then work on as many tenants at once as the pool holds.
  const { openDatabase } = await import('../db/connection.ts');
  const db = await openDatabase(config, { poolSize: config.poolMax ?? concurrency + 1 });
  try {
    return await fn(db, config, concurrency);
  } finally {
    await db.close();
  }
}
