/** `TENANT_BACKUP_DUMPER`: who writes deprovision's backups on a server (docs/backups.md). */
import { UsageError } from '../errors.ts';

/** `TENANT_BACKUP_DUMPER`: `tool` (the catalog dumper, default) or `pg_dump`. */
export type BackupDumper = 'tool' | 'pg_dump';

/**
 * The dumper asked for: the option, else TENANT_BACKUP_DUMPER, else `tool`.
 * @throws UsageError (exit 2) for any other value.
 */
export function backupDumperOf(option: string | undefined, env: NodeJS.ProcessEnv = process.env): BackupDumper {
  const raw = option ?? env.TENANT_BACKUP_DUMPER;
  const value = raw?.trim().toLowerCase();
  if (!value) return 'tool';
  if (value === 'tool' || value === 'pg_dump') return value;
  throw new UsageError(`TENANT_BACKUP_DUMPER must be "tool" (the catalog dumper, default) or "pg_dump" (got ${JSON.stringify(raw)}). Nothing was changed.`);
}

