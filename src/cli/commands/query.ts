import { parseDuration } from '../../config/duration.ts';
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { withDatabase } from '../context.ts';
import { streamingArrayDocument } from '../json-stream.ts';
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
          // Rows are written as the tenants are read (org id order), never all held at once.
          const sink = output.json ? jsonRows() : tableRows(output);
          const result = await queryTenants(db.knex, flags.sql, {
            tenants: flags.tenant,
            concurrency,
            registry: config.registryTable,
            statementTimeoutMs: parseMilliseconds(flags.statementTimeout),
            onWarning: output.warn,
            onRows: sink.rows,
          });
          sink.end(result.ok, result.failed);
          return result.ok ? 0 : 1;
        }),
      ),
    );
};

/** The one duration parser (config/duration.ts); a read always has a limit here, so 0 is refused. */
function parseMilliseconds(raw: string): number {
  return parseDuration(raw, '--statement-timeout', { allowZero: false });
}

/** The `--json` document `{ "rows": [...], "failed": [...], "ok": … }`, rows written as they come. */
function jsonRows() {
  const document = streamingArrayDocument((chunk) => process.stdout.write(chunk), 'rows');
  let count = 0;
  return {
    rows(rows: Record<string, unknown>[]) {
      for (const row of rows) document.item(row);
      count += rows.length;
    },
    end: (ok: boolean, failed: { orgId: string; error: string }[]) => document.end({ failed, ok }),
    count: () => count,
  };
}

/** Rows read before the table's columns and widths are fixed; wider values later just stick out. */
const ROWS_TO_MEASURE = 200;

/** An aligned table (values as JSON where they are not strings or numbers), then the failures. */
function tableRows(output: Output) {
  const cell = (value: unknown) => (value === null || value === undefined ? '' : typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value));
  let measuring: Record<string, unknown>[] | undefined = [];
  let columns: string[] = [];
  let widths: number[] = [];
  let count = 0;
  const print = (rows: Record<string, unknown>[]) => {
    if (rows.length > 0) output.info(rows.map((row) => columns.map((column, i) => cell(row[column]).padEnd(widths[i]!)).join('  ').trimEnd()).join('\n'));
  };
  const fix = () => {
    const rows = measuring ?? [];
    measuring = undefined;
    columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
    widths = columns.map((column) => rows.reduce((width, row) => Math.max(width, cell(row[column]).length), column.length));
    if (rows.length > 0) output.info(columns.map((column, i) => column.padEnd(widths[i]!)).join('  ').trimEnd());
    print(rows);
  };
  return {
    rows(rows: Record<string, unknown>[]) {
      count += rows.length;
      if (!measuring) return print(rows);
      for (const row of rows) measuring.push(row);
      if (measuring.length >= ROWS_TO_MEASURE) fix();
    },
    end(_ok: boolean, failed: { orgId: string; error: string }[]) {
      if (measuring) fix();
      output.info(`(${count} row${count === 1 ? '' : 's'}${failed.length ? `, ${failed.length} tenant${failed.length === 1 ? '' : 's'} failed` : ''})`);
      for (const failure of failed) output.warn(failure.error);
    },
    count: () => count,
  };
}
