/**
 * openDatabase against a real server: it connects, and when it cannot, the ConnectionError says
 * where (host, port, database, user) and why, fast, and never shows the password (PRODUCT.md:
 * "Cannot connect … never the password").
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load-config.ts';
import { openDatabase } from '../../src/db/connection.ts';
import { ConnectionError } from '../../src/errors.ts';
import { quoteIdent, useFreshDatabase, withAdminClient } from '../support/database.ts';
import { freePort } from '../support/embedded-server.ts';

const PASSWORD = 's3cr3t-Pa55';

let cwd: string;
beforeAll(() => {
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-conn-'));
});
afterAll(() => {
  fs.rmSync(cwd, { recursive: true, force: true });
});

/** loadConfig from an explicit environment (this machine's DATABASE_URL/.env never count). */
function configFor(env: Record<string, string>) {
  return loadConfig({ env, cwd, requireMigrationDirs: false });
}

/** The ConnectionError openDatabase rejects with, and how long it took. */
async function failureOf(env: Record<string, string>): Promise<{ error: ConnectionError; ms: number }> {
  const started = Date.now();
  try {
    const db = await openDatabase(configFor(env));
    await db.close();
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectionError);
    return { error: error as ConnectionError, ms: Date.now() - started };
  }
  throw new Error('expected openDatabase to fail, but it connected');
}

/** Nothing that could be printed (message, stack, cause chain) contains `secret`. */
function expectNoSecret(error: Error, secret: string): void {
  expect(error.message).not.toContain(secret);
  expect(String(error.stack)).not.toContain(secret);
  expect(util.inspect(error, { depth: 10 })).not.toContain(secret);
}

describe('openDatabase', () => {
  const db = useFreshDatabase({ prefix: 'tm_conn' });

  it('connects to the test server and labels the connection without the password', async () => {
    const opened = await openDatabase(configFor({ DATABASE_URL: db.url }));
    try {
      const { rows } = await opened.knex.raw<{ rows: { db: string }[] }>('select current_database() as db');
      expect(rows[0]!.db).toBe(db.name);
      expect(opened.label).toEqual({
        host: db.connection.host,
        port: db.connection.port,
        database: db.name,
        user: db.connection.user,
      });
    } finally {
      await opened.close();
    }
  });

  it('a closed port: ConnectionError in seconds naming host, port, database and user, never the password', async () => {
    const port = await freePort(); // free, and nobody listens on it
    const { error, ms } = await failureOf({ DATABASE_URL: `postgres://tm_app:${PASSWORD}@127.0.0.1:${port}/tm_appdb` });
    expect(ms).toBeLessThan(4_000);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toContain('tm_appdb');
    expect(error.message).toContain('tm_app');
    expect(error.message).toMatch(/refused/i);
    expectNoSecret(error, PASSWORD);
  });

  it('a failed connect prints nothing itself (stdout stays clean for --json)', async () => {
    // knex logs "Acquire connection error: <stack>" with console.log unless given a logger.
    const log = vi.spyOn(console, 'log');
    const stdout = vi.spyOn(process.stdout, 'write');
    try {
      const port = await freePort();
      await failureOf({ DATABASE_URL: `postgres://tm_app:${PASSWORD}@127.0.0.1:${port}/tm_appdb` });
      expect(log).not.toHaveBeenCalled();
      expect(stdout).not.toHaveBeenCalled();
    } finally {
      log.mockRestore();
      stdout.mockRestore();
    }
  });

  it('the same through the DB_* parts', async () => {
    const port = await freePort();
    const { error } = await failureOf({
      DB_HOST: '127.0.0.1',
      DB_PORT: String(port),
      DB_USER: 'tm_parts_user',
      DB_PASSWORD: PASSWORD,
      DB_NAME: 'tm_parts_db',
    });
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toContain('tm_parts_db');
    expect(error.message).toContain('tm_parts_user');
    expectNoSecret(error, PASSWORD);
  });

  it('a server that accepts TCP but never answers: timed out after the connect timeout, not hanging', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const { error, ms } = await failureOf({ DATABASE_URL: `postgres://tm_app:${PASSWORD}@127.0.0.1:${port}/tm_appdb` });
      expect(ms).toBeLessThan(15_000);
      expect(error.message).toMatch(/timed out|timeout/i);
      expect(error.message).toContain(`127.0.0.1:${port}`);
      expectNoSecret(error, PASSWORD);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('a database that does not exist: ConnectionError naming it, with the server reason', async () => {
    const url = new URL(db.url);
    url.pathname = '/tm_no_such_database';
    const { error } = await failureOf({ DATABASE_URL: url.toString() });
    expect(error.message).toContain('tm_no_such_database');
    expect(error.message).toMatch(/does not exist/);
    if (db.connection.password) expectNoSecret(error, db.connection.password);
  });

  describe('a wrong password', () => {
    const role = `tm_pw_user_${crypto.randomBytes(3).toString('hex')}`;
    const rightPassword = `right-${crypto.randomBytes(4).toString('hex')}`;
    const wrongPassword = `wr0ng-${PASSWORD}`;
    const urlWith = (password: string) => {
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      return url.toString();
    };

    beforeAll(async () => {
      await withAdminClient(async (client) => {
        // The password is a literal here (CREATE ROLE takes no bind parameters); it is our own hex.
        await client.query(`create role ${quoteIdent(role)} login password '${rightPassword}'`);
      });
    });
    afterAll(async () => {
      await withAdminClient((client) => client.query(`drop role if exists ${quoteIdent(role)}`));
    });

    it('is refused with "login refused" and the server reason, never the password', async (context) => {
      // The right password works, so what follows fails because of the password alone.
      const opened = await openDatabase(configFor({ DATABASE_URL: urlWith(rightPassword) }));
      await opened.close();

      let failure: { error: ConnectionError; ms: number } | undefined;
      try {
        const wrong = await openDatabase(configFor({ DATABASE_URL: urlWith(wrongPassword) }));
        await wrong.close();
      } catch (error) {
        expect(error).toBeInstanceOf(ConnectionError);
        failure = { error: error as ConnectionError, ms: 0 };
      }
      if (!failure) {
        // Only a server of our own making is known to check passwords; TEST_DATABASE_URL may trust.
        expect(inject('serverKind'), 'the test server accepted a wrong password').toBe('env');
        context.skip('TEST_DATABASE_URL server trusts local logins (no password check): wrong-password case skipped');
        return;
      }
      const { error } = failure;
      expect(error.message).toMatch(/login refused|password authentication failed/);
      expect(error.message).toContain(role);
      expect(error.message).toContain(db.name);
      expect(error.message).toContain(`${db.connection.host}:${db.connection.port}`);
      expectNoSecret(error, wrongPassword);
      expectNoSecret(error, rightPassword);
    });
  });
});
