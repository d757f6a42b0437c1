/**
 * pg_dump, pg_restore and psql for backups: found in PG_BIN_DIR, then on PATH, and checked to be at
 * least the server's major version (an older pg_dump refuses a newer server, and an older
 * pg_restore cannot read a newer dump). The connection travels in the child's environment
 * (PGHOST, PGPASSWORD, …): never a password on a command line or in a process listing.
 */
import { liveSettingsOf, pgOptionsOf, type LiveSettings } from '../db/lock-settings.ts';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ConnectionSettings } from '../config/load-config.ts';
import { UsageError } from '../errors.ts';

const run = promisify(execFile);

export type PgTool = 'pg_dump' | 'pg_restore' | 'psql';

export interface FoundTool {
  path: string;
  major: number;
  version: string;
}

/** What to install for a server's major version, per platform. */
export function installHint(serverMajor: number): string {
  return (
    `install the PostgreSQL ${serverMajor} client tools — Debian/Ubuntu: apt install postgresql-client-${serverMajor} (PGDG repository for versions newer than the distribution's); ` +
    `RHEL/Fedora: dnf install postgresql${serverMajor}; macOS: brew install postgresql@${serverMajor}; ` +
    `or point PG_BIN_DIR at a directory holding pg_dump, pg_restore and psql of version ${serverMajor} or newer`
  );
}

/**
 * @throws UsageError (exit 2, nothing done) naming the tool, the versions and what to install.
 */
export async function findTool(tool: PgTool, serverMajor: number, pgBinDir?: string): Promise<FoundTool> {
  const candidates = [
    ...(pgBinDir ? [path.join(pgBinDir, tool)] : []),
    ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, tool)),
  ];
  let tooOld: FoundTool | undefined;
  for (const candidate of candidates) {
    if (!isExecutable(candidate)) continue;
    const found = await versionOf(candidate);
    if (!found) continue;
    if (found.major >= serverMajor) return found;
    tooOld ??= found;
    if (pgBinDir && candidate.startsWith(pgBinDir)) break; // PG_BIN_DIR was asked for: do not look past it
  }
  if (tooOld) {
    throw new UsageError(`${tool} ${tooOld.version} (${tooOld.path}) is older than the server (PostgreSQL ${serverMajor}): ${installHint(serverMajor)}. Nothing was changed.`);
  }
  throw new UsageError(`${tool} was not found (PG_BIN_DIR${pgBinDir ? `=${pgBinDir}` : ' is not set'}, then PATH): ${installHint(serverMajor)}. Nothing was changed.`);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

async function versionOf(file: string): Promise<FoundTool | undefined> {
  try {
    const { stdout } = await run(file, ['--version'], { timeout: 10_000 });
    // "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(stdout);
    if (!match) return undefined;
    return { path: file, major: Number(match[1]), version: match[2] ? `${match[1]}.${match[2]}` : match[1]! };
  } catch {
    return undefined;
  }
}

/**
 * The libpq environment for a child: host, port, user, database, password and TLS mode — no
 * argument carries them. A CA certificate given as DB_SSL_CERT_PATH travels as a private temporary
 * file (PGSSLROOTCERT); call `cleanup` when the children are done.
 */
export function libpqEnvironment(
  connection: ConnectionSettings,
  base: NodeJS.ProcessEnv = process.env,
  live: Pick<LiveSettings, 'lockTimeoutMs' | 'statementTimeoutMs'> = liveSettingsOf({}, base),
): { env: NodeJS.ProcessEnv; cleanup(): void } {
  const env: NodeJS.ProcessEnv = { ...base, PGHOST: connection.host, PGPORT: String(connection.port), PGUSER: connection.user, PGDATABASE: connection.database };
  for (const name of ['PGPASSWORD', 'PGPASSFILE', 'PGSERVICE', 'DATABASE_URL', 'PGOPTIONS']) delete env[name];
  // Like every connection of the tool: named, and its table locks wait at most the lock timeout
  // (pg_dump's ACCESS SHARE locks would otherwise queue the application behind a migration's).
  env.PGAPPNAME = 'tenant-migrate';
  env.PGOPTIONS = pgOptionsOf(live, undefined);
  if (connection.password !== undefined) env.PGPASSWORD = connection.password;
  let dir: string | undefined;
  if (connection.ssl) {
    env.PGSSLMODE = connection.ssl.rejectUnauthorized === false ? 'require' : 'verify-full';
    const ca = connection.ssl.ca;
    if (typeof ca === 'string') {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-migrate-ca-'));
      env.PGSSLROOTCERT = path.join(dir, 'root.crt');
      fs.writeFileSync(env.PGSSLROOTCERT, ca, { mode: 0o600 });
    } else if (env.PGSSLMODE === 'verify-full') {
      env.PGSSLROOTCERT = 'system';
    }
  } else {
    env.PGSSLMODE = 'disable';
  }
  return { env, cleanup: () => dir && fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a tool to completion; rejects with its stderr (first lines) when it exits non-zero. */
export function runTool(tool: FoundTool, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool.path, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${path.basename(tool.path)} exited with ${code}: ${stderr.trim().split('\n').slice(0, 5).join(' / ') || 'no message'}`));
    });
  });
}
