import { parseDuration } from '../../config/duration.ts';
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { withDatabase } from '../context.ts';
import type { Output } from '../output.ts';
import type { Register } from '../register.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export const registerQueryCommand: Register = (program: Command, run) => {
  program
    .command('query:tenants')
    .description('run one read-only SELECT in every tenant (READ ONLY, with a statement timeout) and print the rows with org_id')
    .requiredOption('--sql <select>', 'the statement, e.g. "select count(*)::int as users from org_users"')
    .addOption(new Option('--tenant <orgId>', 'only this tenant (repeatable)').argParser(collect))
    .option('--concurrency <n>', 'tenants queried at once (default TENANT_CONCURRENCY or 4)')
    .option('--statement-timeout <ms|s>', 'statement_timeout in each tenant (its own default: 30s)', '30000')
    .option('--json', 'print { ok, rows, failed } as JSON on stdout')
    .action((flags: { sql: string; tenant?: string[]; concurrency?: string; statementTimeout: string; json?: boolean }) =>
      run('query:tenants', flags, (output) =>
        withDatabase(flags, async (db, config, concurrency) => {
          const { queryTenants } = await import('../../tenants/query-tenants.ts');
          const result = await queryTenants(db.knex, flags.sql, {
            tenants: flags.tenant,
            concurrency,
            registry: config.registryTable,
            statementTimeoutMs: parseMilliseconds(flags.statementTimeout),
            onWarning: output.warn,
          });
          if (output.json) output.document(result);
          else printRows(output, result.rows, result.failed);
          return result.ok ? 0 : 1;
        }),
      ),
    );
};

/** The one duration parser (config/duration.ts); a read always has a limit here, so 0 is refused. */
function parseMilliseconds(raw: string): number {
  return parseDuration(raw, '--statement-timeout', { allowZero: false });
}

/** An aligned table (values as JSON where they are not strings or numbers), then the failures. */
function printRows(output: Output, rows: Record<string, unknown>[], failed: { orgId: string; error: string }[]): void {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cell = (value: unknown) => (value === null || value === undefined ? '' : typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value));
  const table = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, i) => Math.max(column.length, ...table.map((cells) => cells[i]!.length)));
  if (rows.length > 0) {
    output.info(columns.map((column, i) => column.padEnd(widths[i]!)).join('  ').trimEnd());
    for (const cells of table) output.info(cells.map((value, i) => value.padEnd(widths[i]!)).join('  ').trimEnd());
  }
  output.info(`(${rows.length} row${rows.length === 1 ? '' : 's'}${failed.length ? `, ${failed.length} tenant${failed.length === 1 ? '' : 's'} failed` : ''})`);
  for (const failure of failed) output.warn(failure.error);
}
