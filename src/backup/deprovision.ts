/**
 * `deprovision:tenant`: removes orgs — each with a verified backup first, unless `noBackup`. For
 * each org, under its advisory lock (held by a pinned session for the whole job, so no migration of
 * the tenant runs between the dump and the drop): pg_dump the schema (custom format), check the
 * dump reads back (`pg_restore --list` finds the schema), write the manifest, and only then drop
 * the schema and delete the registry row in ONE transaction. A dump that fails or does not verify
 * leaves the tenant untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { ConnectionSettings } from '../config/load-config.ts';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { UsageError } from '../errors.ts';
import { describeError } from '../migration/describe-error.ts';
import { printableOrgId, validateOrgIds } from '../tenants/naming.ts';
import { registryOf } from '../tenants/options.ts';
import type { TenantRecord } from '../tenants/registry.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { selectTenants } from '../tenants/select-tenants.ts';
import { fileSafeOrgId, sha256Of, type BackupManifest } from './manifest.ts';
import { findTool, libpqEnvironment, runTool } from './pg-tools.ts';

export interface DeprovisionOptions {
  /** Where dumps and manifests go (created when missing). Required unless `noBackup`. */
  backupDir?: string;
  /** Drop without a backup — the data is gone for good. */
  noBackup?: boolean;
  /** The connection pg_dump uses (the CLI passes the configured one). Required with a backup. */
  connection?: ConnectionSettings;
  /** Where pg_dump and pg_restore are looked for first (`PG_BIN_DIR`), before PATH. */
  pgBinDir?: string;
  /** pg_dump's --lock-wait-timeout: how long it waits for a table a transaction holds. Default 60 s. */
  lockWaitTimeoutMs?: number;
  registry?: RegistryTable;
  onTenantDone?(result: DeprovisionedTenant): void;
}

export interface DeprovisionedTenant {
  orgId: string;
  schema: string;
  status: 'deprovisioned' | 'failed';
  /** The manifest written (absolute path), with a backup. */
  manifest?: string;
  dumpSize?: number;
  error?: string;
  ms: number;
}

export interface DeprovisionResult {
  command: 'deprovision:tenant';
  ok: boolean;
  backup: boolean;
  tenants: DeprovisionedTenant[];
  ms: number;
}

/**
 * @example
 *   const result = await deprovisionTenant(knex, ['org_2abc'], { backupDir: 'backups', connection });
 *   result.tenants[0].manifest; // …/org_2abc__tid_…__20261124T101500Z.json
 * @throws UsageError (nothing changed) for an unregistered org, no backup dir without noBackup, or
 *   pg_dump/pg_restore missing or older than the server.
 */
export async function deprovisionTenant(knex: Knex, orgIds: readonly string[], options: DeprovisionOptions): Promise<DeprovisionResult> {
  const started = performance.now();
  const wanted = validateOrgIds(orgIds);
  if (!options.noBackup && !options.backupDir) {
    throw new UsageError('deprovision:tenant needs --backup-dir <dir> (a verified pg_dump of each schema is taken first), or --no-backup to drop the data for good. Nothing was changed.');
  }
  if (options.noBackup && options.backupDir) throw new UsageError('--backup-dir and --no-backup contradict each other: choose one. Nothing was changed.');
  const registry = registryOf(options);
  const tenants = await selectTenants(knex, wanted, registry); // exit 2 for an org that is not registered
  const backup = options.noBackup ? undefined : await prepareBackup(knex, options);

  const results: DeprovisionedTenant[] = [];
  for (const tenant of tenants) {
    const result = await deprovisionOne(knex, registry, tenant, backup);
    options.onTenantDone?.(result);
    results.push(result);
  }
  if (backup) backup.cleanup();
  return { command: 'deprovision:tenant', ok: results.every((r) => r.status === 'deprovisioned'), backup: Boolean(backup), tenants: results, ms: elapsed(started) };
}

interface Backup {
  dir: string;
  dump: Awaited<ReturnType<typeof findTool>>;
  restore: Awaited<ReturnType<typeof findTool>>;
  env: NodeJS.ProcessEnv;
  serverVersion: string;
  lockWaitTimeoutMs: number;
  cleanup(): void;
}

