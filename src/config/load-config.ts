/**
 * Configuration: read once from the environment (plus a `.env` that never overrides it), validated
 * up front so that a bad setting stops the run with exit 2 before anything touches the database.
 */
import { liveSettingsOf, type LiveSettings } from '../db/lock-settings.ts';
import fs from 'node:fs';
import path from 'node:path';
import dotenv from 'dotenv';
import { parse as parseConnectionString } from 'pg-connection-string';
import type { ConnectionOptions } from 'node:tls';
import { isCitusSetting, type CitusSetting } from '../citus/detect.ts';
import { DEFAULT_SCHEMAS_PER_CONNECTION } from '../db/recycle-connections.ts';
import { UsageError } from '../errors.ts';
import { DEFAULT_REGISTRY, parseRegistryTable, type RegistryTable } from '../tenants/registry-table.ts';
import { readRolesSettings, type RolesSettings } from '../roles/settings.ts';
import { backupDumperOf, type BackupDumper } from '../backup/dumper-setting.ts';

/** What a connection error may show: everything but the password. */
export interface ConnectionLabel {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** The node-postgres connection settings tenant-migrate connects with. */
export interface ConnectionSettings extends ConnectionLabel {
  password?: string;
  ssl?: false | ConnectionOptions;
}

export interface Config {
  /** `undefined` when `DATABASE_URL=embedded`: the caller starts the embedded server first. */
  connection: ConnectionSettings | undefined;
  /** True when `DATABASE_URL=embedded` asked for the persistent embedded PostgreSQL (PGlite). */
  embedded: boolean;
  masterMigrationsDir: string;
  tenantMigrationsDir: string;
  /** `MASTER_SEEDS_DIR` (default seeds/master); checked when seeding, not here. */
  masterSeedsDir: string;
  /** `TENANT_SEEDS_DIR` (default seeds/tenant). */
  tenantSeedsDir: string;
  /** `PG_BIN_DIR`: where pg_dump, pg_restore and psql are looked for before PATH. */
  pgBinDir: string | undefined;
  tenantConcurrency: number;
  /** Most connections the pool may open (`DB_POOL_MAX`); undefined = concurrency + 1. */
  poolMax: number | undefined;
  /** `TENANT_MIGRATE_FAST_PATH` (`on`, the default, or `off`): may the executor replay learned DDL. */
  fastPath: boolean;
  /** `TENANT_MIGRATE_CITUS` (`auto`, the default, `on` or `off`): distribute new tenant schemas on Citus. */
  citus: CitusSetting;
  /** The Clerk integration (src/clerk/): read here, required only by what uses it. */
  clerk: ClerkConfig;
  /** How long a query may wait for a pooled connection (`DB_ACQUIRE_TIMEOUT_MS`, default 60 s). */
  acquireTimeoutMs: number;
  /** The tenant registry (`TENANT_REGISTRY_TABLE`, default public.tenants). */
  registryTable: RegistryTable;
  /** `TENANT_ROLES`, `TENANT_APP_ROLE`, `TENANT_GROUP_ROLE` (src/roles/settings.ts). */
  roles: RolesSettings;
  /** Tenant schemas a pooled connection serves before it is closed (`DB_SCHEMAS_PER_CONNECTION`; 0 = never). */
  schemasPerConnection: number;
  /** `TENANT_LOCK_TIMEOUT`, `TENANT_LOCK_RETRIES`, `TENANT_STATEMENT_TIMEOUT` (db/lock-settings.ts). */
  live: LiveSettings;
  /** `TENANT_BACKUP_DUMPER` (`tool`, the default, or `pg_dump`): who writes deprovision's backups on a server. */
  backupDumper: BackupDumper;
}

export interface ClerkConfig {
  /** `CLERK_SECRET_KEY`: the Backend API key `sync:clerk` lists organisations with. */
  secretKey: string | undefined;
  /** `CLERK_API_URL`, default https://api.clerk.com. */
  apiUrl: string;
  /** `CLERK_WEBHOOK_SIGNING_SECRET` (whsec_…): verifies webhook deliveries. */
  webhookSigningSecret: string | undefined;
}

export const DEFAULT_CLERK_API_URL = 'https://api.clerk.com';

export interface LoadConfigOptions {
  /** Defaults to `process.env`. The object is read, never written. */
  env?: NodeJS.ProcessEnv;
  /** Where `.env` and relative directories are resolved. Defaults to `process.cwd()`. */
  cwd?: string;
  /** Skip the existence check of migration directories (e.g. for `status` of an empty project). */
  requireMigrationDirs?: boolean;
  /** Whether a database must be configured (false for `migrate:make:*`). Defaults to true. */
  requireDatabase?: boolean;
}

export const DEFAULT_CONCURRENCY = 4;
/** How long a connection attempt may take before it is reported as unreachable. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Knex's own default wait for a pooled connection. */
export const ACQUIRE_TIMEOUT_MS = 60_000;

/**
 * Loads and validates the configuration.
 *
 * @example
 *   const config = loadConfig(); // reads process.env and ./.env
 *   const config = loadConfig({ env: { DATABASE_URL: 'postgres://u@localhost/app' } });
 * @throws UsageError naming the variable or file that is wrong.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const cwd = options.cwd ?? process.cwd();
  const env = withDotenv(options.env ?? process.env, cwd);
  const requireDatabase = options.requireDatabase ?? true;

  const embedded = env.DATABASE_URL?.trim() === 'embedded';
  // The embedded server has no TLS, but a bad TLS setting is still a mistake worth stopping for.
  if (embedded) readSsl(env, cwd);
  const connection = embedded ? undefined : readConnection(env, cwd);
  if (!connection && !embedded && requireDatabase) {
    throw new UsageError(
      'No database configured: set DATABASE_URL (postgres://user:pass@host:port/db), or DB_HOST, DB_PORT, DB_USER, DB_PASSWORD and DB_NAME, in the environment or in .env (see .env.example).',
    );
  }

  const requireDirs = options.requireMigrationDirs ?? true;
  return {
    connection,
    embedded,
    masterMigrationsDir: readDirectory(env, cwd, 'MASTER_MIGRATIONS_DIR', 'migrations/master', requireDirs),
    tenantMigrationsDir: readDirectory(env, cwd, 'TENANT_MIGRATIONS_DIR', 'migrations/tenant', requireDirs),
    masterSeedsDir: readDirectory(env, cwd, 'MASTER_SEEDS_DIR', 'seeds/master', false),
    tenantSeedsDir: readDirectory(env, cwd, 'TENANT_SEEDS_DIR', 'seeds/tenant', false),
    pgBinDir: env.PG_BIN_DIR?.trim() ? path.resolve(cwd, env.PG_BIN_DIR.trim()) : undefined,
    tenantConcurrency: readPositiveInt(env, 'TENANT_CONCURRENCY', DEFAULT_CONCURRENCY),
    poolMax: env.DB_POOL_MAX?.trim() ? parseConcurrency(env.DB_POOL_MAX, 'DB_POOL_MAX') : undefined,
    fastPath: readOnOff(env, 'TENANT_MIGRATE_FAST_PATH', true),
    citus: readCitus(env),
    clerk: readClerk(env),
    acquireTimeoutMs: readMilliseconds(env, 'DB_ACQUIRE_TIMEOUT_MS', ACQUIRE_TIMEOUT_MS),
    registryTable: env.TENANT_REGISTRY_TABLE?.trim() ? parseRegistryTable(env.TENANT_REGISTRY_TABLE) : DEFAULT_REGISTRY,
    roles: readRolesSettings(env),
    schemasPerConnection: readSchemasPerConnection(env),
    live: liveSettingsOf({}, env),
    backupDumper: backupDumperOf(undefined, env),
  };
}

/** `DB_SCHEMAS_PER_CONNECTION`: a whole number, 0 (never recycle) up to 1,000,000. */
function readSchemasPerConnection(env: NodeJS.ProcessEnv): number {
  const raw = env.DB_SCHEMAS_PER_CONNECTION?.trim();
  if (!raw) return DEFAULT_SCHEMAS_PER_CONNECTION;
  if (!/^\d+$/.test(raw) || Number(raw) > 1_000_000) {
    throw new UsageError(
      `DB_SCHEMAS_PER_CONNECTION must be a whole number of tenant schemas a connection serves before it is closed (0 = never, default ${DEFAULT_SCHEMAS_PER_CONNECTION}), got "${raw}".`,
    );
  }
  return Number(raw);
}

function readClerk(env: NodeJS.ProcessEnv): ClerkConfig {
  const apiUrl = env.CLERK_API_URL?.trim() || DEFAULT_CLERK_API_URL;
  if (!URL.canParse(apiUrl) || !/^https?:$/.test(new URL(apiUrl).protocol)) {
    throw new UsageError(`CLERK_API_URL must be an http(s) URL such as ${DEFAULT_CLERK_API_URL}, got "${apiUrl}".`);
  }
  return {
    secretKey: env.CLERK_SECRET_KEY?.trim() || undefined,
    apiUrl: apiUrl.replace(/\/+$/, ''),
    webhookSigningSecret: env.CLERK_WEBHOOK_SIGNING_SECRET?.trim() || undefined,
  };
}

/** An `on`/`off` switch (any case); anything else is a mistake worth stopping for. */
function readOnOff(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const value = env[name]?.trim().toLowerCase();
  if (!value) return fallback;
  if (value === 'on' || value === 'off') return value === 'on';
  throw new UsageError(`${name} must be "on" or "off" (got ${JSON.stringify(env[name])}).`);
}

function readCitus(env: NodeJS.ProcessEnv): CitusSetting {
  const value = env.TENANT_MIGRATE_CITUS?.trim().toLowerCase();
  if (!value) return 'auto';
  if (isCitusSetting(value)) return value;
  throw new UsageError(`TENANT_MIGRATE_CITUS must be "auto", "on" or "off" (got ${JSON.stringify(env.TENANT_MIGRATE_CITUS)}).`);
}

/** The environment with `.env` underneath it: a variable already set always wins. */
function withDotenv(env: NodeJS.ProcessEnv, cwd: string): NodeJS.ProcessEnv {
  const file = path.join(cwd, '.env');
  if (!fs.existsSync(file)) return env;
  const fromFile = dotenv.parse(fs.readFileSync(file));
  return { ...fromFile, ...definedOnly(env) };
}

function definedOnly(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined));
}

