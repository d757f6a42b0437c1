/**
 * An embedded PostgreSQL with pgvector and nothing to install: PGlite (PostgreSQL compiled to
 * WebAssembly) plus `@electric-sql/pglite-pgvector`, served over TCP on 127.0.0.1 so that `pg` and
 * Knex talk to it exactly as they talk to a real server.
 *
 * ONE CLIENT CONNECTION AT A TIME. PGlite is a single PostgreSQL backend, i.e. one session. The
 * multiplexer of `@electric-sql/pglite-socket` (`maxConnections > 1`) only queues protocol messages
 * and keeps other clients out while one is inside an explicit transaction block; it is not safe for
 * several clients (tested through `pg` and Knex, see the report in the commit history):
 *  - an extended-protocol cycle (Parse, Bind, Execute, Sync: every Knex query with bindings) is
 *    not atomic: when a client's messages arrive in two TCP reads, another client's Parse can land
 *    in between and the first client's Bind executes the other client's statement;
 *  - session state is shared: a session advisory lock taken by one "connection" is granted to all
 *    others (no mutual exclusion), a session `SET` leaks into every other connection;
 *  - transactions are serialised globally anyway, so extra connections bring no throughput, and a
 *    query on a second connection while the first holds a transaction open hangs for ever.
 * With `maxConnections: 1` a second client is *refused*, which makes a Knex pool flaky whenever it
 * replaces a connection (the new one arrives before the server has let go of the old one). So this
 * module puts a small gate in front: it accepts every client but connects them to PGlite one after
 * the other, each with a clean session (`DISCARD ALL`) as on a real server; a client that cannot
 * have its turn within 2 s is refused with SQLSTATE 53300 and a message saying why. Callers must
 * therefore use a pool of {@link EMBEDDED_POOL_SIZE} connection, not open a second Knex instance
 * while the first still holds a connection, and never wait for a second connection while they hold
 * one (tenant concurrency above 1 only queues on the pool).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { ConnectionSettings } from '../config/load-config.ts';
import { ConnectionError } from '../errors.ts';
import { registerInProcessServer } from './in-process.ts';

/** How many pool connections a caller may hold at once against the embedded server: exactly one. */
export const EMBEDDED_POOL_SIZE = 1;

/** Where `DATABASE_URL=embedded` keeps its data, relative to the working directory. */
export const PERSISTENT_DATA_DIR = path.join('.tenant-migrate', 'pglite');

const HOST = '127.0.0.1';
/** How long a second connection waits for the first to close before it is refused (53300). */
const TURN_WAIT_MS = 2_000;
const USER = 'postgres';
const DATABASE = 'postgres';

export interface EmbeddedServer {
  /** Settings for `pg` / Knex (no password: the embedded server trusts local clients). */
  connection: ConnectionSettings;
  /** The same as a URL, e.g. `postgres://postgres@127.0.0.1:40123/postgres`. */
  url: string;
  /** Closes the listener, every client connection and PGlite; safe to call more than once. */
  stop(): Promise<void>;
  /**
   * A plain-SQL dump of one schema (pg_dump compiled to WebAssembly, `@electric-sql/pglite-tools`),
   * taken on PGlite itself: no pg_dump binary can reach it (PGlite is a newer PostgreSQL than most
   * clients, and one session). Call it while this process's client holds no open transaction.
   */
  dumpSchema(schema: string): Promise<string>;
}

export interface EmbeddedServerOptions {
  /** Directory for the database files; `undefined` keeps everything in memory. */
  dataDir?: string;
  /**
   * With a `dataDir`: how long to wait for another process that has the same directory open
   * (PGlite must never open one directory twice) before giving up. Default 60 s.
   */
  lockTimeoutMs?: number;
  /** Called once when we start waiting for such a process, with a message naming it. */
  onWait?: (message: string) => void;
}

/**
 * Starts PGlite with pgvector available (`CREATE EXTENSION vector` works) and serves it on
 * 127.0.0.1 on a free port.
 *
 * @example
 *   const server = await startEmbeddedServer();            // in memory
 *   const knex = knexFactory({ client: 'pg', connection: server.connection, pool: { min: 0, max: EMBEDDED_POOL_SIZE } });
 *   try { await knex.raw('select 1'); } finally { await knex.destroy(); await server.stop(); }
 */
