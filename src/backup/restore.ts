/**
 * `restore:tenant <manifest.json>`: brings back a deprovisioned org from its backup, all or
 * nothing. Refused (exit 2, nothing changed) when the dump's sha256 differs from the manifest's,
 * or when the org is registered or its schema exists; a catalog dump (`sql`, schema-dump.ts) must
 * also read back complete with the rows its manifest lists. The dump is replayed into `psql
 * --single-transaction` (a custom-format one through `pg_restore`, a catalog dump as it is)
 * together with the registry row — one transaction: the schema and the row appear together or not
 * at all. A plain-SQL dump (the embedded server's) is sent the same way
 * through our own connection, as one script: begin, the lock, the dump, the row, commit. The row
 * records what the restored `knex_migrations` says, and the result lists the tenant tree's
 * migrations the restored schema is behind on.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { ConnectionSettings } from '../config/load-config.ts';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { UsageError } from '../errors.ts';
import { listMigrationNames } from '../migration/source.ts';
import { printableOrgId } from '../tenants/naming.ts';
import { registryOf } from '../tenants/options.ts';
import { ensureRegistry, insertTenantSql } from '../tenants/registry.ts';
import { registrySql, type RegistryTable } from '../tenants/registry-table.ts';
import { readManifest, sha256Of } from './manifest.ts';
import { verifySchemaDump } from './schema-dump-verify.ts';
import { fleetRoles } from '../roles/fleet-roles.ts';
import type { RolesSettings } from '../roles/settings.ts';
import { findTool, libpqEnvironment, type FoundTool } from './pg-tools.ts';
import { liveSettingsOf, timeoutsSql, type LiveOptions } from '../db/lock-settings.ts';

export interface RestoreOptions extends LiveOptions {
  connection?: ConnectionSettings;
  pgBinDir?: string;
  /** The tenant tree, to say what the restored tenant is behind on. Default migrations/tenant. */
  directory?: string;
  registry?: RegistryTable;
  /** Per-tenant roles; default from the environment (TENANT_ROLES …). */
  roles?: RolesSettings;
}

export interface RestoreResult {
  command: 'restore:tenant';
  ok: true;
  orgId: string;
  schema: string;
  /** Newest migration and count in the restored schema's own knex_migrations. */
  newestMigration: string | null;
  migrationCount: number;
  /** Tenant-tree migrations the restored schema has not applied (`migrate:tenants` brings them). */
  pending: string[];
  ms: number;
}

export async function restoreTenant(knex: Knex, manifestPath: string, options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const manifestFile = path.resolve(manifestPath);
  const manifest = readManifest(manifestFile);
  const dumpFile = path.join(path.dirname(manifestFile), manifest.dumpFile);
  let actual: string;
  try {
    actual = await sha256Of(dumpFile);
  } catch (error) {
    throw new UsageError(`The dump ${dumpFile} named by the manifest cannot be read (${(error as Error).message}). Nothing was changed.`);
  }
  if (actual !== manifest.sha256) {
    throw new UsageError(`The dump ${dumpFile} does not match its manifest (sha256 ${actual}, manifest ${manifest.sha256}): it was changed or damaged. Nothing was changed.`);
  }
  if (manifest.format === 'custom' && !options.connection) {
    throw new UsageError('This backup is a pg_dump archive: restoring it needs pg_restore and a server it can reach, not the embedded server (DATABASE_URL=embedded, PGlite). Nothing was changed.');
  }
  if (manifest.format === 'sql') {
    if (!options.connection) throw new UsageError('This backup is a catalog dump (plain SQL with COPY data): restoring it needs psql and a server it can reach, not the embedded server (DATABASE_URL=embedded, PGlite). Nothing was changed.');
    // Complete, parses, and holds the rows it was verified with before the drop: else nothing is tried.
    await verifySchemaDump(dumpFile, manifest.schema, manifest.tables).catch((error: unknown) => {
      throw new UsageError(`${(error as Error).message}: it cannot be restored. Nothing was changed.`);
    });
  }
  const registry = registryOf(options);
  // TENANT_ROLES=on: the preflight refuses (exit 2) before anything is written.
  const roles = await fleetRoles(knex, options, [manifest.schema]);
  await ensureRegistry(knex, registry);
  const { rows } = await knex.raw<{ rows: { registered: boolean; schemaExists: boolean; num: string }[] }>(
    `select exists (select 1 from ${registrySql(registry)} where org_id = ? or schema_name = ?) as registered,
            exists (select 1 from pg_namespace where nspname = ?) as "schemaExists",
            current_setting('server_version_num') as num`,
    [manifest.orgId, manifest.schema, manifest.schema],
  );
  const state = rows[0]!;
  if (state.registered) throw new UsageError(`${printableOrgId(manifest.orgId)} (or its schema ${manifest.schema}) is registered: restore only brings back a deprovisioned org. Nothing was changed.`);
  if (state.schemaExists) throw new UsageError(`The schema ${manifest.schema} exists: drop it (or deprovision it) before restoring over it. Nothing was changed.`);
  // The role and its memberships before the data (the dump's own GRANTs name it); its grants after,
  // in the restore's transaction, so a restored tenant is never reachable without them.
  if (roles.ctx) await roles.ensure(manifest.schema);
  const grants = roles.grantsOf(manifest.schema)?.statements.map((statement) => `${statement};\n`).join('') ?? '';
  const [lockClass, lockId] = schemaLockKey(manifest.schema);
  // The tool's own lock waits as long as it takes (PGOPTIONS gave psql's session a lock timeout);
  // the restore's table locks after it wait at most the lock timeout.
  const live = liveSettingsOf(options);
  const lock = `set local lock_timeout = 0;\nselect pg_advisory_xact_lock(${lockClass}, ${lockId});\n${timeoutsSql(live)};\n`;
  const registryRow = `${insertTenantSql(registry, manifest.orgId, manifest.schema)};
      update ${registrySql(registry)} set migration_version = (select max(name) from "${manifest.schema}".knex_migrations),
             migration_count = (select count(*) from "${manifest.schema}".knex_migrations) where schema_name = '${manifest.schema}';
      ${grants}`;
  if (manifest.format === 'plain') {
    await replayPlainDump(knex, fs.readFileSync(dumpFile, 'utf8'), lock, registryRow);
  } else {
    const serverMajor = Math.floor(Number(state.num) / 10000);
    // A catalog dump is SQL already: psql reads the file itself (any psql from 10 on).
    const pgRestore = manifest.format === 'custom' ? await findTool('pg_restore', serverMajor, options.pgBinDir) : undefined;
    const psql = await findTool('psql', Math.min(serverMajor, 10), options.pgBinDir);
    const { env, cleanup } = libpqEnvironment(options.connection!, process.env, live);
    try {
      await replayDump(pgRestore, psql, dumpFile, env, lock, registryRow);
    } finally {
      cleanup();
    }
  }
  const [restored] = (await knex.withSchema(manifest.schema).from('knex_migrations').max('name as newest').count('* as count')) as { newest: string | null; count: string }[];
  const applied = new Set((await knex.withSchema(manifest.schema).from('knex_migrations').pluck('name')) as string[]);
  const pending = listMigrationNames(path.resolve(options.directory ?? 'migrations/tenant')).filter((name) => !applied.has(name));
  return {
    command: 'restore:tenant',
    ok: true,
    orgId: manifest.orgId,
    schema: manifest.schema,
    newestMigration: restored?.newest ?? null,
    migrationCount: Number(restored?.count ?? 0),
    pending,
    ms: Math.round(performance.now() - started),
  };
}

