/**
 * An in-memory PGlite server for one test file, with a Knex pool of the one connection it serves:
 * started before the file's tests, stopped after them.
 */
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll } from 'vitest';
import { knexConfig } from '../../src/db/connection.ts';
import { EMBEDDED_POOL_SIZE, startEmbeddedServer, type EmbeddedServer } from '../../src/embedded/pglite-server.ts';

export function usePglite(): { server(): EmbeddedServer; knex(): Knex } {
  let server: EmbeddedServer | undefined;
  let knex: Knex | undefined;
  beforeAll(async () => {
    server = await startEmbeddedServer();
    knex = knexFactory(knexConfig(server.connection, EMBEDDED_POOL_SIZE));
  });
  afterAll(async () => {
    await knex?.destroy();
    await server?.stop();
  });
  return { server: () => server!, knex: () => knex! };
}