export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const dataDir = options.dataDir === undefined ? undefined : path.resolve(options.dataDir);
  let releaseLock = () => {};
  if (dataDir) {
    fs.mkdirSync(dataDir, { recursive: true });
    releaseLock = await lockDirectory(`${dataDir}.lock`, options.lockTimeoutMs ?? 60_000, options.onWait);
  }
  let db: PGlite | undefined;
  let inner: PGLiteSocketServer | undefined;
  let gate: SerialGate | undefined;
  try {
    db = await PGlite.create({ ...(dataDir ? { dataDir } : {}), extensions: { vector } });
    // The inner server only ever sees the gate's one upstream connection.
    inner = new PGLiteSocketServer({ db, host: HOST, port: 0, maxConnections: 1 });
    await inner.start();
    gate = new SerialGate(db, inner, portOf(inner.getServerConn()));
    const port = await gate.listen();
    const connection: ConnectionSettings = { host: HOST, port, database: DATABASE, user: USER };
    const url = `postgres://${USER}@${HOST}:${port}/${DATABASE}`;
    const dump = (schema: string) => dumpSchema(db!, schema);
    const unregister = registerInProcessServer(port, { dumpSchema: dump });
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= shutdown(db!, inner!, gate!).finally(() => {
        unregister();
        releaseLock();
      }));
    return { connection, url, stop, dumpSchema: dump };
  } catch (error) {
    await shutdown(db, inner, gate).catch(() => {});
    releaseLock();
    throw new ConnectionError(`Could not start the embedded PostgreSQL (PGlite): ${(error as Error).message ?? error}`, {
      cause: error,
    });
  }
}

/**
 * The embedded server behind `DATABASE_URL=embedded`: data kept under
 * `<cwd>/.tenant-migrate/pglite` (created when missing), so it survives between runs.
 */
export function startPersistentEmbedded(cwd: string = process.cwd()): Promise<EmbeddedServer> {
  return startEmbeddedServer({ dataDir: path.join(cwd, PERSISTENT_DATA_DIR) });
}

/**
 * pg_dump runs in PGlite's one session — the session the served client uses too. It ends with that
 * session inside the read-only transaction it opened and with its own settings (search_path '', …),
 * as a real pg_dump ends by disconnecting; here the session goes on, so it is handed back clean:
 * the transaction rolled back and every setting reset. Session advisory locks stay (RESET ALL and
 * ROLLBACK keep them), so a caller's lock on the tenant holds from the dump to the drop.
 */
async function dumpSchema(db: PGlite, schema: string): Promise<string> {
  const { pgDump } = await import('@electric-sql/pglite-tools/pg_dump');
  try {
    const file = await pgDump({ pg: db, args: [`--schema=${schema}`, '--no-owner', '--no-privileges'] });
    return await file.text();
  } finally {
    await db.exec('ROLLBACK; RESET ALL');
  }
}

async function shutdown(db?: PGlite, inner?: PGLiteSocketServer, gate?: SerialGate): Promise<void> {
  // Cut clients first and let PGlite's socket handler roll back an open transaction, so nothing
  // touches the database after it is closed.
  await gate?.close();
  if (inner && db) await settle(db, inner);
  await inner?.stop();
  if (db && !db.closed) await db.close();
}

