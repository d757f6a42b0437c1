/**
 * loadConfig: every variable of PRODUCT.md "Configuration", read from an explicit `env` and a
 * temporary working directory (never this machine's environment or .env).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONCURRENCY, loadConfig, type LoadConfigOptions } from '../../src/config/load-config.ts';
import { UsageError } from '../../src/errors.ts';

let cwd: string;

beforeEach(() => {
  // A project directory with the default migration trees, so only what a test changes can fail.
  cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-config-'));
  fs.mkdirSync(path.join(cwd, 'migrations/master'), { recursive: true });
  fs.mkdirSync(path.join(cwd, 'migrations/tenant'), { recursive: true });
});

afterEach(() => {
  fs.rmSync(cwd, { recursive: true, force: true });
});

const URL_ENV = { DATABASE_URL: 'postgres://app:pw@db.example:5433/appdb' };

function load(env: NodeJS.ProcessEnv, options: Omit<LoadConfigOptions, 'env' | 'cwd'> = {}) {
  return loadConfig({ env, cwd, ...options });
}

/** The UsageError `fn` throws (fails the test when it throws nothing or something else). */
function usageErrorOf(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    return error as UsageError;
  }
  throw new Error('expected a UsageError, but nothing was thrown');
}

function writeDotenv(text: string): void {
  fs.writeFileSync(path.join(cwd, '.env'), text);
}