function readConnection(env: NodeJS.ProcessEnv, cwd: string): ConnectionSettings | undefined {
  const ssl = readSsl(env, cwd);
  const url = env.DATABASE_URL?.trim();
  if (url) return { ...fromUrl(url), ...(ssl !== undefined ? { ssl } : {}) };

  const anyPart = ['DB_HOST', 'DB_PORT', 'DB_USER', 'DB_PASSWORD', 'DB_NAME'].some((name) => env[name]?.trim());
  if (!anyPart) return undefined;
  const user = env.DB_USER?.trim() || 'postgres';
  return {
    host: env.DB_HOST?.trim() || 'localhost',
    port: env.DB_PORT?.trim() ? parsePort(env.DB_PORT.trim(), 'DB_PORT') : 5432,
    user,
    database: env.DB_NAME?.trim() || user,
    ...(env.DB_PASSWORD ? { password: env.DB_PASSWORD } : {}),
    ...(ssl !== undefined ? { ssl } : {}),
  };
}

function fromUrl(url: string): ConnectionSettings {
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    throw new UsageError(
      'DATABASE_URL must look like postgres://user:pass@host:port/db (or be "embedded"); the value given does not start with postgres://.',
    );
  }
  let parsed: ReturnType<typeof parseConnectionString>;
  try {
    // new URL() rejects malformed values (bad port, stray characters) that the lenient parser accepts.
    new URL(url);
    parsed = parseConnectionString(url);
  } catch {
    throw new UsageError('DATABASE_URL is not a valid URL; expected postgres://user:pass@host:port/db.');
  }
  const user = parsed.user || 'postgres';
  const settings: ConnectionSettings = {
    host: parsed.host || 'localhost',
    port: parsed.port ? parsePort(parsed.port, 'DATABASE_URL') : 5432,
    user,
    database: parsed.database || user,
  };
  if (parsed.password) settings.password = parsed.password;
  // sslmode=require etc. in the URL is honoured unless DB_SSL says otherwise (readConnection merges).
  if (parsed.ssl) settings.ssl = typeof parsed.ssl === 'object' ? (parsed.ssl as ConnectionOptions) : {};
  return settings;
}