function portOf(serverConn: string): number {
  const port = Number(serverConn.slice(serverConn.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`unexpected PGlite socket address ${serverConn}`);
  return port;
}

/** Waits until PGlite's socket server has released its client and any open transaction is gone. */
async function settle(db: PGlite, inner: PGLiteSocketServer, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!db.closed && (inner.getStats().activeConnections > 0 || inner.getStats().queuedQueries > 0 || db.isInTransaction())) {
    if (Date.now() > deadline) {
      // Should not happen; a stuck transaction from a vanished client is rolled back by hand.
      if (db.isInTransaction()) await db.exec('ROLLBACK').catch(() => {});
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Accepts any number of TCP clients, and connects them one at a time (first come, first served)
 * to PGlite's socket server. A waiting client sees a slow connect, and after TURN_WAIT_MS a
 * PostgreSQL error (53300). Between two clients the session is reset, as a new backend would be.
 */
class SerialGate {
  private readonly server = net.createServer((socket) => this.admit(socket));
  private readonly waiting: net.Socket[] = [];
  private readonly open = new Set<net.Socket>();
  private readonly timers = new Map<net.Socket, NodeJS.Timeout>();
  private busy = false;
  private closed = false;

  constructor(
    private readonly db: PGlite,
    private readonly inner: PGLiteSocketServer,
    private readonly innerPort: number,
  ) {}

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, HOST, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  private admit(client: net.Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    client.pause();
    client.setNoDelay(true);
    client.on('error', () => {});
    this.open.add(client);
    client.once('close', () => {
      clearTimeout(this.timers.get(client));
      this.timers.delete(client);
      this.open.delete(client);
      const index = this.waiting.indexOf(client);
      if (index >= 0) this.waiting.splice(index, 1);
    });
    this.waiting.push(client);
    // A connection that cannot have its turn soon is refused with a PostgreSQL error that says why,
    // before pg's own connect timeout turns it into a vague "timeout exceeded".
    const timer = setTimeout(() => this.refuse(client), TURN_WAIT_MS);
    timer.unref();
    this.timers.set(client, timer);
    this.next();
  }

  private refuse(client: net.Socket): void {
    this.timers.delete(client);
    const index = this.waiting.indexOf(client);
    if (index < 0) return;
    this.waiting.splice(index, 1);
    client.end(
      errorResponse(
        '53300',
        'the embedded PostgreSQL (PGlite) serves one connection at a time, and another connection of this process is still open',
        `Use a pool of ${EMBEDDED_POOL_SIZE} connection (EMBEDDED_POOL_SIZE), destroy other Knex instances before opening a new one, and never wait for a second connection while holding one.`,
      ),
    );
  }

  private next(): void {
    if (this.busy || this.closed) return;
    const client = this.waiting.shift();
    if (!client) return;
    clearTimeout(this.timers.get(client));
    this.timers.delete(client);
    if (client.destroyed) return this.next();
    this.busy = true;

    const upstream = net.connect(this.innerPort, HOST);
    this.open.add(upstream);
    upstream.setNoDelay(true);
    upstream.on('error', () => {});
    const upstreamClosed = new Promise<void>((resolve) => upstream.once('close', () => resolve()));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      client.destroy();
      upstream.destroy();
      void upstreamClosed
        .then(() => {
          this.open.delete(upstream);
          return this.reset();
        })
        .catch(() => {})
        .finally(() => {
          this.busy = false;
          this.next();
        });
    };
    client.once('close', finish);
    upstream.once('close', finish);
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  /** After a client left: wait for PGlite to let go of it, then give the next one a fresh session. */
  private async reset(): Promise<void> {
    if (this.closed) return;
    await settle(this.db, this.inner);
    if (this.closed || this.db.closed) return;
    // Releases session advisory locks, SET values, prepared statements and temp tables.
    await this.db.exec('DISCARD ALL').catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const socket of this.waiting.splice(0)) socket.destroy();
    for (const socket of this.open) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A PostgreSQL ErrorResponse message (severity FATAL), as a server sends before closing. */
function errorResponse(code: string, message: string, hint: string): Buffer {
  const field = (type: string, value: string) => Buffer.concat([Buffer.from(type), Buffer.from(value, 'utf8'), Buffer.from([0])]);
  const body = Buffer.concat([
    field('S', 'FATAL'),
    field('V', 'FATAL'),
    field('C', code),
    field('M', message),
    field('H', hint),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/**
 * A lock file next to the data directory holding our pid: PGlite would corrupt a directory that
 * two processes open at once. A file whose process is gone (a crash) is taken over.
 */
async function lockDirectory(
  lockPath: string,
  timeoutMs: number,
  onWait?: (message: string) => void,
): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  for (;;) {
    try {
      fs.writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (fs.readFileSync(lockPath, 'utf8').trim() === String(process.pid)) fs.unlinkSync(lockPath);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readPid(lockPath);
    if (holder === process.pid) {
      throw new ConnectionError(
        `The embedded database ${dataDirOf(lockPath)} is already open in this process; stop that server before starting another on the same directory.`,
      );
    }
    if (holder === undefined ? !isFresh(lockPath) : !isAlive(holder)) {
      // Left behind by a process that is gone (a crash): take it over.
      fs.rmSync(lockPath, { force: true });
      continue;
    }
    const who = holder === undefined ? 'another process' : `another tenant-migrate process (pid ${holder})`;
    if (Date.now() >= deadline) {
      throw new ConnectionError(
        `The embedded database ${dataDirOf(lockPath)} is in use by ${who}; gave up waiting after ${(timeoutMs / 1000).toFixed(timeoutMs < 10_000 ? 1 : 0)}s. If no such process runs, delete ${lockPath}.`,
      );
    }
    if (!warned) {
      warned = true;
      onWait?.(`The embedded database ${dataDirOf(lockPath)} is in use by ${who}; waiting for it to finish.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function dataDirOf(lockPath: string): string {
  return lockPath.replace(/\.lock$/, '');
}

/** A lock file without a pid yet is being written right now, unless it is old. */
function isFresh(file: string): boolean {
  try {
    return Date.now() - fs.statSync(file).mtimeMs < 5_000;
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
