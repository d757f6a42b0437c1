/**
 * A fresh database per test file on the run's one server (see global-setup.ts).
 *
 * @example
 *   const db = useFreshDatabase();
 *   it('works', async () => {
 *     await db.knex().raw('select 1');
 *     const result = await runCli(['status'], { env: db.env });
 *   });
 */
import crypto from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { afterAll, beforeAll, inject } from 'vitest';
import type { ConnectionSettings } from '../../src/config/load-config.ts';
import { knexConfig } from '../../src/db/connection.ts';

export interface TestDatabase {
  /** The database's name, e.g. `tm_test_3f9a0c12`. */
  name: string;
  /** `postgres://user[:pass]@host:port/<name>` */
  url: string;
  /** The same, in the shape `loadConfig` produces. */
  connection: ConnectionSettings;
  /** `{ DATABASE_URL: url }`: the environment a CLI run needs to use this database. */
  env: Record<string, string>;
  /** Drops the database (`WITH (FORCE)`, so open connections do not stop it). */
  drop(): Promise<void>;
}

export interface FreshDatabase extends TestDatabase {
  /** A Knex instance on the database (one per file, created on first use, destroyed in afterAll). */
  knex(): Knex;
  /** Another Knex instance (its own pool), also destroyed in afterAll. */
  createKnex(overrides?: Partial<Knex.Config>): Knex;
}

/**
 * Creates a uniquely named database on the test server. Prefer `useFreshDatabase()`; use this when
 * a test needs several databases or one of its own.
 *
 * @example
 *   const extra = await createTestDatabase('tm_extra');
 *   try { ... } finally { await extra.drop(); }
 */
export async function createTestDatabase(prefix = 'tm_test'): Promise<TestDatabase> {
  const name = `${prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40)}_${crypto.randomBytes(4).toString('hex')}`;
  await withAdminClient((client) => client.query(`create database ${quoteIdent(name)}`));
  const admin = new URL(inject('adminUrl'));
  admin.pathname = `/${encodeURIComponent(name)}`;
  const url = admin.toString();
  return {
    name,
    url,
    connection: connectionSettingsOf(url),
    env: { DATABASE_URL: url },
    drop: () => dropTestDatabase(name),
  };
}

/** Drops a database made by `createTestDatabase`, even with connections still open. */
export async function dropTestDatabase(name: string): Promise<void> {
  await withAdminClient((client) => client.query(`drop database if exists ${quoteIdent(name)} with (force)`));
}

/**
 * Registers beforeAll/afterAll hooks (of the file, or of the `describe` it is called in) that create
 * a fresh database and drop it afterwards. The returned object's fields are readable from
 * beforeAll on (registered hooks run in order, so call this before your own beforeAll).
 */
export function useFreshDatabase(options: { prefix?: string } = {}): FreshDatabase {
  let database: TestDatabase | undefined;
  let shared: Knex | undefined;
  const instances: Knex[] = [];
  const current = (): TestDatabase => {
    if (!database) throw new Error('useFreshDatabase(): the database exists only from beforeAll until afterAll');
    return database;
  };
  const createKnex = (overrides: Partial<Knex.Config> = {}): Knex => {
    const instance = knexFactory({ ...knexConfig(current().connection), ...overrides });
    instances.push(instance);
    return instance;
  };

  beforeAll(async () => {
    database = await createTestDatabase(options.prefix);
  });
  afterAll(async () => {
    await Promise.allSettled(instances.splice(0).map((instance) => instance.destroy()));
    shared = undefined;
    await database?.drop();
    database = undefined;
  });

  return {
    get name() {
      return current().name;
    },
    get url() {
      return current().url;
    },
    get connection() {
      return current().connection;
    },
    get env() {
      return current().env;
    },
    drop: () => current().drop(),
    knex: () => (shared ??= createKnex()),
    createKnex,
  };
}

/**
 * Runs `fn` with a pg client on the server's admin database (for roles, databases, settings).
 *
 * @example await withAdminClient((c) => c.query(`create role x login password 'y'`));
 */
export async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminUrl'), connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The `ConnectionSettings` of a postgres URL (what `loadConfig` would build, with TLS when the URL asks for it). */
export function connectionSettingsOf(url: string): ConnectionSettings {
  const parsed = parseConnectionString(url);
  const user = parsed.user || 'postgres';
  return {
    host: parsed.host || 'localhost',
    port: parsed.port ? Number(parsed.port) : 5432,
    user,
    database: parsed.database || user,
    ...(parsed.password ? { password: parsed.password } : {}),
    // sslmode=… in TEST_DATABASE_URL: keep TLS on (pg-connection-string gives options or `true`).
    ...(parsed.ssl ? { ssl: typeof parsed.ssl === 'object' ? (parsed.ssl as ConnectionOptions) : {} } : {}),
  };
}

/** A double-quoted SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
