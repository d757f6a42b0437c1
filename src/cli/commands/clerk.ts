import type { Command } from 'commander';
import pc from 'picocolors';
import type { SyncClerkResult } from '../../clerk/sync-clerk.ts';
import { UsageError } from '../../errors.ts';
import { withDatabase } from '../context.ts';
import type { Register } from '../register.ts';

interface SyncFlags {
  json?: boolean;
  dryRun?: boolean;
  concurrency?: string;
}

export const registerClerkCommands: Register = (program: Command, run) => {
  program
    .command('sync:clerk')
    .description('provision every Clerk organisation that has no tenant, and list tenants whose org is gone (deletes nothing)')
    .option('--dry-run', 'only report what would be provisioned')
    .option('--concurrency <n>', 'orgs provisioned at once (default TENANT_CONCURRENCY or 4)')
    .option('--json', 'print exactly one JSON document on stdout')
    .action((flags: SyncFlags) =>
      run('sync:clerk', flags, (output) =>
        withDatabase(flags, async (db, config, concurrency) => {
          const { secretKey, apiUrl } = config.clerk;
          if (!secretKey) {
            throw new UsageError('sync:clerk needs CLERK_SECRET_KEY (Clerk dashboard → API keys → Secret keys), in the environment or in .env. Nothing was changed.');
          }
          const { syncClerk } = await import('../../clerk/sync-clerk.ts');
          const result = await syncClerk(db.knex, {
            secretKey,
            apiUrl,
            dryRun: flags.dryRun,
            tenantDirectory: config.tenantMigrationsDir,
            concurrency,
            registry: config.registryTable,
          });
          output.result(result);
          if (output.json) await output.document(result);
          else for (const line of syncLines(result)) output.info(line);
          return result.ok ? 0 : 1;
        }),
      ),
    );
};

function syncLines(result: SyncClerkResult): string[] {
  const verb = result.dryRun ? 'would provision' : 'provisioned';
  const lines = [`sync:clerk${result.dryRun ? ' (dry run)' : ''}: ${result.upToDate} up to date, ${result.provisioned.length} ${verb}, ${result.missingInClerk.length} missing in Clerk (${result.ms} ms)`];
  if (result.provisioned.length) lines.push(pc.green(`${verb}: ${result.provisioned.join(', ')}`));
  for (const { orgId, error } of result.failed) lines.push(pc.red(`✘ ${orgId}: ${error}`));
  if (result.missingInClerk.length) lines.push(pc.yellow(`Registered, but the org is gone from Clerk (kept): ${result.missingInClerk.join(', ')}`));
  return lines;
}
