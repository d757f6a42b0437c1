import type { Command } from 'commander';
import type { MasterResult } from '../../report/results.ts';
import { liveFrom, lockOptions, withDatabase, type LockFlags } from '../context.ts';
import { describeBlockers } from '../../report/blockers.ts';
import { DRY_RUN_HELP, runDryRun } from './dry-run.ts';
import { lintBeforeMigrating } from './lint.ts';
import { masterLines, type Output } from '../output.ts';
import type { Register } from '../register.ts';

export const registerMasterCommands: Register = (program: Command, run) => {
  lockOptions(program
    .command('migrate:master'))
    .description('apply pending master migrations to public (and create the tenants registry)')
    .option('--json', 'print the result as JSON on stdout')
    .option('--dry-run', DRY_RUN_HELP)
    .option('--strict', 'stop (exit 1, nothing migrated) when lint finds fleet-unsafe DDL in a pending migration')
    .action((flags: { json?: boolean; dryRun?: boolean; strict?: boolean } & LockFlags) =>
      run('migrate:master', flags, (output) =>
        flags.dryRun
          ? runDryRun(output, {}, 'migrate:master', (config) => ({ directory: config.masterMigrationsDir }), (knex, config) => lintBeforeMigrating(knex, output, 'master', config, flags.strict))
          : withDatabase({}, async (db, config) => {
          if (!(await lintBeforeMigrating(db.knex, output, 'master', config, flags.strict))) return 1;
          const { migrateMaster } = await import('../../master/master.ts');
          return report(
            output,
            await migrateMaster(db.knex, { ...liveFrom(flags, config), ...masterProgress(output), directory: config.masterMigrationsDir, registry: config.registryTable, roles: config.roles, onWarning: output.warn }),
          );
        }),
      ),
    );

  lockOptions(program
    .command('rollback:master'))
    .description('undo the last master batch (or everything after a migration with --to, or all with --all)')
    .option('--all', 'undo every master migration')
    .option('--to <migration>', 'undo every master migration applied after this one (a file of the master tree)')
    .option('--json', 'print the result as JSON on stdout')
    .action((flags: { json?: boolean; all?: boolean; to?: string } & LockFlags) =>
      run('rollback:master', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { rollbackMaster } = await import('../../master/master.ts');
          return report(output, await rollbackMaster(db.knex, { ...liveFrom(flags, config), ...masterProgress(output), directory: config.masterMigrationsDir, all: flags.all, to: flags.to, onWarning: output.warn }));
        }),
      ),
    );
};

export const registerSeedMasterCommand: Register = (program: Command, run) => {
  lockOptions(program
    .command('seed:master'))
    .description('run the master seeds (MASTER_SEEDS_DIR) in one transaction, in name order')
    .option('--json', 'print the result as JSON on stdout')
    .action((flags: { json?: boolean } & LockFlags) =>
      run('seed:master', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { seedMaster } = await import('../../seeds/run-seeds.ts');
          const result = await seedMaster(db.knex, { ...liveFrom(flags, config), directory: config.masterSeedsDir });
          output.result(result);
          if (output.json) await output.document(result);
          else if (result.ok) output.info(`seed:master: ran ${result.seeds.length} seed${result.seeds.length === 1 ? '' : 's'} in public (${result.ms} ms)${result.seeds.map((name) => `\n  ${name}`).join('')}`);
          else output.info(`seed:master failed, nothing kept: ${result.error}`);
          return result.ok ? 0 : 1;
        }),
      ),
    );
};

/** While public waits for a lock: who holds it up (once per blocker), and each retry (on stderr). */
function masterProgress(output: Output) {
  const shown = new Set<string>();
  return {
    onHeldUp: (blockers: import('../../report/blockers.ts').Blocker[]) => {
      const key = blockers.map((b) => b.pid).join(',');
      if (shown.has(key)) return;
      shown.add(key);
      process.stderr.write(`… public ${describeBlockers(blockers)}\n`);
    },
    onRetry: (event: import('../../fleet/run-fleet.ts').RetryEvent) =>
      process.stderr.write(`↻ public ${event.reason.replace('_', ' ')}, rolled back; attempt ${event.attempt + 1} in ${(event.pauseMs / 1000).toFixed(1)} s${event.blockedBy.length > 0 ? ` — ${describeBlockers(event.blockedBy)}` : ''}\n`),
  };
}

async function report(output: Output, result: MasterResult): Promise<0 | 1> {
  output.result(result);
  if (output.json) await output.document(result);
  else for (const line of masterLines(result)) output.info(line);
  return result.ok ? 0 : 1;
}
