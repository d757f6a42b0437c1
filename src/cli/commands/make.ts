import path from 'node:path';
import type { Command } from 'commander';
import type { Register } from '../register.ts';

export const registerMakeCommands: Register = (program: Command, run) => {
  for (const tree of ['master', 'tenant'] as const) {
    program
      .command(`migrate:make:${tree}`)
      .description(`create a timestamped TypeScript migration in the ${tree} directory`)
      .argument('<name>', 'what the migration does, e.g. add_nickname')
      .option('--json', 'print the result as JSON on stdout')
      .action((name: string, flags: { json?: boolean }) =>
        run(`migrate:make:${tree}`, flags, async (output) => {
          const { loadConfig } = await import('../../config/load-config.ts');
          const config = loadConfig({ requireDatabase: false });
          const { makeMigration } = await import('../../migration/make-migration.ts');
          const file = makeMigration(tree === 'master' ? config.masterMigrationsDir : config.tenantMigrationsDir, name);
          const shown = path.relative(process.cwd(), file);
          if (output.json) await output.document({ command: `migrate:make:${tree}`, ok: true, file: shown });
          else output.info(`Created ${shown}`);
          return 0;
        }),
      );
  }

  program
    .command('migrate:make:seed')
    .description('create a timestamped, typed seed file in the tenant seeds directory (or the master one with --master)')
    .argument('<name>', 'what the seed fills in, e.g. default_settings')
    .option('--master', 'in MASTER_SEEDS_DIR instead of TENANT_SEEDS_DIR')
    .option('--json', 'print the result as JSON on stdout')
    .action((name: string, flags: { json?: boolean; master?: boolean }) =>
      run('migrate:make:seed', flags, async (output) => {
        const { loadConfig } = await import('../../config/load-config.ts');
        const config = loadConfig({ requireDatabase: false, requireMigrationDirs: false });
        const { makeSeed } = await import('../../migration/make-migration.ts');
        const file = makeSeed(flags.master ? config.masterSeedsDir : config.tenantSeedsDir, name);
        const shown = path.relative(process.cwd(), file);
        if (output.json) await output.document({ command: 'migrate:make:seed', ok: true, file: shown });
        else output.info(`Created ${shown}`);
        return 0;
      }),
    );
};
