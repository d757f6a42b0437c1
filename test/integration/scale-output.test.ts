/**
 * Issue 23, part 3: output that grows with the fleet. On 300 tenants, without a terminal, a fleet
 * run prints its failures and a few progress lines, not a line per tenant; `--json` is still one
 * valid document listing every tenant; `query:tenants` streams one row per tenant (text and JSON);
 * the dry run shows each distinct plan's SQL once.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';

const db = useFreshDatabase({ prefix: 'tm_scale_output' });
const FLEET = 300;
const orgIds = Array.from({ length: FLEET }, (_, i) => `org_fleet${String(i).padStart(4, '0')}`);
let tree: string;
let env: Record<string, string>;

beforeAll(async () => {
  tree = copyTree('tenant-basic', 0);
  env = treeEnv(db.url, { tenant: tree });
  // The registry as tenant-migrate makes it, then 300 registered tenants with empty bookkeeping in
  // a few statements (300 provisioning runs would take minutes on a loaded CI machine).
  expect((await runCli(['provision:tenant', orgIds[0]!], { env })).code).toBe(0);
  const rest = orgIds.slice(1);
  const knex = db.knex();
  for (let i = 0; i < rest.length; i += 50) {
    const batch = rest.slice(i, i + 50);
    await knex.raw(
      batch
        .map((orgId) => {
          const schema = tenantSchemaName(orgId);
          return `create schema "${schema}";
            create table "${schema}".knex_migrations (id serial primary key, name varchar(255), batch integer, migration_time timestamptz);
            create table "${schema}".knex_migrations_lock ("index" serial primary key, is_locked integer);
            insert into "${schema}".knex_migrations_lock (is_locked) values (0);`;
        })
        .join('\n'),
    );
    await knex('tenants').insert(batch.map((orgId) => ({ org_id: orgId, schema_name: tenantSchemaName(orgId) })));
  }
  writeMigration(tree, '20260101000000_notes.ts', `  await knex.schema.createTable('notes', (t) => { t.increments('id'); t.text('body'); });`);
}, 120_000);

describe('a fleet of 300 tenants', () => {
  it('without a terminal: no line per tenant, a few progress lines and the summary', async () => {
    const run = await runCli(['migrate:tenants'], { env, timeoutMs: 170_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`migrate:tenants: ${FLEET} tenants — ${FLEET} migrated`);
    expect(run.stdout).not.toMatch(/org_fleet\d+ \(tid_/); // no per-tenant line
    const lines = `${run.stdout}${run.stderr}`.split('\n').filter((line) => line.trim() !== '');
    // One line a second at most, plus the summary and a warning or two.
    expect(lines.length, lines.join('\n')).toBeLessThanOrEqual(Math.ceil(run.ms / 1000) + 5);
    expect(lines.length).toBeLessThan(FLEET / 3);
  }, 180_000);

  it('--json: one valid document with every tenant', async () => {
    const run = await runCli(['migrate:tenants', '--json'], { env, timeoutMs: 100_000 });
    expect(run.code, run.stderr).toBe(0);
    const document = JSON.parse(run.stdout) as { summary: { total: number; upToDate: number }; tenants: { orgId: string }[] };
    expect(document.summary).toMatchObject({ total: FLEET, upToDate: FLEET });
    expect(document.tenants.map((tenant) => tenant.orgId).sort()).toEqual([...orgIds].sort());
  }, 120_000);

  it('query:tenants streams one row per tenant, as text and as one JSON document', async () => {
    const json = await runCli(['query:tenants', '--sql', 'select count(*)::int as notes from notes', '--json'], { env, timeoutMs: 100_000 });
    expect(json.code, json.stderr).toBe(0);
    const document = JSON.parse(json.stdout) as { ok: boolean; rows: { org_id: string; notes: number }[]; failed: unknown[] };
    expect(document).toMatchObject({ ok: true, failed: [] });
    expect(document.rows.map((row) => row.org_id)).toEqual([...orgIds].sort());
    expect(document.rows.every((row) => row.notes === 0)).toBe(true);

    const text = await runCli(['query:tenants', '--sql', 'select count(*)::int as notes from notes'], { env, timeoutMs: 100_000 });
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^org_id\s+notes$/);
    expect(lines).toHaveLength(FLEET + 2);
    expect(lines.at(-1)).toBe(`(${FLEET} rows)`);
  }, 120_000);

  it('the dry run prints the SQL of a plan 300 tenants share once', async () => {
    writeMigration(tree, '20260101000001_tags.ts', `  await knex.schema.createTable('tags', (t) => { t.increments('id'); });`);
    const run = await runCli(['migrate:tenants', '--dry-run'], { env, timeoutMs: 100_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`${FLEET} tenants at 20260101000000_notes.ts`);
    expect(run.stdout.match(/create table "tags"/g)).toHaveLength(1);
    expect(run.stdout.split('\n').length).toBeLessThan(20);
  }, 120_000);
});
