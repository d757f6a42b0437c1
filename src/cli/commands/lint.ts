import path from 'node:path';
import type { Command } from 'commander';
import pc from 'picocolors';
import type { LintResult } from '../../lint/lint-trees.ts';
import type { Tree } from '../../migration/checksums.ts';
import { withDatabase } from '../context.ts';
import type { Output } from '../output.ts';
import type { Register } from '../register.ts';

export const registerLintCommand: Register = (program: Command, run) => {
  program
    .command('lint')
    .description('check the master and tenant trees for fleet-unsafe DDL (the SQL they send, run on a scratch schema and rolled back)')
    .option('--strict', 'exit 1 on any finding (default: findings are warnings)')
    .option('--json', 'print { ok, findings: [...], notChecked: [...] } as JSON on stdout')
    .action((flags: { json?: boolean; strict?: boolean }) =>
      run('lint', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { lintTrees } = await import('../../lint/lint-trees.ts');
          const result = await lintTrees(db.knex, { masterDirectory: config.masterMigrationsDir, tenantDirectory: config.tenantMigrationsDir, toolLockTimeoutMs: config.live.lockTimeoutMs });
          if (output.json) await output.document(result);
          else {
            for (const line of lintLines(result)) output.info(line);
            output.info(result.ok ? pc.green('lint: no findings') : `lint: ${result.findings.length} finding${result.findings.length === 1 ? '' : 's'}${result.notChecked.length ? `, ${result.notChecked.length} not checked` : ''}${flags.strict ? '' : ' (warnings; --strict fails on them)'}`);
          }
          return flags.strict && !result.ok ? 1 : 0;
        }),
      ),
    );
};

export function lintLines(result: LintResult): string[] {
  return [
    ...result.findings.flatMap((finding) => [
      `${pc.yellow('warning')} ${finding.tree}/${finding.migration}: [${finding.rule}] ${finding.reason}`,
      `  ${pc.dim(finding.statement.length > 160 ? `${finding.statement.slice(0, 157)}…` : finding.statement)}`,
      `  fix: ${finding.fix}`,
    ]),
    ...result.notChecked.map((entry) => `${pc.yellow('not checked')} ${entry.tree}/${entry.migration}: ${entry.why}`),
  ];
}

/**
 * What migrate:master and migrate:tenants run first: the linter on the tree, findings reported for
 * the migrations this run would apply. Warnings only — with `strict`, any finding stops the command
 * (exit 1) before anything is written. Nothing pending: nothing to lint, nothing run.
 */
export async function lintBeforeMigrating(
  knex: import('knex').Knex,
  output: Output,
  tree: Tree,
  config: import('../../config/load-config.ts').Config,
  strict: boolean | undefined,
): Promise<boolean> {
  const { directorySource } = await import('../../migration/source.ts');
  const { pendingSomewhere } = await import('../../lint/pending.ts');
  const source = directorySource(path.resolve(tree === 'master' ? config.masterMigrationsDir : config.tenantMigrationsDir));
  const pending = await pendingSomewhere(knex, tree, source.names, config.registryTable);
  if (pending.size === 0) return true;
  const { lintTrees } = await import('../../lint/lint-trees.ts');
  const result = await lintTrees(knex, { masterDirectory: config.masterMigrationsDir, tenantDirectory: config.tenantMigrationsDir, trees: [tree], only: { [tree]: pending }, toolLockTimeoutMs: config.live.lockTimeoutMs });
  for (const finding of result.findings) output.warn(`lint ${finding.tree}/${finding.migration}: [${finding.rule}] ${finding.reason} — fix: ${finding.fix}`);
  if (strict && result.findings.length > 0) {
    const error = `${result.findings.length} lint finding${result.findings.length === 1 ? '' : 's'} with --strict: nothing was migrated.`;
    output.info(pc.red(error));
    // --json promises one document on stdout, a refusal included.
    if (output.json) await output.document({ command: tree === 'master' ? 'migrate:master' : 'migrate:tenants', ok: false, error, findings: result.findings });
    return false;
  }
  return true;
}
