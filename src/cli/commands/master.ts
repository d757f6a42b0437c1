import type { Command } from 'commander';
import type { MasterResult } from '../../report/results.ts';
import { withDatabase } from '../context.ts';
import { masterLines, type Output } from '../output.ts';
import type { Register } from '../register.ts';

export const registerMasterCommands: Register = (program: Command, run) => {
  program
    .command('migrate:master')
    .description('apply pending master migrations to public (and create the tenants registry)')
    .option('--json', 'print the result as JSON on stdout')
    .action((flags: { json?: boolean }) =>
      run('migrate:master', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { migrateMaster } = await import('../../master/master.ts');
          return report(
            output,
            await migrateMaster(db.knex, { directory: config.masterMigrationsDir, registry: config.registryTable, onWarning: output.warn }),
          );
        }),
      ),
    );

  program
    .command('rollback:master')
    .description('undo the last master batch (or everything after a migration with --to, or all with --all)')
    .option('--all', 'undo every master migration')
    .option('--to <migration>', 'undo every master migration applied after this one (a file of the master tree)')
    .option('--json', 'print the result as JSON on stdout')
    .action((flags: { json?: boolean; all?: boolean; to?: string }) =>
      run('rollback:master', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { rollbackMaster } = await import('../../master/master.ts');
          return report(output, await rollbackMaster(db.knex, { directory: config.masterMigrationsDir, all: flags.all, to: flags.to, onWarning: output.warn }));
        }),
      ),
    );
};

function report(output: Output, result: MasterResult): 0 | 1 {
  output.result(result);
  if (output.json) output.document(result);
  else for (const line of masterLines(result)) output.info(line);
  return result.ok ? 0 : 1;
}