/**
 * A plain-SQL dump, sent as one simple-protocol script on a connection of our own (no Knex binding
 * processing: a `?` in the data stays a `?`), inside one transaction that commits only if every
 * statement succeeded. The dump's session settings (search_path '', …) are reset before the
 * connection goes back to the pool.
 */
async function replayPlainDump(knex: Knex, dump: string, before: string, after: string): Promise<void> {
  const connection = (await knex.client.acquireConnection()) as { query(sql: string): Promise<{ command?: string } | { command?: string }[]> };
  let committed = false;
  try {
    const results = await connection.query(`begin isolation level read committed;\n${before}${dump}\n;\n${after}\ncommit`);
    committed = [results].flat().at(-1)?.command === 'COMMIT';
    if (!committed) throw new Error('the restore did not commit; nothing kept');
  } catch (error) {
    if (!committed) await connection.query('rollback').catch(() => {});
    throw new Error(`restore failed, nothing kept: ${(error as Error).message}`, { cause: error });
  } finally {
    await connection.query('reset all').catch(() => {});
    await knex.client.releaseConnection(connection);
  }
}

/**
 * pg_restore writes the dump as SQL (a catalog dump is read as it is); psql runs it, between
 * `before` and `after`, as one transaction that stops at the first error (ON_ERROR_STOP) — so
 * nothing of a failed restore stays.
 */
function replayDump(pgRestore: FoundTool | undefined, psql: FoundTool, dumpFile: string, env: NodeJS.ProcessEnv, before: string, after: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sql = spawn(psql.path, ['-X', '-q', '--no-password', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '-f', '-'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let errors = '';
    sql.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    sql.stdin.on('error', () => {}); // psql stopped early: its exit code tells
    sql.stdin.write(before);
    let sourceOk: boolean | undefined;
    const sourceDone = (ok: boolean) => {
      sourceOk = ok;
      if (ok) sql.stdin.end(`\n${after}\n`);
      else sql.kill('SIGTERM'); // a damaged dump: psql must not commit what it got so far
    };
    if (pgRestore) {
      const restore = spawn(pgRestore.path, ['--file=-', '--no-owner', dumpFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      restore.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      restore.stdout.pipe(sql.stdin, { end: false });
      restore.on('close', (code) => sourceDone(code === 0));
      restore.on('error', reject);
    } else {
      const file = fs.createReadStream(dumpFile);
      file.pipe(sql.stdin, { end: false });
      file.on('end', () => sourceDone(true));
      file.on('error', (error) => {
        errors += `${error.message}\n`;
        sourceDone(false);
      });
    }
    sql.on('error', reject);
    sql.on('close', (code) => {
      if (code === 0 && sourceOk) resolve();
      else reject(new Error(`restore failed, nothing kept: ${errors.trim().split('\n').slice(0, 5).join(' / ') || `${pgRestore ? 'pg_restore' : 'the dump'} ${sourceOk ? 'was read' : 'failed'}, psql exited ${code}`}`));
    });
  });
}
