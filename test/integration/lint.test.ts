/**
 * `lint` on real trees: the SQL is captured on a scratch schema (rolled back), judged by the rules,
 * reported as warnings (`--strict`: exit 1); migrate:* lints what it is about to apply and goes on
 * unless `--strict`. A comment naming a rule silences it for that migration. Nothing is changed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
    const report = JSON.parse((await cli('lint', '--json')).stdout);
    expect(report.findings.filter((finding: { tree: string }) => finding.tree === 'master').map((finding: { rule: string }) => finding.rule).sort()).toEqual([
      'index-not-concurrent',
      'missing-lock-timeout',
    ]);
    const migrated = await cli('migrate:master');
    expect(migrated.code).toBe(0);
    expect(migrated.stderr).toContain('lint master/20260401000000_plans_index.ts: [index-not-concurrent]');
  });
});
