/**
 * `lint`: checks the master and tenant trees for fleet-unsafe DDL (rules.ts). Each tree runs, in
 * order, on a scratch schema of the configured database inside a transaction that is rolled back
 * (capture-sql.ts, as `--dry-run` does), so the rules judge the SQL the migrations really send —
 * parsed by PostgreSQL's own parser, not matched by regular expressions — and nothing is kept.
 * A `config.transaction = false` migration cannot run there: it is listed as not checked.
 *
 * A migration silences a rule with a comment naming it, anywhere in its file:
 *   // tenant-migrate-lint-ignore: rename-or-drop
 * A name that is no rule is reported (UNKNOWN_IGNORE), so a typo does not pass for a silenced rule.
 */
import { liveSettingsOf } from '../db/lock-settings.ts';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { parseSql } from '../db/parse-sql.ts';
import { captureSql, type Captured } from '../migration/capture-sql.ts';
import type { Tree } from '../migration/checksums.ts';
import { describeError } from '../migration/describe-error.ts';
import { directorySource, isTransactional, type MigrationSource } from '../migration/source.ts';
import { afterStatement, RULES, type StatementNode } from './rules.ts';

export interface LintFinding {
  rule: string;
  tree: Tree;
  migration: string;
  statement: string;
  reason: string;
  fix: string;
}

export interface LintResult {
  command: 'lint';
  /** No finding and every migration checked. */
  ok: boolean;
  findings: LintFinding[];
  /** Migrations that could not be run on the scratch schema, and why. */
  notChecked: { tree: Tree; migration: string; why: string }[];
}

export interface LintOptions {
  masterDirectory?: string;
  tenantDirectory?: string;
  /** Only these trees (default both). */
  trees?: readonly Tree[];
  /** Report findings only for these migrations of a tree (e.g. the pending ones). */
  only?: Partial<Record<Tree, ReadonlySet<string>>>;
  /**
   * The lock timeout the tool itself sets before a migration runs (TENANT_LOCK_TIMEOUT; 0 = off):
   * while it is on, missing-lock-timeout has nothing to add. Default: the environment's, else 1 s.
   */
  toolLockTimeoutMs?: number;
}

const IGNORE = /tenant-migrate-lint-ignore:\s*([\w-]+(?:\s*,\s*[\w-]+)*)/g;

/** The finding for an ignore comment that names no rule (not a rule itself: nothing can silence it). */
export const UNKNOWN_IGNORE = 'unknown-lint-ignore';

/**
 * @example
 *   const { findings } = await lintTrees(knex, { masterDirectory: 'migrations/master', tenantDirectory: 'migrations/tenant' });
 *   for (const f of findings) console.warn(`${f.migration}: [${f.rule}] ${f.reason}`);
 */
export async function lintTrees(knex: Knex, options: LintOptions = {}): Promise<LintResult> {
  const result: LintResult = { command: 'lint', ok: true, findings: [], notChecked: [] };
  const directories: Record<Tree, string> = { master: options.masterDirectory ?? 'migrations/master', tenant: options.tenantDirectory ?? 'migrations/tenant' };
  for (const tree of options.trees ?? (['master', 'tenant'] as const)) {
    const source = directorySource(path.resolve(directories[tree]));
    const only = options.only?.[tree];
    for (const name of source.names) if (!only || only.has(name)) checkIgnoreComments(tree, source, name, result);
    const steps = await loadableSteps(tree, source, result);
    const captured: Captured = { sql: {}, notCaptured: {} };
    const scratch = `tm_lint_${crypto.randomBytes(5).toString('hex')}`;
    let failure: string | undefined;
    try {
      await captureSql(knex, { schema: scratch, source, direction: 'up', steps, createSchema: true }, captured);
    } catch (error) {
      failure = describeError(error);
    }
    for (const name of steps) {
      // Lint what a migration sent, even when it was stopped part way (it ended its transaction).
      if (captured.sql[name]) await lintMigration(tree, source, name, captured.sql[name], only, result, options.toolLockTimeoutMs);
      if (captured.sql[name] && captured.notCaptured[name] && (!only || only.has(name))) result.notChecked.push({ tree, migration: name, why: captured.notCaptured[name]! });
      if (!captured.sql[name]) {
        const why = captured.notCaptured[name] ?? `not run: an earlier migration failed on the scratch schema (${failure})`;
        result.notChecked.push({ tree, migration: name, why });
      }
    }
    // The migration that failed was linted up to its error; it is not checked past it. captureSql
    // names it first in its message ("<name> (up) failed: …"); a failure outside any migration is
    // already in the "not run" of each one it kept from running.
    const failed = failure === undefined ? undefined : steps.find((name) => failure.startsWith(`${name} (`));
    if (failed) result.notChecked.push({ tree, migration: failed, why: failure! });
  }
  result.ok = result.findings.length === 0 && result.notChecked.length === 0;
  return result;
}

