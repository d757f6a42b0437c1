import path from 'node:path';
import type { Command } from 'commander';
import { withDatabase } from '../context.ts';
import type { Register } from '../register.ts';

export const registerChecksumsCommand: Register = (program: Command, run) => {
  program
    .command('checksums:accept')
    .description('record the current content of applied migrations as intended (after an edit that changes nothing applied)')
    .argument('<file...>', 'migration files of the master or tenant tree (names or paths)')
    .option('--json', 'print { accepted: [...] } as JSON on stdout')
    .action((files: string[], flags: { json?: boolean }) =>
      run('checksums:accept', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { acceptChecksums } = await import('../../migration/checksums.ts');
          const { directorySource } = await import('../../migration/source.ts');
          const accepted = await acceptChecksums(db.knex, files, [
            { tree: 'master', source: directorySource(path.resolve(config.masterMigrationsDir)) },
            { tree: 'tenant', source: directorySource(path.resolve(config.tenantMigrationsDir)) },
          ]);
          const result = { command: 'checksums:accept', ok: true, accepted };
          output.result(result);
          if (output.json) await output.document(result);
          for (const file of output.json ? [] : accepted) {
            output.info(
              file.changed
                ? `✔ ${file.name} (${file.tree} tree): accepted sha256 ${file.current} (was ${file.recorded})`
                : `✔ ${file.name} (${file.tree} tree): unchanged, sha256 ${file.current}`,
            );
          }
          return 0;
        }),
      ),
    );
};