describe('.env', () => {
  it('is read from the working directory', () => {
    writeDotenv('DATABASE_URL=postgres://fileuser@filehost:6000/filedb\nTENANT_CONCURRENCY=7\n');
    const config = load({});
    expect(config.connection).toMatchObject({ host: 'filehost', port: 6000, user: 'fileuser', database: 'filedb' });
    expect(config.tenantConcurrency).toBe(7);
  });

  it('never overrides a variable that is already set', () => {
    writeDotenv('DATABASE_URL=postgres://fileuser@filehost:6000/filedb\nTENANT_CONCURRENCY=7\n');
    const config = load({ DATABASE_URL: 'postgres://envuser@envhost:6001/envdb' });
    expect(config.connection).toMatchObject({ host: 'envhost', port: 6001, user: 'envuser', database: 'envdb' });
    // …while the variables the environment does not set still come from the file.
    expect(config.tenantConcurrency).toBe(7);
  });

  it('does not write into the env object or process.env', () => {
    writeDotenv('DB_HOST=filehost\nTM_TEST_ONLY_MARKER=1\n');
    const env = { TENANT_CONCURRENCY: '3' };
    load(env);
    expect(env).toEqual({ TENANT_CONCURRENCY: '3' });
    expect(process.env.TM_TEST_ONLY_MARKER).toBeUndefined();
  });

  it('is looked for in cwd, not elsewhere', () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-config-other-'));
    try {
      fs.writeFileSync(path.join(other, '.env'), 'DB_HOST=elsewhere\n');
      expect(load({}, { requireDatabase: false }).connection).toBeUndefined();
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('connection', () => {
  it('reads DATABASE_URL, decoding the password', () => {
    const config = load({ DATABASE_URL: 'postgres://app:p%40ss%2Fw@db.example:5433/appdb' });
    expect(config.connection).toEqual({ host: 'db.example', port: 5433, user: 'app', database: 'appdb', password: 'p@ss/w' });
    expect(config.embedded).toBe(false);
  });

  it('accepts postgresql:// and fills in the default port', () => {
    expect(load({ DATABASE_URL: 'postgresql://app@db.example/appdb' }).connection).toMatchObject({
      host: 'db.example',
      port: 5432,
      database: 'appdb',
    });
  });

  it('DATABASE_URL wins over the DB_* parts', () => {
    const config = load({
      ...URL_ENV,
      DB_HOST: 'parts-host',
      DB_PORT: '7000',
      DB_USER: 'parts-user',
      DB_PASSWORD: 'parts-pw',
      DB_NAME: 'parts-db',
    });
    expect(config.connection).toEqual({ host: 'db.example', port: 5433, user: 'app', database: 'appdb', password: 'pw' });
  });

  it('assembles the DB_* parts', () => {
    const config = load({ DB_HOST: 'h.example', DB_PORT: '6543', DB_USER: 'u', DB_PASSWORD: 'secret', DB_NAME: 'd' });
    expect(config.connection).toEqual({ host: 'h.example', port: 6543, user: 'u', database: 'd', password: 'secret' });
  });

  it('fills in defaults for the DB_* parts not given', () => {
    expect(load({ DB_HOST: 'h.example' }).connection).toEqual({
      host: 'h.example',
      port: 5432,
      user: 'postgres',
      database: 'postgres',
    });
    // The database defaults to the user's name, as with libpq.
    expect(load({ DB_USER: 'appuser' }).connection).toEqual({
      host: 'localhost',
      port: 5432,
      user: 'appuser',
      database: 'appuser',
    });
  });

  it.each([{ DB_SSL: 'maybe' }, { DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'nah' }, { DB_SSL: 'true', DB_SSL_CERT_PATH: 'no/such/ca.pem' }])(
    'DATABASE_URL=embedded still refuses a bad TLS setting (%o)',
    (tls) => {
      const error = usageErrorOf(() => load({ DATABASE_URL: 'embedded', ...tls }));
      expect(error.message).toMatch(/DB_SSL/);
    },
  );

  it('DATABASE_URL=embedded asks for the embedded server', () => {
    const config = load({ DATABASE_URL: 'embedded' });
    expect(config.embedded).toBe(true);
    expect(config.connection).toBeUndefined();
  });

  it('no database at all: a UsageError that names DATABASE_URL and DB_HOST', () => {
    const error = usageErrorOf(() => load({}));
    expect(error.message).toContain('DATABASE_URL');
    expect(error.message).toContain('DB_HOST');
  });

  it('no database is fine when none is required (migrate:make:*)', () => {
    const config = load({}, { requireDatabase: false });
    expect(config.connection).toBeUndefined();
    expect(config.embedded).toBe(false);
  });

  it.each(['abc', '54x32', '0', '70000', '-1', '5432.5'])('refuses DB_PORT=%s, naming DB_PORT', (port) => {
    const error = usageErrorOf(() => load({ DB_HOST: 'h', DB_PORT: port }));
    expect(error.message).toContain('DB_PORT');
    expect(error.message).toContain(port);
  });

  it.each([
    ['another scheme', 'mysql://app:s3cr3t-Pa55@db.example/appdb'],
    ['no scheme', 'app:s3cr3t-Pa55@db.example/appdb'],
    ['a port that is not a number', 'postgres://app:s3cr3t-Pa55@db.example:port/appdb'],
    ['a port out of range', 'postgres://app:s3cr3t-Pa55@db.example:99999/appdb'],
  ])('refuses a DATABASE_URL with %s, naming DATABASE_URL but not the password', (_case, url) => {
    const error = usageErrorOf(() => load({ DATABASE_URL: url }));
    expect(error.message).toContain('DATABASE_URL');
    expect(error.message).not.toContain('s3cr3t-Pa55');
  });
});

describe('TLS', () => {
  it('is not configured unless DB_SSL is set', () => {
    expect(load(URL_ENV).connection).not.toHaveProperty('ssl');
  });

  it.each(['true', 'TRUE', '1', 'yes', 'on'])('DB_SSL=%s turns TLS on, verifying the server by default', (value) => {
    expect(load({ ...URL_ENV, DB_SSL: value }).connection?.ssl).toEqual({ rejectUnauthorized: true });
  });

  it.each(['false', '0', 'no', 'off'])('DB_SSL=%s turns TLS off', (value) => {
    expect(load({ ...URL_ENV, DB_SSL: value }).connection?.ssl).toBe(false);
  });

  it('DB_SSL=false wins over sslmode in DATABASE_URL', () => {
    const url = 'postgres://app@db.example/appdb?sslmode=verify-full';
    expect(load({ DATABASE_URL: url }).connection?.ssl).toBeTruthy();
    expect(load({ DATABASE_URL: url, DB_SSL: 'false' }).connection?.ssl).toBe(false);
  });

  it('applies to the DB_* parts too', () => {
    expect(load({ DB_HOST: 'h', DB_SSL: 'true' }).connection?.ssl).toEqual({ rejectUnauthorized: true });
  });

  it('refuses a DB_SSL that is not a boolean, naming it', () => {
    const error = usageErrorOf(() => load({ ...URL_ENV, DB_SSL: 'maybe' }));
    expect(error.message).toContain('DB_SSL');
    expect(error.message).toContain('maybe');
  });

  it('DB_SSL_REJECT_UNAUTHORIZED=false turns verification off', () => {
    expect(load({ ...URL_ENV, DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'false' }).connection?.ssl).toEqual({
      rejectUnauthorized: false,
    });
  });

  it('refuses a DB_SSL_REJECT_UNAUTHORIZED that is not a boolean, naming it', () => {
    const error = usageErrorOf(() => load({ ...URL_ENV, DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'sometimes' }));
    expect(error.message).toContain('DB_SSL_REJECT_UNAUTHORIZED');
  });

  it('DB_SSL_CERT_PATH: reads the CA, relative to the working directory', () => {
    fs.mkdirSync(path.join(cwd, 'ssl'));
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB…test…\n-----END CERTIFICATE-----\n';
    fs.writeFileSync(path.join(cwd, 'ssl/ca.pem'), pem);
    const ssl = load({ ...URL_ENV, DB_SSL: 'true', DB_SSL_CERT_PATH: 'ssl/ca.pem' }).connection?.ssl;
    expect(ssl).toEqual({ rejectUnauthorized: true, ca: pem });
  });

  it('DB_SSL_CERT_PATH: accepts an absolute path', () => {
    const file = path.join(cwd, 'abs-ca.pem');
    fs.writeFileSync(file, 'PEM');
    expect(load({ ...URL_ENV, DB_SSL: 'true', DB_SSL_CERT_PATH: file }).connection?.ssl).toMatchObject({ ca: 'PEM' });
  });

  it.each([
    ['a missing file', 'ssl/missing-ca.pem'],
    ['a directory', '.'],
  ])('DB_SSL_CERT_PATH pointing at %s is a UsageError naming the variable and the path', (_case, certPath) => {
    const error = usageErrorOf(() => load({ ...URL_ENV, DB_SSL: 'true', DB_SSL_CERT_PATH: certPath }));
    expect(error.message).toContain('DB_SSL_CERT_PATH');
    expect(error.message).toContain(path.resolve(cwd, certPath));
  });
});

describe('migration directories', () => {
  it('default to migrations/master and migrations/tenant under the working directory', () => {
    const config = load(URL_ENV);
    expect(config.masterMigrationsDir).toBe(path.join(cwd, 'migrations/master'));
    expect(config.tenantMigrationsDir).toBe(path.join(cwd, 'migrations/tenant'));
  });

  it('resolve relative values against the working directory', () => {
    fs.mkdirSync(path.join(cwd, 'db/master'), { recursive: true });
    fs.mkdirSync(path.join(cwd, 'db/tenant'), { recursive: true });
    const config = load({ ...URL_ENV, MASTER_MIGRATIONS_DIR: 'db/master', TENANT_MIGRATIONS_DIR: './db/tenant' });
    expect(config.masterMigrationsDir).toBe(path.join(cwd, 'db/master'));
    expect(config.tenantMigrationsDir).toBe(path.join(cwd, 'db/tenant'));
  });

  it('keep absolute values', () => {
    const elsewhere = path.join(cwd, 'abs/tenant');
    fs.mkdirSync(elsewhere, { recursive: true });
    expect(load({ ...URL_ENV, TENANT_MIGRATIONS_DIR: elsewhere }).tenantMigrationsDir).toBe(elsewhere);
  });

  describe.each(['MASTER_MIGRATIONS_DIR', 'TENANT_MIGRATIONS_DIR'])('%s', (variable) => {
    it('missing (relative): a UsageError naming the variable and the resolved path', () => {
      const error = usageErrorOf(() => load({ ...URL_ENV, [variable]: 'no/such/dir' }));
      expect(error.message).toContain(variable);
      expect(error.message).toContain(path.join(cwd, 'no/such/dir'));
    });

    it('missing (absolute): a UsageError naming the variable and the path', () => {
      const missing = path.join(os.tmpdir(), 'tm-config-no-such-dir', variable);
      const error = usageErrorOf(() => load({ ...URL_ENV, [variable]: missing }));
      expect(error.message).toContain(variable);
      expect(error.message).toContain(missing);
    });

    it('a file, not a directory: a UsageError naming the variable', () => {
      fs.writeFileSync(path.join(cwd, 'not-a-dir'), '');
      const error = usageErrorOf(() => load({ ...URL_ENV, [variable]: 'not-a-dir' }));
      expect(error.message).toContain(variable);
    });

    it('the default directory missing: a UsageError naming the variable', () => {
      const tree = variable === 'MASTER_MIGRATIONS_DIR' ? 'master' : 'tenant';
      fs.rmSync(path.join(cwd, 'migrations', tree), { recursive: true });
      const error = usageErrorOf(() => load(URL_ENV));
      expect(error.message).toContain(variable);
      expect(error.message).toContain(path.join(cwd, 'migrations', tree));
    });
  });

  it('need not exist when requireMigrationDirs is false', () => {
    fs.rmSync(path.join(cwd, 'migrations'), { recursive: true });
    const config = load({ ...URL_ENV, MASTER_MIGRATIONS_DIR: 'later/master' }, { requireMigrationDirs: false });
    expect(config.masterMigrationsDir).toBe(path.join(cwd, 'later/master'));
    expect(config.tenantMigrationsDir).toBe(path.join(cwd, 'migrations/tenant'));
  });
});

describe('TENANT_CONCURRENCY', () => {
  it(`defaults to ${DEFAULT_CONCURRENCY}`, () => {
    expect(DEFAULT_CONCURRENCY).toBe(4);
    expect(load(URL_ENV).tenantConcurrency).toBe(4);
  });

  it('reads a whole number', () => {
    expect(load({ ...URL_ENV, TENANT_CONCURRENCY: '12' }).tenantConcurrency).toBe(12);
    expect(load({ ...URL_ENV, TENANT_CONCURRENCY: ' 2 ' }).tenantConcurrency).toBe(2);
  });

  it.each(['abc', '0', '-1', '1.5', '4x', '100000'])('refuses %s, naming TENANT_CONCURRENCY', (value) => {
    const error = usageErrorOf(() => load({ ...URL_ENV, TENANT_CONCURRENCY: value }));
    expect(error.message).toContain('TENANT_CONCURRENCY');
    expect(error.message).toContain(value);
  });
});

describe('DB_POOL_MAX', () => {
  it('is unset by default (the CLI then opens concurrency + 1 connections) and reads a whole number', () => {
    expect(load(URL_ENV).poolMax).toBeUndefined();
    expect(load({ ...URL_ENV, DB_POOL_MAX: '2' }).poolMax).toBe(2);
  });

  it('refuses a value that is not a whole number, naming DB_POOL_MAX', () => {
    expect(usageErrorOf(() => load({ ...URL_ENV, DB_POOL_MAX: 'many' })).message).toContain('DB_POOL_MAX');
  });
});

describe('TENANT_MIGRATE_FAST_PATH', () => {
  it('is on by default, and on/off in any case', () => {
    expect(load(URL_ENV).fastPath).toBe(true);
    expect(load({ ...URL_ENV, TENANT_MIGRATE_FAST_PATH: 'OFF' }).fastPath).toBe(false);
    expect(load({ ...URL_ENV, TENANT_MIGRATE_FAST_PATH: 'on' }).fastPath).toBe(true);
  });

  it('refuses anything else rather than guessing, naming the variable', () => {
    const error = usageErrorOf(() => load({ ...URL_ENV, TENANT_MIGRATE_FAST_PATH: 'of' }));
    expect(error.message).toContain('TENANT_MIGRATE_FAST_PATH');
    expect(error.message).toContain('"of"');
  });
});

describe('TENANT_MIGRATE_CITUS', () => {
  it('is auto by default, and auto/on/off in any case', () => {
    expect(load(URL_ENV).citus).toBe('auto');
    expect(load({ ...URL_ENV, TENANT_MIGRATE_CITUS: 'ON' }).citus).toBe('on');
    expect(load({ ...URL_ENV, TENANT_MIGRATE_CITUS: 'off' }).citus).toBe('off');
  });

  it('refuses anything else, naming the variable', () => {
    const error = usageErrorOf(() => load({ ...URL_ENV, TENANT_MIGRATE_CITUS: 'yes' }));
    expect(error.message).toContain('TENANT_MIGRATE_CITUS');
    expect(error.message).toContain('"yes"');
  });
});

describe('DB_SSL_CERT_PATH without DB_SSL', () => {
  it('is refused rather than silently connecting without TLS', () => {
    const error = usageErrorOf(() => load({ ...URL_ENV, DB_SSL_CERT_PATH: 'ssl/ca.pem' }));
    expect(error.message).toContain('DB_SSL_CERT_PATH');
    expect(error.message).toContain('DB_SSL=true');
  });
});

describe('Clerk variables', () => {
  it('reads CLERK_SECRET_KEY, CLERK_API_URL (trailing slash dropped) and CLERK_WEBHOOK_SIGNING_SECRET, also from .env', () => {
    fs.writeFileSync(path.join(cwd, '.env'), 'CLERK_WEBHOOK_SIGNING_SECRET=whsec_fromfile\n');
    expect(load({ ...URL_ENV, CLERK_SECRET_KEY: 'sk_test_1', CLERK_API_URL: 'http://127.0.0.1:4010/' }).clerk).toEqual({
      secretKey: 'sk_test_1',
      apiUrl: 'http://127.0.0.1:4010',
      webhookSigningSecret: 'whsec_fromfile',
    });
  });

  it('defaults to api.clerk.com with nothing set', () => {
    expect(load(URL_ENV).clerk).toEqual({ secretKey: undefined, apiUrl: 'https://api.clerk.com', webhookSigningSecret: undefined });
  });

  it('refuses a CLERK_API_URL that is not an http(s) URL, naming the variable', () => {
    expect(usageErrorOf(() => load({ ...URL_ENV, CLERK_API_URL: 'api.clerk.com' })).message).toContain('CLERK_API_URL');
    expect(usageErrorOf(() => load({ ...URL_ENV, CLERK_API_URL: 'ftp://api.clerk.com' })).message).toContain('CLERK_API_URL');
  });
});

describe('TENANT_BACKUP_DUMPER', () => {
  it('defaults to the catalog dumper; reads tool or pg_dump in any case', () => {
    expect(load(URL_ENV).backupDumper).toBe('tool');
    expect(load({ ...URL_ENV, TENANT_BACKUP_DUMPER: 'PG_DUMP' }).backupDumper).toBe('pg_dump');
    expect(load({ ...URL_ENV, TENANT_BACKUP_DUMPER: ' tool ' }).backupDumper).toBe('tool');
  });

  it('refuses anything else, naming the variable and the values it takes', () => {
    const error = usageErrorOf(() => load({ ...URL_ENV, TENANT_BACKUP_DUMPER: 'pgdump' }));
    expect(error.message).toContain('TENANT_BACKUP_DUMPER must be "tool"');
    expect(error.message).toContain('"pg_dump"');
  });
});
