/**
 * Opening the database: one Knex pool for the whole run (never one per tenant), a connect timeout
 * so an unreachable server fails in seconds, and connection errors that never show the password.
 */
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { ACQUIRE_TIMEOUT_MS, CONNECT_TIMEOUT_MS, type Config, type ConnectionLabel, type ConnectionSettings } from '../config/load-config.ts';
import { inProcessServerAt } from '../embedded/in-process.ts';
import { ConnectionError, UsageError } from '../errors.ts';
import { DEFAULT_SCHEMAS_PER_CONNECTION, retireAfterSchemas } from './recycle-connections.ts';

// Return int8 (count(*), bigint ids) as JS numbers: our counts are far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export interface Database {
  knex: Knex;
  label: ConnectionLabel;
  /** Destroys the pool (and stops the embedded server when one was started). */
  close(): Promise<void>;
  /** With the embedded server: a plain-SQL dump of one schema, taken on PGlite itself (backups). */
  dumpSchema?(schema: string): Promise<string>;
}

export interface OpenOptions {
  /** Most connections the pool may hold at once. */
  poolSize?: number;
}

/** The most connections a Knex instance's pool may hold: what a fleet run's concurrency is capped at. */
export function poolSizeOf(knex: Knex): number {
  const pool = (knex.client as { pool?: { max?: number }; config?: Knex.Config }).pool;
  const configured = (knex.client.config as Knex.Config).pool?.max;
  return pool?.max ?? configured ?? 10; // 10: Knex's default
}

/** The Knex configuration for a connection: what knexfile.ts and the CLI both use. */
export function knexConfig(
  connection: ConnectionSettings,
  poolSize = 5,
  acquireTimeoutMs = ACQUIRE_TIMEOUT_MS,
  schemasPerConnection = DEFAULT_SCHEMAS_PER_CONNECTION,
): Knex.Config {
  return {
    client: 'pg',
    connection: { ...connection, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'tenant-migrate' },
    // validate: a connection that has served its share of tenant schemas is closed (recycle-connections.ts).
    pool: { min: 0, max: poolSize, validate: retireAfterSchemas({ schemas: schemasPerConnection }) },
    acquireConnectionTimeout: acquireTimeoutMs,
    log: knexLog,
  };
}

/**
 * Knex's own logger prints with console.log, i.e. to stdout, which would break `--json` (one
 * document on stdout); and for every failed connect it prints "Acquire connection error: <stack>"
 * although the same error is thrown (and reported once, as a ConnectionError). So: warnings to
 * stderr, minus that duplicate.
 */
const knexLog: Knex.Logger = {
  warn(message: unknown) {
    if (typeof message === 'string' && message.startsWith('Acquire connection error')) return;
    process.stderr.write(`knex: ${String(message)}\n`);
  },
  error(message: unknown) {
    process.stderr.write(`knex: ${String(message)}\n`);
  },
  deprecate(method: string, alternative: string) {
    process.stderr.write(`knex: ${method} is deprecated, please use ${alternative}\n`);
  },
};

/**
 * Opens the configured database and checks that it answers, so that a bad host, password or
 * certificate is reported once, clearly, before any work starts.
 *
 * @example
 *   const db = await openDatabase(loadConfig(), { poolSize: 5 });
 *   try { await db.knex.raw('select 1'); } finally { await db.close(); }
 */
export async function openDatabase(config: Config, options: OpenOptions = {}): Promise<Database> {
  let connection = config.connection;
  let stopServer: (() => Promise<void>) | undefined;
  let dumpSchema: Database['dumpSchema'];
  let poolSize = options.poolSize ?? 5;
  if (config.embedded) {
    // Imported only here: PGlite's WebAssembly is not loaded for real servers.
    const { startPersistentEmbedded, EMBEDDED_POOL_SIZE } = await import('../embedded/pglite-server.ts');
    const server = await startPersistentEmbedded();
    connection = server.connection;
    stopServer = server.stop;
    dumpSchema = server.dumpSchema;
    // PGlite is one session: more connections would queue at its gate anyway (tenants then queue on the pool).
    poolSize = EMBEDDED_POOL_SIZE;
  }
  if (!connection) {
    throw new UsageError('No database configured: set DATABASE_URL or the DB_* variables.');
  }
  // An embedded server this process started, reached by its URL (pnpm demo): its dumper too.
  dumpSchema ??= inProcessServerAt(connection.host, connection.port)?.dumpSchema;
  const knex = knexFactory(knexConfig(connection, poolSize, config.acquireTimeoutMs, config.schemasPerConnection));
  const label = labelOf(connection);
  const close = async () => {
    await knex.destroy();
    await stopServer?.();
  };
  try {
    await knex.raw('select 1');
  } catch (error) {
    await close();
    throw connectionError(label, error);
  }
  return { knex, label, close, ...(dumpSchema ? { dumpSchema } : {}) };
}

/** Wraps an existing Knex instance (library callers bring their own). */
export function databaseFromKnex(knex: Knex): Database {
  const settings = (knex.client.config.connection ?? {}) as Partial<ConnectionSettings>;
  return {
    knex,
    label: {
      host: settings.host ?? 'localhost',
      port: Number(settings.port ?? 5432),
      database: settings.database ?? '',
      user: settings.user ?? '',
    },
    close: async () => {},
  };
}

export function labelOf(connection: ConnectionSettings): ConnectionLabel {
  const { host, port, database, user } = connection;
  return { host, port, database, user };
}

/** "host:port, database "x", user "y"": how every connection message names the server. */
export function describeConnection(label: ConnectionLabel): string {
  return `${label.host}:${label.port}, database "${label.database}", user "${label.user}"`;
}

/**
 * A ConnectionError that says where we tried to connect and what the server (or the network)
 * answered: refused, timed out, unknown host, bad password, missing database, TLS refused.
 */
export function connectionError(label: ConnectionLabel, error: unknown): ConnectionError {
  return new ConnectionError(`Cannot connect to PostgreSQL at ${describeConnection(label)}: ${reasonOf(error)}`, {
    cause: error,
  });
}

function reasonOf(error: unknown): string {
  const err = error as { code?: string; message?: string; errors?: unknown[] } | undefined;
  // AggregateError (IPv4 + IPv6 both refused) carries an empty message; use its first member.
  if (err && !err.message && Array.isArray(err.errors) && err.errors.length > 0) return reasonOf(err.errors[0]);
  const message = err?.message ?? String(error);
  switch (err?.code) {
    case 'ECONNREFUSED':
      return `connection refused (is PostgreSQL running and listening there?) [${message}]`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `unknown host [${message}]`;
    case 'ETIMEDOUT':
      return `timed out [${message}]`;
    case '28P01':
    case '28000':
      return `login refused: ${message}`;
    case '3D000':
      return `${message} (create it first, e.g. createdb)`;
    default:
      if (/timeout/i.test(message)) return `timed out after ${CONNECT_TIMEOUT_MS / 1000}s [${message}]`;
      if (/certificate|self.signed|SSL|TLS/i.test(message)) return `TLS refused: ${message} (check DB_SSL_CERT_PATH / DB_SSL_REJECT_UNAUTHORIZED)`;
      return message;
  }
}

/** True for errors that mean "could not reach or log in to the server" rather than "a query failed". */
export function isConnectionFailure(error: unknown): boolean {
  const err = error as { code?: string; message?: string } | undefined;
  if (!err) return false;
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', '28P01', '28000', '3D000'].includes(err.code ?? '')) return true;
  return /Connection terminated|timeout exceeded when trying to connect|self.signed|certificate|does not support SSL/i.test(err.message ?? '');
}
