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
          return report(output, await migrateMaster(db.knex, { directory: config.masterMigrationsDir, onWarning: output.warn }));
        }),
      ),
    );

  program
    .command('rollback:master')
    .description('undo the last master batch (or all with --all)')
    .option('--all', 'undo every master migration')
    .option('--json', 'print the result as JSON on stdout')
    .action((flags: { json?: boolean; all?: boolean }) =>
      run('rollback:master', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { rollbackMaster } = await import('../../master/master.ts');
          return report(output, await rollbackMaster(db.knex, { directory: config.masterMigrationsDir, all: flags.all, onWarning: output.warn }));
        }),
      ),
    );
};

function report(output: Output, result: MasterResult): 0 | 1 {
  if (output.json) output.document(result);
  else for (const line of masterLines(result)) output.info(line);
  return result.ok ? 0 : 1;
}
