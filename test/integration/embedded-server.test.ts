/**
 * The embedded PostgreSQL (src/embedded/pglite-server.ts), through `pg` and Knex as the product
 * uses it: pgvector, the one-connection-at-a-time rule (and its clear refusal), transactions with
 * advisory locks and SET LOCAL through a pool of EMBEDDED_POOL_SIZE, persistence, and a stop()
 * that frees the port and leaves nothing that keeps a process alive.
 *
 * Needs no test server: everything here is PGlite.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { knexConfig } from '../../src/db/connection.ts';
import {
  EMBEDDED_POOL_SIZE,
  PERSISTENT_DATA_DIR,
  startEmbeddedServer,
  startPersistentEmbedded,
  type EmbeddedServer,
} from '../../src/embedded/pglite-server.ts';
import { ConnectionError } from '../../src/errors.ts';
import { repoRoot } from '../support/cli.ts';

const knexes: Knex[] = [];
function knexOn(server: EmbeddedServer, overrides: Partial<Knex.Config> = {}): Knex {
  const knex = knexFactory({ ...knexConfig(server.connection, EMBEDDED_POOL_SIZE), ...overrides });
  knexes.push(knex);
  return knex;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('embedded server (in memory)', () => {
  let server: EmbeddedServer;

  beforeAll(async () => {
    server = await startEmbeddedServer();
  });
  afterAll(async () => {
    await Promise.allSettled(knexes.splice(0).map((knex) => knex.destroy()));
    await server?.stop();
  });

  it('answers pg on 127.0.0.1 (settings and URL) with a real PostgreSQL that has pgvector', async () => {
    expect(server.connection).toMatchObject({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
    expect(server.connection.port).toBeGreaterThan(0);
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.connection.port}/postgres`);

    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ version: string; available: boolean }>(
        `select version(), exists (select 1 from pg_available_extensions where name = 'vector') as available`,
      );
      expect(rows[0]?.version).toMatch(/^PostgreSQL \d+/);
      expect(rows[0]?.available).toBe(true);
    } finally {
      await client.end();
    }
  });

  it('through Knex: CREATE EXTENSION vector, a tenant-style transaction (advisory lock, SET LOCAL), vector(3), HNSW cosine, <=> ordering', async () => {
    const knex = knexOn(server);
    await knex.raw('create extension if not exists vector with schema public');
    await knex.raw('create schema tid_embedded');
    await knex.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?, ?)', [1953066349, 42]);
      await trx.raw('set local search_path to ??, public', ['tid_embedded']);
      await trx.schema.createTable('items', (table) => {
        table.increments('id');
        table.specificType('embedding', 'vector(3)');
      });
      await trx.raw('create index items_embedding_hnsw on items using hnsw (embedding vector_cosine_ops)');
      await trx('items').insert([{ embedding: '[1,0,0]' }, { embedding: '[0,1,0]' }, { embedding: '[0.9,0.1,0]' }]);
      const { rows } = await trx.raw('show search_path');
      expect(rows[0].search_path).toBe('tid_embedded, public');
    });
    // SET LOCAL ended with the transaction; the table is in the tenant schema only.
    expect((await knex.raw('show search_path')).rows[0].search_path).not.toContain('tid_embedded');
    expect(await knex.raw(`select to_regclass('public.items') as t`).then((r) => r.rows[0].t)).toBeNull();
    const nearest = await knex
      .withSchema('tid_embedded')
      .from('items')
      .select('id')
      .orderByRaw('embedding <=> ?', ['[1,0,0]'])
      .limit(2);
    expect(nearest.map((row) => row.id)).toEqual([1, 3]);
    await knex.destroy();
  });

  it(`several transactions at once through a pool of ${EMBEDDED_POOL_SIZE}: each keeps its own search_path and lock`, async () => {
    expect(EMBEDDED_POOL_SIZE).toBe(1);
    const knex = knexOn(server);
    const schemas = ['tid_a', 'tid_b', 'tid_c', 'tid_d', 'tid_e'];
    for (const schema of schemas) await knex.raw('create schema ??', [schema]);
    const seen = await Promise.all(
      schemas.map((schema, i) =>
        knex.transaction(async (trx) => {
          await trx.raw('select pg_advisory_xact_lock(?, ?)', [1953066349, i]);
          await trx.raw('set local search_path to ??, public', [schema]);
          await new Promise((resolve) => setTimeout(resolve, 5));
          await trx.schema.createTable('notes', (table) => table.integer('owner'));
          await trx('notes').insert({ owner: i });
          return (await trx.raw('show search_path')).rows[0].search_path as string;
        }),
      ),
    );
    expect(seen).toEqual(schemas.map((schema) => `${schema}, public`));
    for (const [i, schema] of schemas.entries()) {
      expect(await knex.withSchema(schema).from('notes').select('owner')).toEqual([{ owner: i }]);
    }
    await knex.destroy();
  });

  it('a transaction whose client vanishes is rolled back; the next client gets a clean session', async () => {
    const first = new pg.Client(server.connection);
    first.on('error', () => {});
    await first.connect();
    await first.query('select pg_advisory_lock(7)');
    await first.query('set search_path to pg_catalog');
    await first.query('begin');
    await first.query('create table public.half_done (x int)');
    (first as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();

    const second = new pg.Client(server.connection);
    await second.connect();
    try {
      const { rows } = await second.query(
        `select to_regclass('public.half_done') as half_done, pg_try_advisory_lock(7) as got_lock, current_setting('search_path') as path`,
      );
      expect(rows[0]).toEqual({ half_done: null, got_lock: true, path: expect.not.stringContaining('pg_catalog') });
    } finally {
      await second.end();
    }
  });

  it('a second connection while one is open is refused with 53300 and a hint (not a hang, not interleaved)', async () => {
    const holder = knexOn(server);
    await holder.raw('select 1');
    const other = new pg.Client(server.connection);
    const started = Date.now();
    const error = await other.connect().then(
      () => undefined,
      (e: unknown) => e as { code?: string; message?: string; hint?: string },
    );
    expect(error?.code).toBe('53300');
    expect(error?.message).toContain('one connection at a time');
    expect(error?.hint).toContain('pool of 1');
    expect(Date.now() - started).toBeLessThan(4_000); // below knexConfig's 5 s connect timeout

    await holder.destroy();
    const after = new pg.Client(server.connection);
    await after.connect();
    expect((await after.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    await after.end();
  });

  it('a pool that replaces its connection (idle reaping) never hits the one-connection limit', async () => {
    const knex = knexOn(server, { pool: { min: 0, max: EMBEDDED_POOL_SIZE, idleTimeoutMillis: 10, reapIntervalMillis: 5 } });
    for (let i = 0; i < 25; i++) {
      await knex.raw('select ?::int as i', [i]);
      await new Promise((resolve) => setTimeout(resolve, 10 + (i % 4) * 5));
    }
    await knex.destroy();
  });
});

describe('embedded server: stop()', () => {
  it('closes the port (twice is fine) and a process that used it exits on its own', async () => {
    const server = await startEmbeddedServer();
    const { port } = server.connection;
    expect(await canConnect(port)).toBe(true);
    const knex = knexFactory(knexConfig(server.connection, EMBEDDED_POOL_SIZE));
    await knex.raw('select 1');
    await knex.destroy();
    await server.stop();
    await server.stop();
    expect(await canConnect(port)).toBe(false);
    // The port is free again for anyone.
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
    await new Promise((resolve) => probe.close(resolve));

    // A whole program: start, query through Knex while a pg client is still connected, stop — and
    // nothing may keep the event loop alive afterwards (no process.exit in the script).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-embedded-exit-'));
    try {
      const script = path.join(dir, 'exit.mjs');
      const fromRepo = createRequire(path.join(repoRoot, 'package.json'));
      const url = (file: string) => JSON.stringify(pathToFileURL(file).href);
      fs.writeFileSync(
        script,
        `import knexFactory from ${url(fromRepo.resolve('knex'))};
         import pg from ${url(fromRepo.resolve('pg'))};
         const { startEmbeddedServer } = await import(${url(path.join(repoRoot, 'src/embedded/pglite-server.ts'))});
         const server = await startEmbeddedServer();
         const knex = knexFactory({ client: 'pg', connection: server.connection, pool: { min: 0, max: 1 } });
         await knex.raw("create extension vector; select '[1,2,3]'::vector");
         await knex.destroy();
         const client = new pg.Client(server.connection);
         client.on('error', () => {});
         await client.connect();
         await client.query('begin');
         await server.stop();
         console.log('stopped');`,
      );
      const tsx = pathToFileURL(fromRepo.resolve('tsx')).href;
      const result = await new Promise<{ code: number | null; output: string; ms: number }>((resolve) => {
        const started = Date.now();
        const child = spawn(process.execPath, ['--import', tsx, script], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk) => (output += chunk));
        child.stderr.on('data', (chunk) => (output += chunk));
        // Generous: starting PGlite with pgvector in a fresh process took over a minute on a loaded
        // 2-core machine. A process kept alive by the server would never exit: the kill still catches it.
        const killer = setTimeout(() => child.kill('SIGKILL'), 150_000);
        child.on('exit', (code) => {
          clearTimeout(killer);
          resolve({ code, output, ms: Date.now() - started });
        });
      });
      expect(result.output).toContain('stopped');
      expect(result.code, result.output).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('embedded server: persistent (DATABASE_URL=embedded)', () => {
  let cwd: string;
  beforeAll(() => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-embedded-persist-'));
  });
  afterAll(() => {
    fs.rmSync(cwd, { recursive: true, force: true });
  });

  it(`keeps data under <cwd>/${PERSISTENT_DATA_DIR} across a restart, and guards the directory with a lock`, async () => {
    const first = await startPersistentEmbedded(cwd);
    const dataDir = path.join(cwd, PERSISTENT_DATA_DIR);
    try {
      expect(fs.existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
      expect(fs.readFileSync(`${dataDir}.lock`, 'utf8')).toBe(String(process.pid));
      // The same directory twice would corrupt it: refused while the first server runs.
      await expect(startPersistentEmbedded(cwd)).rejects.toThrow(ConnectionError);
      await expect(startPersistentEmbedded(cwd)).rejects.toThrow(/already open in this process/);

      const knex = knexFactory(knexConfig(first.connection, EMBEDDED_POOL_SIZE));
      await knex.raw('create extension if not exists vector with schema public');
      await knex.schema.createTable('kept', (table) => {
        table.text('name');
        table.specificType('embedding', 'vector(2)');
      });
      await knex('kept').insert({ name: 'survives', embedding: '[0.5,0.25]' });
      await knex.destroy();
    } finally {
      await first.stop();
    }
    expect(fs.existsSync(`${dataDir}.lock`)).toBe(false);

    const second = await startPersistentEmbedded(cwd);
    try {
      const knex = knexFactory(knexConfig(second.connection, EMBEDDED_POOL_SIZE));
      expect(await knex('kept').select('name', 'embedding')).toEqual([{ name: 'survives', embedding: '[0.5,0.25]' }]);
      await knex.destroy();
    } finally {
      await second.stop();
    }
  });

  it('takes over the lock of a process that is gone (a crash)', async () => {
    const dataDir = path.join(cwd, PERSISTENT_DATA_DIR);
    fs.mkdirSync(path.dirname(dataDir), { recursive: true });
    // A pid that cannot be running: above the kernel's pid_max.
    fs.writeFileSync(`${dataDir}.lock`, '99999999');
    const server = await startPersistentEmbedded(cwd);
    try {
      expect(fs.readFileSync(`${dataDir}.lock`, 'utf8')).toBe(String(process.pid));
    } finally {
      await server.stop();
    }
  });
});
