/** A backup's manifest: the JSON file beside each dump, what `restore:tenant` reads. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { UsageError } from '../errors.ts';

export interface BackupManifest {
  orgId: string;
  schema: string;
  /** Newest applied tenant migration at the time of the dump, and how many were applied. */
  newestMigration: string | null;
  migrationCount: number;
  serverVersion: string;
  /** pg_dump's version, when pg_dump wrote the dump (`custom`, `plain`); absent for `sql`. */
  pgDumpVersion?: string;
  /** Who wrote the dump: `pg_dump 15.20`, `pg_dump 18.3 (PGlite)`, `tenant-migrate 0.1.0 (catalog)`. Absent in older manifests. */
  dumper?: string;
  /**
   * `custom`: pg_dump's archive (pg_restore reads it); `plain`: SQL, from the embedded server's
   * dumper; `sql`: plain SQL with COPY data, written by tenant-migrate from the catalog
   * (schema-dump.ts), restored with psql.
   */
  format: 'custom' | 'plain' | 'sql';
  /** Why pg_dump wrote this dump although the catalog dumper was asked for (what the schema holds that it does not write). */
  fallback?: string[];
  /** `sql`: each table and the rows its COPY block holds, as verified before the drop. */
  tables?: { table: string; rows: number }[];
  /** The dump's file name, in the manifest's directory. */
  dumpFile: string;
  dumpSize: number;
  sha256: string;
  createdAt: string;
}

export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** @throws UsageError when the file is not a manifest tenant-migrate wrote. */
export function readManifest(file: string): BackupManifest {
  let value: Partial<BackupManifest>;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<BackupManifest>;
  } catch (error) {
    throw new UsageError(`${file} is not a readable backup manifest (${(error as Error).message}). Nothing was changed.`);
  }
  const strings = ['orgId', 'schema', 'dumpFile', 'sha256', 'createdAt'] as const;
  for (const key of strings) {
    if (typeof value[key] !== 'string' || value[key] === '') throw new UsageError(`${file}: the manifest has no "${key}". Nothing was changed.`);
  }
  if (!['custom', 'plain', 'sql'].includes(value.format as string) || !/^tid_[0-9a-f]{10}$/.test(value.schema!) || value.dumpFile!.includes('/') || value.dumpFile!.includes('\\')) {
    throw new UsageError(`${file} is not a tenant-migrate backup manifest (format, schema or dump file name). Nothing was changed.`);
  }
  return value as BackupManifest;
}

/**
 * A file-name-safe form of an org id: letters, digits, `_` and `-` kept, anything else as `~xx`
 * hex bytes, at most 80 characters — the schema name beside it in the name keeps it unique.
 */
export function fileSafeOrgId(orgId: string): string {
  return [...Buffer.from(orgId, 'utf8')]
    .map((byte) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `~${byte.toString(16).padStart(2, '0')}`))
    .join('')
    .slice(0, 80);
}