async function prepareBackup(knex: Knex, options: DeprovisionOptions): Promise<Backup> {
  if (!options.connection) {
    throw new UsageError('A backup needs a real PostgreSQL server that pg_dump can reach; the embedded server (DATABASE_URL=embedded, PGlite) cannot be dumped. Use --no-backup there, or a server. Nothing was changed.');
  }
  const { rows } = await knex.raw<{ rows: { num: string; version: string }[] }>("select current_setting('server_version_num') as num, current_setting('server_version') as version");
  const serverMajor = Math.floor(Number(rows[0]!.num) / 10000);
  const [dump, restore] = [await findTool('pg_dump', serverMajor, options.pgBinDir), await findTool('pg_restore', serverMajor, options.pgBinDir)];
  const dir = path.resolve(options.backupDir!);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (error) {
    throw new UsageError(`--backup-dir ${dir} cannot be created or written (${(error as Error).message}). Nothing was changed.`);
  }
  const { env, cleanup } = libpqEnvironment(options.connection);
  return { dir, dump, restore, env, serverVersion: rows[0]!.version, lockWaitTimeoutMs: options.lockWaitTimeoutMs ?? 60_000, cleanup };
}

async function deprovisionOne(knex: Knex, registry: RegistryTable, tenant: TenantRecord, backup: Backup | undefined): Promise<DeprovisionedTenant> {
  const started = performance.now();
  const base = { orgId: tenant.orgId, schema: tenant.schema };
  const connection: unknown = await knex.client.acquireConnection();
  const files: string[] = [];
  try {
    // A session lock on a connection of our own: a migration of this tenant waits from the dump to the drop.
    await knex.raw('select pg_advisory_lock(?, ?)', [...schemaLockKey(tenant.schema)]).connection(connection);
    let manifestFile: string | undefined;
    let dumpSize: number | undefined;
    if (backup) {
      ({ manifestFile, dumpSize } = await dumpAndVerify(knex, connection, registry, tenant, backup, files));
    }
    await knex.transaction(
      async (trx) => {
        await trx.raw('drop schema if exists ?? cascade', [tenant.schema]);
        await trx(registry.table).withSchema(registry.schema).where({ schema_name: tenant.schema }).delete();
      },
      { isolationLevel: 'read committed', connection },
    );
    return { ...base, status: 'deprovisioned', ...(manifestFile ? { manifest: manifestFile, dumpSize } : {}), ms: elapsed(started) };
  } catch (error) {
    // Nothing was dropped: a half-written backup is removed, so the directory holds only good ones.
    for (const file of files) fs.rmSync(file, { force: true });
    return { ...base, status: 'failed', error: `${printableOrgId(tenant.orgId)} (${tenant.schema}): ${describeError(error)}`, ms: elapsed(started) };
  } finally {
    await knex.raw('select pg_advisory_unlock(?, ?)', [...schemaLockKey(tenant.schema)]).connection(connection).catch(() => {});
    await knex.client.releaseConnection(connection);
  }
}

async function dumpAndVerify(
  knex: Knex,
  connection: unknown,
  registry: RegistryTable,
  tenant: TenantRecord,
  backup: Backup,
  files: string[],
): Promise<{ manifestFile: string; dumpSize: number }> {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const name = `${fileSafeOrgId(tenant.orgId)}__${tenant.schema}__${stamp}`;
  const dumpFile = path.join(backup.dir, `${name}.dump`);
  const manifestFile = path.join(backup.dir, `${name}.json`);
  files.push(dumpFile, manifestFile);
  // The state the dump holds, read under the lock that keeps it so.
  const [row] = (await knex(registry.table).withSchema(registry.schema).where({ schema_name: tenant.schema }).select('migration_version', 'migration_count').connection(connection)) as {
    migration_version: string | null;
    migration_count: number;
  }[];
  await runTool(
    backup.dump,
    ['--format=custom', `--schema=${tenant.schema}`, `--file=${dumpFile}`, `--lock-wait-timeout=${backup.lockWaitTimeoutMs}`, '--no-password'],
    backup.env,
  );
  const listing = await runTool(backup.restore, ['--list', dumpFile], backup.env);
  if (!new RegExp(`\\bSCHEMA - ${tenant.schema}\\b`).test(listing)) {
    throw new Error(`the dump ${dumpFile} does not read back with its schema (pg_restore --list); nothing was dropped`);
  }
  const dumpSize = fs.statSync(dumpFile).size;
  const manifest: BackupManifest = {
    orgId: tenant.orgId,
    schema: tenant.schema,
    newestMigration: row?.migration_version ?? null,
    migrationCount: row?.migration_count ?? 0,
    serverVersion: backup.serverVersion,
    pgDumpVersion: backup.dump.version,
    format: 'custom',
    dumpFile: path.basename(dumpFile),
    dumpSize,
    sha256: await sha256Of(dumpFile),
    createdAt: new Date().toISOString(),
  };
  fs.writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  return { manifestFile, dumpSize };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
