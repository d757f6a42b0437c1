/**
 * `lint` on real trees: the SQL is captured on a scratch schema (rolled back), judged by the rules,
 * reported as warnings (`--strict`: exit 1); migrate:* lints what it is about to apply and goes on
 * unless `--strict`. A comment naming a rule silences it for that migration. Nothing is changed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lintTrees, type LintFinding } from '../../src/lint/lint-trees.ts';
import { RULES } from '../../src/lint/rules.ts';
import { migrateMaster } from '../../src/master/master.ts';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropEverything } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_lint' });
afterEach(() => expectNoLeftovers(db.knex()));

const DROP = '20260301000004_drop_body.ts';
let master: string;
let tenant: string;
beforeEach(async () => {
  await dropEverything(db.knex());
  master = copyTree('master-basic');
  tenant = copyTree('tenant-basic');
  await migrateMaster(db.knex(), { directory: master });
  await provisionTenant(db.knex(), ['org_a', 'org_b'], { directory: tenant });
  writeMigration(tenant, DROP, "await knex.schema.alterTable('notes', (t) => t.dropColumn('body'));");
});

const cli = (...args: string[]) => runCli(args, { env: treeEnv(db.url, { master, tenant }) });
const schemas = async () => (await db.knex().raw("select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema' order by 1")).rows;
const applied = (orgId: string) => db.knex()('tenants').where({ org_id: orgId }).first('migration_version');

describe('lint', () => {
  it('reports the rule, the migration and the SQL it sends; warnings unless --strict; nothing changed', async () => {
    const before = await schemas();
    const result = await cli('lint', '--json');
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.ok).toBe(false);
    expect(report.findings).toEqual([
      {
        rule: 'rename-or-drop',
        tree: 'tenant',
        migration: DROP,
        statement: 'alter table "notes" drop column "body"',
        reason: expect.stringContaining('breaks the app version still running'),
        fix: expect.any(String),
      },
    ]);
    expect((await cli('lint', '--strict')).code).toBe(1);
    const human = await cli('lint');
    expect(human.stdout).toContain(`warning tenant/${DROP}: [rename-or-drop]`);
    expect(human.stdout).toContain('lint: 1 finding (warnings; --strict fails on them)');
    expect(await schemas()).toEqual(before); // no scratch schema left, nothing created
  });

  it('a comment naming the rule silences it for that migration', async () => {
    fs.appendFileSync(path.join(tenant, DROP), '// tenant-migrate-lint-ignore: rename-or-drop (the app stopped reading notes.body in 2.3)\n');
    const result = await cli('lint', '--strict', '--json');
    expect(result.code, result.stdout).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, findings: [] });
  });

  it('migrate:tenants prints the warnings of what it applies and migrates; with --strict it stops with nothing changed', async () => {
    const strict = await cli('migrate:tenants', '--strict');
    expect(strict.code).toBe(1);
    expect(strict.stderr).toContain(`lint tenant/${DROP}: [rename-or-drop]`);
    expect(strict.stdout).toContain('1 lint finding with --strict: nothing was migrated.');
    expect(await applied('org_a')).toEqual({ migration_version: '20260201000003_nickname.ts' });
    // The dry run of a --strict deploy fails where the deploy would.
    for (const args of [['migrate:tenants', '--strict', '--json'], ['migrate:tenants', '--strict', '--dry-run', '--json']]) {
      const refused = await cli(...args);
      expect(refused.code).toBe(1);
      expect(JSON.parse(refused.stdout)).toMatchObject({ command: 'migrate:tenants', ok: false, findings: [expect.objectContaining({ rule: 'rename-or-drop' })] });
    }
    const preview = await cli('migrate:tenants', '--strict', '--dry-run');
    expect(preview.code).toBe(1);
    expect(preview.stderr).toContain(`lint tenant/${DROP}: [rename-or-drop]`);

    const warned = await cli('migrate:tenants');
    expect(warned.code, warned.stderr).toBe(0);
    expect(warned.stderr).toContain(`lint tenant/${DROP}: [rename-or-drop]`);
    expect(await applied('org_a')).toEqual({ migration_version: DROP });
    // Nothing pending: nothing linted, nothing said.
    expect((await cli('migrate:tenants')).stderr).not.toContain('lint');
  });

  it('the master tree: an index built without CONCURRENTLY and no lock_timeout on a shared table', async () => {
    writeMigration(master, '20260401000000_plans_index.ts', "await knex.schema.alterTable('plans', (t) => t.index(['name']));");
    // With the tool's lock timeout off, the migration has none of its own; with the default (1 s), it has the tool's.
    const report = JSON.parse((await runCli(['lint', '--json'], { env: { ...treeEnv(db.url, { master, tenant }), TENANT_LOCK_TIMEOUT: '0' } })).stdout);
    expect(report.findings.filter((finding: { tree: string }) => finding.tree === 'master').map((finding: { rule: string }) => finding.rule).sort()).toEqual([
      'index-not-concurrent',
      'missing-lock-timeout',
    ]);
    const byDefault = JSON.parse((await cli('lint', '--json')).stdout);
    expect(byDefault.findings.filter((finding: { tree: string }) => finding.tree === 'master').map((finding: { rule: string }) => finding.rule)).toEqual(['index-not-concurrent']);
    const migrated = await cli('migrate:master');
    expect(migrated.code).toBe(0);
    expect(migrated.stderr).toContain('lint master/20260401000000_plans_index.ts: [index-not-concurrent]');
  });

  it("the tenant tree: knex's hasTable / hasColumn read information_schema, which is no other tenant's data", async () => {
    writeMigration(
      tenant,
      '20260301000005_labels.ts',
      "if (!(await knex.schema.hasTable('labels'))) await knex.schema.createTable('labels', (t) => { t.increments('id'); });\n" +
        "if (!(await knex.schema.hasColumn('labels', 'name'))) await knex.schema.alterTable('labels', (t) => { t.text('name'); });",
    );
    const report = await lintTrees(db.knex(), { masterDirectory: master, tenantDirectory: tenant, trees: ['tenant'] });
    expect(report.notChecked).toEqual([]);
    expect(report.findings.filter((finding) => finding.migration === '20260301000005_labels.ts')).toEqual([]);
  });

  it('the master tree: t.unique() on a shared table builds its index without CONCURRENTLY; LOCK TABLE and truncate() need a lock_timeout', async () => {
    writeMigration(master, '20260401000000_plans_unique.ts', "await knex.schema.alterTable('plans', (t) => t.unique(['name', 'price_cents']));");
    writeMigration(master, '20260401000001_plans_reset.ts', "await knex.raw('lock table plans in access exclusive mode');\nawait knex('plans').truncate();");
    const report = await lintTrees(db.knex(), { masterDirectory: master, tenantDirectory: tenant, trees: ['master'], toolLockTimeoutMs: 0 });
    const rules = (migration: string) => report.findings.filter((finding) => finding.migration === migration).map((finding) => finding.rule);
    expect(rules('20260401000000_plans_unique.ts').sort()).toEqual(['index-not-concurrent', 'missing-lock-timeout']);
    expect(rules('20260401000001_plans_reset.ts')).toEqual(['missing-lock-timeout', 'missing-lock-timeout']);
  });

  it('a migration with a TypeScript syntax error is not checked, under its own name with the loader\'s message; the ones after it are not run', async () => {
    writeMigration(tenant, '20260301000005_broken.ts', "await knex.raw('select 1'");
    writeMigration(tenant, '20260301000006_after.ts', "await knex.raw('select 2');");
    const result = await cli('lint', '--json');
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.findings.map((finding: LintFinding) => `${finding.migration} ${finding.rule}`)).toEqual([`${DROP} rename-or-drop`]); // the ones before it are linted
    expect(report.notChecked).toEqual([
      { tree: 'tenant', migration: '20260301000005_broken.ts', why: expect.stringMatching(/^cannot be loaded: .*20260301000005_broken\.ts:\d+:\d+: ERROR: /) },
      { tree: 'tenant', migration: '20260301000006_after.ts', why: 'not run: an earlier migration (20260301000005_broken.ts) cannot be loaded' },
    ]);
  });

  it('an ignore comment naming no rule (a typo) is a warning naming the file, the id and the valid ids; it silences nothing; --strict fails on it', async () => {
    fs.appendFileSync(path.join(tenant, DROP), '// tenant-migrate-lint-ignore: rename-or-dorp\n');
    const human = await cli('lint');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`warning tenant/${DROP}: [unknown-lint-ignore] the ignore comment names "rename-or-dorp", which is no lint rule: it silences nothing`);
    expect(human.stdout).toContain(`fix: name one of the rules: ${RULES.map((rule) => rule.id).join(', ')}`);
    expect(human.stdout).toContain(`warning tenant/${DROP}: [rename-or-drop]`);

    const strict = await cli('lint', '--strict', '--json');
    expect(strict.code).toBe(1);
    expect(JSON.parse(strict.stdout).findings.map((finding: LintFinding) => finding.rule).sort()).toEqual(['rename-or-drop', 'unknown-lint-ignore']);
  });
});
