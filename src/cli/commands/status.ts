import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
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
    .option('--html <file>', 'also write the fleet as one self-contained HTML page (it holds org ids and error messages)')
    .action((flags: { json?: boolean; check?: boolean; verify?: boolean; html?: string }) =>
      run('status', flags, (output) => {
        // Checked before the database is opened: a page that cannot be written is bad input.
        if (flags.html !== undefined && !fs.statSync(path.dirname(path.resolve(flags.html)), { throwIfNoEntry: false })?.isDirectory()) {
          throw new UsageError(`status --html ${flags.html}: the directory ${path.dirname(path.resolve(flags.html))} does not exist. Nothing was written.`);
        }
        return withDatabase({}, async (db, config) => {
          const { getStatus } = await import('../../status/get-status.ts');
          const status = await getStatus(db.knex, {
            masterDirectory: config.masterMigrationsDir,
            tenantDirectory: config.tenantMigrationsDir,
            registry: config.registryTable,
            verify: flags.verify,
            roles: config.roles,
          });
          if (output.json) await output.document(status);
          else for (const line of statusLines(status)) output.info(line);
          if (flags.html) {
            const { writeStatusHtml } = await import('../../status/html-report.ts');
            const { host, port, database } = db.label;
            const bytes = await writeStatusHtml(db.knex, flags.html, {
              status,
              masterDirectory: config.masterMigrationsDir,
              registry: config.registryTable,
              database: config.embedded ? `embedded (${database})` : `${host}:${port}/${database}`,
            });
            // On stderr with --json, so stdout stays one JSON document.
            const line = `Wrote ${flags.html} (${Math.max(1, Math.round(bytes / 1024))} kB): it lists org ids and error messages, share it as you would the data.`;
            if (output.json) process.stderr.write(`${line}\n`);
            else output.info(line);
          }
          return flags.check && !status.ok ? 1 : 0;
        });
      }),
    );
};
