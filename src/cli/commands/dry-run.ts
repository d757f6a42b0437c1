/** `--dry-run` of migrate:master, migrate:tenants, provision:tenant and rollback:tenants. */
import pc from 'picocolors';
import type { DryRunCommand, DryRunOptions, DryRunResult } from '../../dry-run/dry-run.ts';
import { withDatabase, type CommonFlags } from '../context.ts';
import type { Output } from '../output.ts';

export const DRY_RUN_HELP = 'print the plan and the SQL it would send (captured in a transaction that is rolled back), change nothing';

type Config = import('../../config/load-config.ts').Config;

/** `before`: what the real command checks first (lint with --strict), with the same outcome. */
export async function runDryRun(
  output: Output,
  flags: CommonFlags,
  command: DryRunCommand,
  options: (config: Config) => DryRunOptions,
  before?: (knex: import('knex').Knex, config: Config) => Promise<boolean>,
): Promise<number> {
  // The flags the real command checks (a bad --concurrency is exit 2 here too), then the dry run.
  return withDatabase(flags, async (db, config) => {
    if (before && !(await before(db.knex, config))) return 1;
    const { dryRun } = await import('../../dry-run/dry-run.ts');
    const result = await dryRun(db.knex, command, { registry: config.registryTable, ...options(config) });
    if (output.json) await output.document(result);
    else for (const line of dryRunLines(result)) output.info(line);
    return result.ok ? 0 : 1;
  });
}

function dryRunLines(result: DryRunResult): string[] {
  const undo = result.command === 'rollback:tenants';
  const lines: string[] = [];
  for (const group of result.plan) {
    const who =
      result.command === 'migrate:master'
        ? `public at ${group.fromVersion ?? '(nothing applied)'}`
        : `${group.tenantCount} tenant${group.tenantCount === 1 ? '' : 's'} ${group.fromVersion === null && result.command === 'provision:tenant' ? 'to provision' : `at ${group.fromVersion ?? '(nothing applied)'}`} (${preview(group.orgIds)})`;
    lines.push(group.migrations.length === 0 ? `${who}: nothing to do` : `${who}: would ${undo ? 'undo' : 'apply'} ${group.migrations.join(', ')}`);
  }
  if (result.plan.length === 0) lines.push('no tenants: nothing to do');
  for (const { wave, orgIds } of result.waves ?? []) {
    lines.push(`wave ${wave}/${result.waves!.length}${wave === 1 ? ' (canary)' : ''}: ${orgIds.length} tenant${orgIds.length === 1 ? '' : 's'} (${preview(orgIds)})`);
  }
  // In the order they would run (the plan's), each with what it sent and why it was not captured.
  const ordered = new Set([...result.plan.flatMap((group) => group.migrations), ...Object.keys(result.sql), ...Object.keys(result.notCaptured)]);
  for (const name of ordered) {
    const statements = result.sql[name];
    const why = result.notCaptured[name];
    if (statements === undefined && why === undefined) continue;
    lines.push('', pc.bold(`-- ${name}${undo ? ' (down)' : ''}`), ...(statements ?? []).map((sql) => `${sql.replace(/;\s*$/, '')};`));
    if (why !== undefined) lines.push(`-- not captured: ${why}`);
  }
  if (!result.ok) lines.push('', pc.red(`✘ the dry run failed: ${result.error}`));
  if (ordered.size === 0) return lines;
  lines.push(
    '',
    `Dry run: the SQL above was captured by running the migrations ${result.command === 'migrate:master' ? 'in public' : 'for one tenant of each group'} in a transaction that was rolled back; nothing was changed.`,
  );
  return lines;
}

function preview(orgIds: readonly string[]): string {
  return orgIds.length <= 3 ? orgIds.join(', ') : `${orgIds.slice(0, 3).join(', ')} and ${orgIds.length - 3} more`;
}
