/**
 * `deprovision:tenant`: removes orgs — each with a verified backup first, unless `noBackup`. For
 * each org, under its advisory lock (held by a pinned session for the whole job, so no migration of
 * the tenant runs between the dump and the drop): dump the schema, check the dump reads back, write
 * the manifest, and only then drop the schema and delete the registry row in ONE transaction. A
 * dump that fails or does not verify leaves the tenant untouched.
 *
 * Three dumpers. On a server, by default (TENANT_BACKUP_DUMPER=tool) the catalog dumper
 * (schema-dump.ts: plain SQL with COPY data, from the schema's own catalog rows only — pg_dump reads
 * the whole catalog, 58 s per dump at 36,000 tenants), verified by reading it back
 * (schema-dump-verify.ts); a schema holding what it does not write goes to pg_dump, and the manifest
 * says why. With TENANT_BACKUP_DUMPER=pg_dump: pg_dump (custom format, verified with `pg_restore
 * --list`). For PGlite, which no pg_dump binary can reach, the embedded server's own (plain SQL
 * from pg_dump compiled to WebAssembly, verified by PostgreSQL's parser).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { poolSizeOf } from '../db/connection.ts';
import type { ConnectionSettings } from '../config/load-config.ts';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { quoteIdentifier } from '../db/quote.ts';
import { UsageError } from '../errors.ts';
import { parseSql } from '../db/parse-sql.ts';
import { describeError } from '../migration/describe-error.ts';
import { printableOrgId, validateOrgIds } from '../tenants/naming.ts';
import { registryOf } from '../tenants/options.ts';
import type { TenantRecord } from '../tenants/registry.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { selectTenants } from '../tenants/select-tenants.ts';
import { fileSafeOrgId, sha256Of, type BackupManifest } from './manifest.ts';
import { dropRoleOfSchema } from '../roles/tenant-role.ts';
import { findTool, libpqEnvironment, runTool, type FoundTool } from './pg-tools.ts';
import type pg from 'pg';
import { dumpSchemaToFile } from './schema-dump.ts';
import { backupDumperOf, type BackupDumper } from './dumper-setting.ts';
import { verifySchemaDump } from './schema-dump-verify.ts';
import { liveSettingsOf, timeoutsSql, type LiveOptions, type LiveSettings } from '../db/lock-settings.ts';

export interface DeprovisionOptions extends LiveOptions {
  /** Where dumps and manifests go (created when missing). Required unless `noBackup`. */
  backupDir?: string;
  /** Drop without a backup — the data is gone for good. */
  noBackup?: boolean;
  /** The connection pg_dump uses (the CLI passes the configured one). A backup needs it or `dumpSchema`. */
  connection?: ConnectionSettings;
  /**
   * An in-process dumper returning a plain-SQL dump of one schema — the embedded server's
   * (`Database.dumpSchema`). Used instead of pg_dump when given.
   */
  dumpSchema?(schema: string): Promise<string>;
  /** Where pg_dump and pg_restore are looked for first (`PG_BIN_DIR`), before PATH. */
  pgBinDir?: string;
  /**
   * Who writes the backup on a server: `tool` (default; TENANT_BACKUP_DUMPER), tenant-migrate's
   * catalog dumper (schema-dump.ts: reads only the schema's own catalog rows; falls back to pg_dump
   * for what it does not write), or `pg_dump` (custom format).
   */
  dumper?: BackupDumper;
  /** How long a dump waits for a table a transaction holds (pg_dump's --lock-wait-timeout). Default 60 s. */
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
  /**
   * The catalog dumper was asked for, but the schema holds what it does not write (these): pg_dump
   * wrote the backup (custom format) instead.
   */
  pgDumpFallback?: string[];
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
    throw new UsageError('deprovision:tenant needs --backup-dir <dir> (a verified dump of each schema is taken first), or --no-backup to drop the data for good. Nothing was changed.');
  }
  if (options.noBackup && options.backupDir) throw new UsageError('--backup-dir and --no-backup contradict each other: choose one. Nothing was changed.');
  const registry = registryOf(options);
  const tenants = await selectTenants(knex, wanted, registry); // exit 2 for an org that is not registered
  const backup = options.noBackup ? undefined : await prepareBackup(knex, options);

  const results: DeprovisionedTenant[] = [];
  for (const tenant of tenants) {
    const result = await deprovisionOne(knex, registry, tenant, backup, liveSettingsOf(options));
    options.onTenantDone?.(result);
    results.push(result);
  }
  if (backup) backup.cleanup();
  return { command: 'deprovision:tenant', ok: results.every((r) => r.status === 'deprovisioned'), backup: Boolean(backup), tenants: results, ms: elapsed(started) };
}

