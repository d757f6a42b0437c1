/**
 * TLS for real: a separate embedded PostgreSQL with `ssl=on`, its certificate signed by a CA made
 * at test time with openssl (plus an unrelated CA), reached through loadConfig + openDatabase the
 * way the CLI does: DB_SSL, DB_SSL_CERT_PATH, DB_SSL_REJECT_UNAUTHORIZED (PRODUCT.md).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load-config.ts';
import { openDatabase } from '../../src/db/connection.ts';
import { ConnectionError } from '../../src/errors.ts';
import { makeServerTempDir, startEmbeddedServer, type EmbeddedServer } from '../support/embedded-server.ts';

let certDir: string | undefined;
let server: EmbeddedServer | undefined;
let caFile: string;
let otherCaFile: string;

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new Error('tls.test.ts needs the `openssl` command to make its test certificates; install OpenSSL.');
    }
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`);
  }
}

/** A CA (self-signed, may sign), written as <name>.crt / <name>.key in `dir`. */
function makeCa(dir: string, name: string): void {
  openssl(
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=tenant-migrate test ${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
}

/** A server certificate for localhost and 127.0.0.1, signed by the CA `ca`. */
function makeServerCert(dir: string, ca: string): void {
  openssl(
    [
      'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost',
    ],
    dir,
  );
  fs.writeFileSync(
    path.join(dir, 'server.ext'),
    [
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
    ].join('\n'),
  );
  openssl(
    [
      'x509', '-req', '-in', 'server.csr', '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', '4242',
      '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt',
    ],
    dir,
  );
}

beforeAll(async () => {
  certDir = makeServerTempDir('tm-tls-certs');
  makeCa(certDir, 'ca');
  makeCa(certDir, 'other-ca');
  makeServerCert(certDir, 'ca');
  caFile = path.join(certDir, 'ca.crt');
  otherCaFile = path.join(certDir, 'other-ca.crt');
  const keyFile = path.join(certDir, 'server.key');
  // PostgreSQL refuses a key others can read, or one owned by a user other than itself (or root
  // with 0640); the server runs as `postgres` when we are root.
  fs.chmodSync(keyFile, 0o600);
  fs.chmodSync(path.join(certDir, 'server.crt'), 0o644);

  server = await startEmbeddedServer({
    name: 'tm-tls-pg',
    postgresFlags: [
      '-c', 'ssl=on',
      '-c', `ssl_cert_file=${path.join(certDir, 'server.crt')}`,
      '-c', `ssl_key_file=${keyFile}`,
    ],
    beforeStart: ({ owner }) => {
      if (owner) fs.chownSync(keyFile, owner.uid, owner.gid);
    },
  });
});

afterAll(async () => {
  try {
    await server?.stop();
  } finally {
    if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
  }
});

/** Connects through loadConfig + openDatabase and answers whether the session is encrypted. */
async function sessionIsEncrypted(env: Record<string, string>): Promise<boolean> {
  const config = loadConfig({ env, cwd: certDir!, requireMigrationDirs: false });
  const db = await openDatabase(config);
  try {
    const { rows } = await db.knex.raw<{ rows: { ssl: boolean }[] }>(
      'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
    );
    return rows[0]!.ssl;
  } finally {
    await db.close();
  }
}

async function refusal(env: Record<string, string>): Promise<ConnectionError> {
  try {
    await sessionIsEncrypted(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectionError);
    return error as ConnectionError;
  }
  throw new Error('expected the connection to be refused, but it succeeded');
}

describe('TLS (DB_SSL*)', () => {
  const parts = (host = '127.0.0.1') => ({
    DB_HOST: host,
    DB_PORT: String(server!.port),
    DB_USER: server!.user,
    DB_PASSWORD: server!.password,
    DB_NAME: 'postgres',
  });

  it('without DB_SSL the session is not encrypted (so the checks below mean something)', async () => {
    expect(await sessionIsEncrypted(parts())).toBe(false);
  });

  it.each(['127.0.0.1', 'localhost'])('DB_SSL=true + the right CA: connects to %s and verifies the server', async (host) => {
    expect(await sessionIsEncrypted({ ...parts(host), DB_SSL: 'true', DB_SSL_CERT_PATH: caFile })).toBe(true);
  });

  it('the same with DATABASE_URL and a CA path relative to the working directory', async () => {
    const url = `postgres://${server!.user}:${encodeURIComponent(server!.password)}@127.0.0.1:${server!.port}/postgres`;
    expect(await sessionIsEncrypted({ DATABASE_URL: url, DB_SSL: 'true', DB_SSL_CERT_PATH: 'ca.crt' })).toBe(true);
  });

  it('a different CA: refused with a ConnectionError about the certificate', async () => {
    const error = await refusal({ ...parts(), DB_SSL: 'true', DB_SSL_CERT_PATH: otherCaFile });
    expect(error.message).toMatch(/certificate/i);
    expect(error.message).toContain(`127.0.0.1:${server!.port}`);
    expect(error.message).not.toContain(server!.password);
  });

  it('DB_SSL=true verifies by default: no CA given, the test CA is not trusted, refused', async () => {
    const error = await refusal({ ...parts(), DB_SSL: 'true' });
    expect(error.message).toMatch(/certificate/i);
  });

  it('DB_SSL_REJECT_UNAUTHORIZED=false: encrypted without verification (no CA, or the wrong one)', async () => {
    expect(await sessionIsEncrypted({ ...parts(), DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'false' })).toBe(true);
    expect(
      await sessionIsEncrypted({
        ...parts(),
        DB_SSL: 'true',
        DB_SSL_REJECT_UNAUTHORIZED: 'false',
        DB_SSL_CERT_PATH: otherCaFile,
      }),
    ).toBe(true);
  });
});
