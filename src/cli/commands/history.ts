import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import type { RunRecord } from '../../history/run-ledger.ts';
import { withDatabase } from '../context.ts';
import type { Register } from '../register.ts';

export const registerHistoryCommand: Register = (program: Command, run) => {
  program
    .command('history')
    .description('the run history: who ran which command that changed the database, when, and how it ended (newest first)')
    .option('--limit <n>', 'how many runs', '20')
    .option('--run <id>', 'one run, with its summary and every failure')
    .option('--json', 'print { runs: [...] } as JSON on stdout')
    .action((flags: { limit: string; run?: string; json?: boolean }) =>
      run('history', flags, (output) =>
        withDatabase({}, async (db) => {
          const limit = wholeNumber(flags.limit, '--limit');
          const id = flags.run === undefined ? undefined : wholeNumber(flags.run, '--run');
          const { listRuns } = await import('../../history/run-ledger.ts');
          const runs = await listRuns(db.knex, { limit, id });
          if (id !== undefined && runs.length === 0) throw new UsageError(`No run ${id} in the history.`);
          if (output.json) await output.document({ runs });
          else if (id !== undefined) for (const line of runDetail(runs[0]!)) output.info(line);
          else if (runs.length === 0) output.info('No runs recorded yet: the history starts with the first command that changes the database.');
          else for (const line of runTable(runs)) output.info(line);
          return 0;
        }),
      ),
    );
};

function wholeNumber(raw: string, flag: string): number {
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1) throw new UsageError(`${flag} must be a whole number (1 or more), got "${raw}".`);
  return Number(raw);
}

function who(run: RunRecord): string {
  const ci = run.actor.ci?.GITHUB_ACTOR ?? run.actor.ci?.GITLAB_USER_LOGIN;
  return `${ci ? `${ci} (CI)` : run.actor.osUser}@${run.actor.host}`;
}

function took(run: RunRecord): string {
  if (!run.finishedAt) return '';
  const ms = Date.parse(run.finishedAt) - Date.parse(run.startedAt);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function runTable(runs: RunRecord[]): string[] {
  const rows = runs.map((run) => [
    String(run.id),
    run.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    run.outcome,
    took(run),
    who(run),
    [run.command, ...run.args.slice(1)].join(' '),
  ]);
  const header = ['id', 'started (UTC)', 'outcome', 'took', 'who', 'command'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((cells) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function runDetail(run: RunRecord): string[] {
  return [
    `run ${run.id}: ${[run.command, ...run.args.slice(1)].join(' ')}`,
    `  outcome   ${run.outcome}`,
    `  started   ${run.startedAt}`,
    `  finished  ${run.finishedAt ?? '—'}${run.finishedAt ? ` (${took(run)})` : ''}`,
    `  who       ${run.actor.osUser}@${run.actor.host} (pid ${run.actor.pid}), database user ${run.actor.databaseUser ?? '?'}`,
    ...(run.actor.ci ? Object.entries(run.actor.ci).map(([name, value]) => `  ${name.padEnd(9)} ${value}`) : []),
    `  summary   ${JSON.stringify(run.summary)}`,
    ...run.failures.map((failure) => `  failed    ${failure.error}`),
  ];
}
