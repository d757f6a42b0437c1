import type { Command } from 'commander';
import { withDatabase } from '../context.ts';
import { statusLines } from '../output.ts';
import type { Register } from '../register.ts';

export const registerStatusCommand: Register = (program: Command, run) => {
  program
    .command('status')
    .description("master state and the whole fleet's state")
    .option('--json', 'print the status as JSON on stdout')
    .option('--check', 'exit 1 when anything is pending or drifted (for CI gates)')
    .option('--verify', "also read every tenant's own knex_migrations and report tenants whose registry row disagrees (drifted)")
    .action((flags: { json?: boolean; check?: boolean; verify?: boolean }) =>
      run('status', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { getStatus } = await import('../../status/get-status.ts');
          const status = await getStatus(db.knex, {
            masterDirectory: config.masterMigrationsDir,
            tenantDirectory: config.tenantMigrationsDir,
            registry: config.registryTable,
            verify: flags.verify,
            roles: config.roles,
          });
          if (output.json) output.document(status);
          else for (const line of statusLines(status)) output.info(line);
          return flags.check && !status.ok ? 1 : 0;
        }),
      ),
    );
};