/**
 * The migrations that can run: each is imported first, so a file that does not load (a TypeScript
 * syntax error, a missing `up`) is reported under its own name with the loader's message — inside
 * captureSql the failure would name no migration. The ones after it are not run: they may depend
 * on it.
 */
async function loadableSteps(tree: Tree, source: MigrationSource, into: LintResult): Promise<readonly string[]> {
  for (const [index, name] of source.names.entries()) {
    try {
      await source.load(name);
    } catch (error) {
      into.notChecked.push({ tree, migration: name, why: `cannot be loaded: ${oneLine(describeError(error))}` });
      for (const later of source.names.slice(index + 1)) into.notChecked.push({ tree, migration: later, why: `not run: an earlier migration (${name}) cannot be loaded` });
      return source.names.slice(0, index);
    }
  }
  return source.names;
}

/** tsx's messages span lines ("Transform failed with 1 error:\n<file>:3:0: ERROR: …"); a report line does not. */
const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ');

/**
 * Reports the ids of a migration's ignore comments that are no rule: a typo (`rename-or-dorp`)
 * would silence nothing without a word. It is a finding of its own (a warning; --strict fails on
 * it), with the valid ids. Checked on the file's text, so also for a migration that cannot run.
 */
function checkIgnoreComments(tree: Tree, source: MigrationSource, name: string, into: LintResult): void {
  const known = new Set(RULES.map((rule) => rule.id));
  for (const match of fs.readFileSync(path.join(source.directory, name), 'utf8').matchAll(IGNORE)) {
    const unknown = idsOf(match).filter((id) => !known.has(id));
    if (unknown.length === 0) continue;
    into.findings.push({
      rule: UNKNOWN_IGNORE,
      tree,
      migration: name,
      statement: match[0],
      reason: `the ignore comment names ${unknown.map((id) => `"${id}"`).join(', ')}, which ${unknown.length === 1 ? 'is' : 'are'} no lint rule: it silences nothing`,
      fix: `name one of the rules: ${[...known].join(', ')}`,
    });
  }
}

const idsOf = (match: RegExpMatchArray): string[] => match[1]!.split(',').map((id) => id.trim());

async function lintMigration(tree: Tree, source: MigrationSource, name: string, statements: readonly string[], only: ReadonlySet<string> | undefined, into: LintResult, toolLockTimeoutMs?: number): Promise<void> {
  if (only && !only.has(name)) return;
  const text = fs.readFileSync(path.join(source.directory, name), 'utf8');
  const ignored = new Set([...text.matchAll(IGNORE)].flatMap(idsOf));
  const transactional = isTransactional(await source.load(name));
  for (const finding of await judgeStatements(tree, statements, { transactional, ignored, toolLockTimeoutMs })) {
    const rule = RULES.find((candidate) => candidate.id === finding.rule)!;
    into.findings.push({ rule: rule.id, tree, migration: name, statement: finding.statement, reason: rule.reason, fix: rule.fix });
  }
}

/**
 * The rules' verdict on one migration's statements, in the order it sent them.
 *
 * @example
 *   await judgeStatements('tenant', ['alter table "users" drop column "email"']);
 *   // → [{ rule: 'rename-or-drop', statement: 'alter table "users" drop column "email"' }]
 */
export async function judgeStatements(
  tree: Tree,
  statements: readonly string[],
  {
    transactional = true,
    ignored = new Set<string>(),
    toolLockTimeoutMs = liveSettingsOf().lockTimeoutMs,
  }: { transactional?: boolean; ignored?: ReadonlySet<string>; toolLockTimeoutMs?: number } = {},
): Promise<{ rule: string; statement: string }[]> {
  // The tool sets lock_timeout itself before a migration runs (issue #20): a migration starts with one in force.
  const context = { tree, transactional, createdHere: new Set<string>(), lockTimeoutSet: toolLockTimeoutMs > 0 };
  const verdicts: { rule: string; statement: string }[] = [];
  for (const sql of statements) {
    const parsed = await parseSql(sql).catch(() => []); // what PostgreSQL's parser cannot read, no rule can judge
    for (const { stmt } of parsed) {
      if (!stmt) continue;
      const statement = stmt as StatementNode;
      for (const rule of RULES) {
        if (rule.trees.includes(tree) && !ignored.has(rule.id) && rule.check(statement, context)) verdicts.push({ rule: rule.id, statement: sql });
      }
      afterStatement(statement, context);
    }
  }
  return verdicts;
}