function parsePort(value: string, variable: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${variable}: the port must be a number from 1 to 65535, got "${value}".`);
  }
  return port;
}

function readSsl(env: NodeJS.ProcessEnv, cwd: string): ConnectionSettings['ssl'] | undefined {
  const enabled = readBoolean(env, 'DB_SSL');
  if (enabled === undefined) {
    // A CA file without DB_SSL would silently connect in plain text: say so instead.
    if (env.DB_SSL_CERT_PATH?.trim()) {
      throw new UsageError('DB_SSL_CERT_PATH is set but DB_SSL is not: set DB_SSL=true to connect with TLS (or remove DB_SSL_CERT_PATH).');
    }
    return undefined;
  }
  if (!enabled) return false;
  const rejectUnauthorized = readBoolean(env, 'DB_SSL_REJECT_UNAUTHORIZED') ?? true;
  const certPath = env.DB_SSL_CERT_PATH?.trim();
  const ssl: ConnectionOptions = { rejectUnauthorized };
  if (certPath) {
    const file = path.resolve(cwd, certPath);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
      throw new UsageError(`DB_SSL_CERT_PATH: no CA certificate file at ${file}.`);
    }
    ssl.ca = fs.readFileSync(file, 'utf8');
  }
  return ssl;
}

function readBoolean(env: NodeJS.ProcessEnv, variable: string): boolean | undefined {
  const raw = env[variable]?.trim().toLowerCase();
  if (!raw) return undefined;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new UsageError(`${variable} must be true or false, got "${env[variable]}".`);
}

function readDirectory(env: NodeJS.ProcessEnv, cwd: string, variable: string, fallback: string, mustExist: boolean): string {
  const configured = env[variable]?.trim();
  const dir = path.resolve(cwd, configured || fallback);
  if (mustExist && !(fs.existsSync(dir) && fs.statSync(dir).isDirectory())) {
    throw new UsageError(
      `${configured ? variable : `${variable} (default ${fallback})`}: the migrations directory ${dir} does not exist.`,
    );
  }
  return dir;
}

function readPositiveInt(env: NodeJS.ProcessEnv, variable: string, fallback: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  return parseConcurrency(raw, variable);
}

function readMilliseconds(env: NodeJS.ProcessEnv, variable: string, fallback: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 3_600_000) {
    throw new UsageError(`${variable} must be a whole number of milliseconds from 1 to 3600000, got "${raw}".`);
  }
  return n;
}

/** Parses a concurrency value (an env variable or `--concurrency`): a whole number from 1 to 256. */
export function parseConcurrency(raw: string, source: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(n) || n < 1 || n > 256) {
    throw new UsageError(`${source} must be a whole number from 1 to 256, got "${raw}".`);
  }
  return n;
}
