/**
 * A PostgreSQL WITH pgvector for a test file (PRODUCT.md, "Tests": pgvector paths run where the
 * extension exists and say which).
 *
 *   - the run's test server (global-setup.ts) when it offers the `vector` extension
 *     (`pg_available_extensions`; the Docker image pgvector/pgvector has it): a fresh database there;
 *   - otherwise an in-memory PGlite with pgvector (src/embedded/pglite-server.ts), ONE connection at
 *     a time: use `withKnex` (or destroy a Knex before creating the next) and `poolSize`.
 *
 * `TEST_PGVECTOR=pglite` forces PGlite even when the test server has pgvector.
 *
 * @example
 *   const server = usePgvectorServer({ prefix: 'tm_vectors' });
 *   it('stores vectors', () =>
 *     server.withKnex({}, async (knex) => {
 *       await knex.raw('create extension if not exists vector with schema public');
 *     }));
 */
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, inject } from 'vitest';
import type { ConnectionSettings } from '../../src/config/load-config.ts';
import { knexConfig } from '../../src/db/connection.ts';
import { EMBEDDED_POOL_SIZE, startEmbeddedServer } from '../../src/embedded/pglite-server.ts';
import { createTestDatabase } from './database.ts';

export type PgvectorServerKind = 'pglite' | 'test-server';

export interface PgvectorServer {
  /** Which server the file runs on. */
  readonly kind: PgvectorServerKind;
  /** e.g. "PGlite+pgvector (in memory, 127.0.0.1:40123)" or "test server (database tm_x_1a2b3c4d)". */
  readonly label: string;
  readonly url: string;
  readonly connection: ConnectionSettings;
  /** `{ DATABASE_URL: url }` for a CLI run (only while no Knex of this file holds a PGlite connection). */
  readonly env: Record<string, string>;
  /** Most connections a pool may hold: 1 on PGlite. */
  readonly poolSize: number;
  /** A Knex on the database (pool of `poolSize`), destroyed in afterAll if still open. */
  createKnex(overrides?: Partial<Knex.Config>): Knex;
  /** Creates a Knex, runs `fn`, destroys it: the way to use several configurations on PGlite. */
  withKnex<T>(overrides: Partial<Knex.Config>, fn: (knex: Knex) => Promise<T>): Promise<T>;
}

interface Current {
  kind: PgvectorServerKind;
  label: string;
  url: string;
  connection: ConnectionSettings;
  release(): Promise<void>;
}

/** Registers beforeAll/afterAll hooks that provide (and afterwards remove) a server with pgvector. */
export function usePgvectorServer(options: { prefix?: string } = {}): PgvectorServer {
  let current: Current | undefined;
  const instances = new Set<Knex>();
  const get = (): Current => {
    if (!current) throw new Error('usePgvectorServer(): the server exists only from beforeAll until afterAll');
    return current;
  };
  const poolSize = () => (get().kind === 'pglite' ? EMBEDDED_POOL_SIZE : 5);
  const createKnex = (overrides: Partial<Knex.Config> = {}): Knex => {
    const knex = knexFactory({ ...knexConfig(get().connection, poolSize()), ...overrides });
    instances.add(knex); // destroying twice is harmless
    return knex;
  };

  beforeAll(async () => {
    current = await acquire(options.prefix ?? 'tm_pgvector');
    console.log(`[tests] pgvector tests on: ${current.label}`);
  });
  afterAll(async () => {
    await Promise.allSettled([...instances].map((knex) => knex.destroy()));
    instances.clear();
    await current?.release();
    current = undefined;
  });

  return {
    get kind() {
      return get().kind;
    },
    get label() {
      return get().label;
    },
    get url() {
      return get().url;
    },
    get connection() {
      return get().connection;
    },
    get env() {
      return { DATABASE_URL: get().url };
    },
    get poolSize() {
      return poolSize();
    },
    createKnex,
    async withKnex(overrides, fn) {
      const knex = createKnex(overrides);
      try {
        return await fn(knex);
      } finally {
        await knex.destroy();
        instances.delete(knex);
      }
    },
  };
}

async function acquire(prefix: string): Promise<Current> {
  const forcePglite = process.env.TEST_PGVECTOR?.trim().toLowerCase() === 'pglite';
  if (!forcePglite && inject('pgvectorAvailable')) {
    const database = await createTestDatabase(prefix);
    return {
      kind: 'test-server',
      label: `test server (${inject('serverKind')}, PostgreSQL ${inject('serverVersion')}, database ${database.name})`,
      url: database.url,
      connection: database.connection,
      release: () => database.drop(),
    };
  }
  const server = await startEmbeddedServer();
  return {
    kind: 'pglite',
    label: `PGlite+pgvector (in memory, ${server.connection.host}:${server.connection.port}${forcePglite ? ', TEST_PGVECTOR=pglite' : ''})`,
    url: server.url,
    connection: server.connection,
    release: () => server.stop(),
  };
}