/** Where and how dumps are taken: one per schema, written and verified before anything is dropped. */
interface Backup {
  dir: string;
  serverVersion: string;
  /**
   * Writes `<base>.sql` (catalog dump, or plain SQL on the embedded server) or `<base>.dump`
   * (pg_dump's custom format) and checks that it reads back with its schema. `connection` is the
   * session holding the tenant's advisory lock: the catalog dumper runs on it.
   */
  dump(schema: string, base: string, connection: unknown): Promise<DumpWritten>;
  cleanup(): void;
  /** A server (not the embedded one, a single session): writes are held off from before the dump to the drop. */
  guardsWrites: boolean;
  lockWaitTimeoutMs: number;
}

type DumpWritten = Pick<BackupManifest, 'format' | 'pgDumpVersion' | 'dumper' | 'fallback' | 'tables'> & { file: string };

/** `tenant-migrate <version>`, from package.json (two directories up from src/backup/ and dist/backup/). */
function toolName(): string {
  const manifest = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `tenant-migrate ${manifest.version}`;
}

async function prepareBackup(knex: Knex, options: DeprovisionOptions): Promise<Backup> {
  const dumper = backupDumperOf(options.dumper);
  if (!options.connection && !options.dumpSchema) {
    throw new UsageError('A backup needs the connection pg_dump uses (or, on the embedded server, its dumper). Nothing was changed.');
  }
  const { rows } = await knex.raw<{ rows: { num: string; version: string }[] }>("select current_setting('server_version_num') as num, current_setting('server_version') as version");
  const serverVersion = rows[0]!.version;
  const dir = path.resolve(options.backupDir!);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (error) {
    throw new UsageError(`--backup-dir ${dir} cannot be created or written (${(error as Error).message}). Nothing was changed.`);
  }
  if (options.dumpSchema) return inProcessBackup(dir, serverVersion, options.dumpSchema);
  const serverMajor = Math.floor(Number(rows[0]!.num) / 10000);
  const live = liveSettingsOf(options);
  const lockWaitTimeoutMs = options.lockWaitTimeoutMs ?? 60_000;
  // pg_dump: looked for up front when asked for (exit 2, nothing changed, when missing); for the
  // catalog dumper only when a schema needs it.
  let tools: Promise<{ dump: FoundTool; restore: FoundTool }> | undefined;
  // One after the other: when both are too old, the refusal names pg_dump every time (two lookups
  // in parallel named whichever failed first).
  const pgTools = () => (tools ??= (async () => ({ dump: await findTool('pg_dump', serverMajor, options.pgBinDir), restore: await findTool('pg_restore', serverMajor, options.pgBinDir) }))());
  if (dumper === 'pg_dump') await pgTools();
  const { env, cleanup } = libpqEnvironment(options.connection!, process.env, live);
  const withPgDump = async (schema: string, base: string): Promise<DumpWritten> => {
    const { dump, restore } = await pgTools();
    const file = `${base}.dump`;
    await runTool(dump, ['--format=custom', `--schema=${schema}`, `--file=${file}`, `--lock-wait-timeout=${lockWaitTimeoutMs}`, '--no-password'], env);
    const listing = await runTool(restore, ['--list', file], env);
    if (!new RegExp(`\\bSCHEMA - ${schema}\\b`).test(listing)) {
      throw new Error(`the dump ${file} does not read back with its schema (pg_restore --list); nothing was dropped`);
    }
    return { file, format: 'custom', pgDumpVersion: dump.version, dumper: `pg_dump ${dump.version}` };
  };
  const name = `${toolName()} (catalog)`;
  return {
    dir,
    serverVersion,
    cleanup,
    guardsWrites: true,
    lockWaitTimeoutMs,
    async dump(schema, base, connection) {
      if (dumper === 'pg_dump') return withPgDump(schema, base);
      const file = `${base}.sql`;
      const outcome = await dumpSchemaToFile(connection as pg.ClientBase, schema, file, { lockWaitTimeoutMs, statementTimeoutMs: live.statementTimeoutMs, dumper: name });
      if (outcome.kind === 'unsupported') {
        // Never a lossy dump: pg_dump writes this one, and the manifest says why.
        try {
          return { ...(await withPgDump(schema, base)), fallback: outcome.reasons };
        } catch (error) {
          throw new Error(`the schema holds what the catalog dumper does not write (${outcome.reasons.join('; ')}), and pg_dump, which would, failed: ${(error as Error).message}`, { cause: error });
        }
      }
      const tables = await verifySchemaDump(file, schema, outcome.tables).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; nothing was dropped`, { cause: error });
      });
      return { file, format: 'sql', dumper: name, tables };
    },
  };
}

/** The embedded server's dumper: plain SQL, checked complete and parsed by PostgreSQL's parser. */
function inProcessBackup(dir: string, serverVersion: string, dumpSchema: (schema: string) => Promise<string>): Backup {
  return {
    dir,
    serverVersion,
    cleanup: () => {},
    guardsWrites: false,
    lockWaitTimeoutMs: 0,
    async dump(schema, base) {
      const file = `${base}.sql`;
      const sql = await dumpSchema(schema);
      fs.writeFileSync(file, sql, { mode: 0o600 });
      const readBack = fs.readFileSync(file, 'utf8');
      const statements = await parseSql(readBack).catch((error: unknown) => {
        throw new Error(`the dump ${file} does not parse (${(error as Error).message}); nothing was dropped`);
      });
      const createsSchema = statements.some((statement) => (statement.stmt?.CreateSchemaStmt as { schemaname?: string } | undefined)?.schemaname === schema);
      if (!createsSchema || !/\n-- PostgreSQL database dump complete\n--\s*$/.test(readBack)) {
        throw new Error(`the dump ${file} is incomplete (no CREATE SCHEMA ${schema}, or no end marker); nothing was dropped`);
      }
      const version = /^-- Dumped by pg_dump version (\S+)/m.exec(readBack)?.[1] ?? 'unknown';
      return { file, format: 'plain', pgDumpVersion: `${version} (PGlite)`, dumper: `pg_dump ${version} (PGlite)` };
    },
  };
}

async function deprovisionOne(knex: Knex, registry: RegistryTable, tenant: TenantRecord, backup: Backup | undefined, live: LiveSettings): Promise<DeprovisionedTenant> {
  const started = performance.now();
  const base = { orgId: tenant.orgId, schema: tenant.schema };
  const connection: unknown = await knex.client.acquireConnection();
  const files: string[] = [];
  try {
    // A session lock on a connection of our own: a migration of this tenant waits from the dump to the drop.
    await knex.raw('select pg_advisory_lock(?, ?)', [...schemaLockKey(tenant.schema)]).connection(connection);
    let manifestFile: string | undefined;
    let dumpSize: number | undefined;
    let fallback: string[] | undefined;
    const drop = async (trx: Knex.Transaction) => {
      // Under the session lock taken above: DROP … CASCADE's table locks wait at most the lock timeout.
      await trx.raw(timeoutsSql(live));
      await trx.raw('drop schema if exists ?? cascade', [tenant.schema]);
      // Per-tenant roles: the tenant's role goes in the same transaction, after the backup.
      await dropRoleOfSchema(trx, tenant.schema);
      await trx(registry.table).withSchema(registry.schema).where({ schema_name: tenant.schema }).delete();
    };
    // (A pool of one session cannot hold the guard beside the dump's session: then as before.)
    if (backup?.guardsWrites && poolSizeOf(knex) >= 2) {
      // Rows another session commits after the dump's snapshot and before the drop were in neither
      // the backup nor the database (an app still writing to the org lost them, silently). So the
      // drop's transaction, on a second session, first locks the schema's tables EXCLUSIVE — writes
      // wait, reads (the dump's ACCESS SHARE, pg_dump's too) go on — then the dump is taken and
      // verified, and only then that transaction drops: a write either made it into the dump or
      // fails with the schema gone.
      const guard = await knex.transaction(null, { isolationLevel: 'read committed' });
      try {
        await guard.raw(`select set_config('lock_timeout', ?, true)`, [String(backup.lockWaitTimeoutMs)]);
        const { rows } = await guard.raw<{ rows: { relname: string }[] }>(
          `select c.relname from pg_depend d join pg_class c on c.oid = d.objid
            where d.refclassid = 'pg_namespace'::regclass and d.refobjid = to_regnamespace(?) and d.classid = 'pg_class'::regclass and d.deptype = 'n' and c.relkind in ('r', 'p')`,
          [tenant.schema],
        );
        if (rows.length > 0) {
          // LOCK TABLE takes no bound identifiers: each name quoted here, schema-qualified.
          const tables = rows.map((row) => `${quoteIdentifier(tenant.schema)}.${quoteIdentifier(row.relname)}`);
          await guard.raw(`lock table ${tables.join(', ')} in exclusive mode`).catch((error: unknown) => {
            throw new Error(`could not hold off writes to the schema's tables within ${backup.lockWaitTimeoutMs} ms (LOCK TABLE … IN EXCLUSIVE MODE: another transaction holds one): ${(error as Error).message}`, { cause: error });
          });
        }
        ({ manifestFile, dumpSize, fallback } = await dumpAndVerify(knex, connection, registry, tenant, backup, files));
        await drop(guard);
        await guard.commit();
      } catch (error) {
        if (!guard.isCompleted()) await guard.rollback().catch(() => {});
        throw error;
      }
    } else {
      if (backup) ({ manifestFile, dumpSize, fallback } = await dumpAndVerify(knex, connection, registry, tenant, backup, files));
      await knex.transaction(drop, { isolationLevel: 'read committed', connection });
    }
    return { ...base, status: 'deprovisioned', ...(manifestFile ? { manifest: manifestFile, dumpSize } : {}), ...(fallback ? { pgDumpFallback: fallback } : {}), ms: elapsed(started) };
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
): Promise<{ manifestFile: string; dumpSize: number; fallback?: string[] }> {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const name = `${fileSafeOrgId(tenant.orgId)}__${tenant.schema}__${stamp}`;
  const base = path.join(backup.dir, name);
  const manifestFile = `${base}.json`;
  files.push(`${base}.dump`, `${base}.sql`, manifestFile);
  // The state the dump holds, read under the lock that keeps it so.
  const [row] = (await knex(registry.table).withSchema(registry.schema).where({ schema_name: tenant.schema }).select('migration_version', 'migration_count').connection(connection)) as {
    migration_version: string | null;
    migration_count: number;
  }[];
  const { file: dumpFile, format, pgDumpVersion, dumper, fallback, tables } = await backup.dump(tenant.schema, base, connection);
  const dumpSize = fs.statSync(dumpFile).size;
  const manifest: BackupManifest = {
    orgId: tenant.orgId,
    schema: tenant.schema,
    newestMigration: row?.migration_version ?? null,
    migrationCount: row?.migration_count ?? 0,
    serverVersion: backup.serverVersion,
    ...(pgDumpVersion ? { pgDumpVersion } : {}),
    ...(dumper ? { dumper } : {}),
    format,
    ...(fallback ? { fallback } : {}),
    ...(tables ? { tables } : {}),
    dumpFile: path.basename(dumpFile),
    dumpSize,
    sha256: await sha256Of(dumpFile),
    createdAt: new Date().toISOString(),
  };
  fs.writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  return { manifestFile, dumpSize, ...(fallback ? { fallback } : {}) };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
