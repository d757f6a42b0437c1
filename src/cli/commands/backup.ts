import type { Command } from 'commander';
import type { DeprovisionResult } from '../../backup/deprovision.ts';
import { liveFrom, lockOptions, withDatabase, type LockFlags } from '../context.ts';
import type { Output } from '../output.ts';
import type { Register } from '../register.ts';

export const registerBackupCommands: Register = (program: Command, run) => {
  lockOptions(program
    .command('deprovision:tenant'))
    .description("drop orgs' schemas and registry rows, each after a verified backup (or --no-backup)")
    .argument('<orgId...>', 'Clerk org ids')
    .option('--backup-dir <dir>', 'where each dump (plain SQL with COPY data, or pg_dump custom format: TENANT_BACKUP_DUMPER) and its manifest (.json) are written')
    .option('--no-backup', 'drop without a backup: the data is gone for good')
    .option('--json', 'print the result as JSON on stdout')
    .action((orgIds: string[], flags: { backupDir?: string; backup: boolean; json?: boolean } & LockFlags) =>
      run('deprovision:tenant', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { deprovisionTenant } = await import('../../backup/deprovision.ts');
          const result = await deprovisionTenant(db.knex, orgIds, {
            ...liveFrom(flags, config),
            backupDir: flags.backupDir,
            noBackup: !flags.backup,
            dumper: config.backupDumper,
            connection: config.connection,
            ...(db.dumpSchema ? { dumpSchema: db.dumpSchema } : {}),
            pgBinDir: config.pgBinDir,
            registry: config.registryTable,
            onTenantDone: output.json ? undefined : (tenant) => output.info(deprovisionLine(tenant)),
          });
          output.result(result);
          if (output.json) await output.document(result);
          else output.info(summaryLine(result));
          return result.ok ? 0 : 1;
        }),
      ),
    );

  lockOptions(program
    .command('restore:tenant'))
    .description('bring back a deprovisioned org from its backup manifest (all or nothing)')
    .argument('<manifest>', 'the .json manifest deprovision:tenant wrote beside the dump')
    .option('--json', 'print the result as JSON on stdout')
    .action((manifest: string, flags: { json?: boolean } & LockFlags) =>
      run('restore:tenant', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { restoreTenant } = await import('../../backup/restore.ts');
          const result = await restoreTenant(db.knex, manifest, {
            ...liveFrom(flags, config),
            connection: config.connection,
            pgBinDir: config.pgBinDir,
            directory: config.tenantMigrationsDir,
            registry: config.registryTable,
            roles: config.roles,
          });
          output.result(result);
          if (output.json) await output.document(result);
          else restoreLines(output, result);
          return 0;
        }),
      ),
    );
};

function deprovisionLine(tenant: DeprovisionResult['tenants'][number]): string {
  if (tenant.status === 'failed') return `✘ ${tenant.orgId} (${tenant.schema}) failed, untouched: ${tenant.error} ${tenant.ms} ms`;
  const fallback = tenant.pgDumpFallback ? ` — pg_dump wrote it: the schema holds what the catalog dumper does not write (${tenant.pgDumpFallback.join('; ')})` : '';
  return `✔ ${tenant.orgId} (${tenant.schema}) deprovisioned${tenant.manifest ? `, backup ${tenant.manifest} (${tenant.dumpSize} bytes, verified)${fallback}` : ', no backup'} ${tenant.ms} ms`;
}

function summaryLine(result: DeprovisionResult): string {
  const done = result.tenants.filter((tenant) => tenant.status === 'deprovisioned').length;
  const failed = result.tenants.length - done;
  return `deprovision:tenant: ${result.tenants.length} tenant${result.tenants.length === 1 ? '' : 's'} — ${done} deprovisioned${failed ? `, ${failed} failed (untouched)` : ''} (${result.ms} ms)`;
}

function restoreLines(output: Output, result: Awaited<ReturnType<typeof import('../../backup/restore.ts').restoreTenant>>): void {
  output.info(`restore:tenant: ${result.orgId} (${result.schema}) restored at ${result.newestMigration ?? '(no migrations)'} (${result.migrationCount} applied) in ${result.ms} ms`);
  if (result.pending.length > 0) output.info(`  behind the tenant tree by ${result.pending.length}: ${result.pending.join(', ')} — run migrate:tenants`);
}
