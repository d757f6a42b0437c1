/**
 * Checksums of applied migrations: an applied file edited afterwards stops migrate, rollback and
 * provision (exit 2, both hashes named, nothing written); status lists it and --check fails;
 * checksums:accept records the edit as intended; pending files may be edited freely.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileChecksum } from '../../src/migration/checksums.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropEverything, tenantSchemas } from '../support/fleet.ts';
import { expectNoLeftovers } from '../support/leftovers.ts';
import { copyTree, treeEnv, writeMigration } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_checksums' });
afterEach(() => expectNoLeftovers(db.knex()));

let master: string;
let tenant: string;
beforeEach(async () => {
  await dropEverything(db.knex());
  master = copyTree('master-basic');
  tenant = copyTree('tenant-basic');
});

const cli = (...args: string[]) => runCli(args, { env: treeEnv(db.url, { master, tenant }) });
const FIRST = '20260101000001_org_users.ts';
const LAST = '20260201000003_nickname.ts';
const edit = (dir: string, name: string) => fs.appendFileSync(path.join(dir, name), '\n// edited after it was applied\n');
const recorded = async () =>
  Object.fromEntries(((await db.knex()('tenant_migrate_checksums').select('tree', 'name', 'sha256')) as { tree: string; name: string; sha256: string }[]).map((row) => [`${row.tree}/${row.name}`, row.sha256]));

/** Everything a refused command could have written. */
async function snapshot() {
  const knex = db.knex();
  const tables = async (schema: string) => (await knex.raw('select table_name from information_schema.tables where table_schema = ? order by 1', [schema])).rows;
  return {
    registry: await knex('tenants').orderBy('org_id').select('org_id', 'migration_version', 'migration_count'),
    master: await knex('knex_migrations').withSchema('public').orderBy('id').pluck('name'),
    schemas: await tenantSchemas(knex),
    tables: await Promise.all((await tenantSchemas(knex)).map(tables)),
    bookkeeping: await Promise.all((await tenantSchemas(knex)).map((schema) => knex.withSchema(schema).from('knex_migrations').orderBy('id').pluck('name'))),
    releases: await knex('tenant_migrate_releases').orderBy('id').select('id', 'migrations', 'rolled_back_at'),
    checksums: await recorded(),
  };
}

// Each test runs a dozen or more CLI commands (a Node start-up each): more than the default minute on a loaded machine.
describe('checksums of applied migrations', { timeout: 180_000 }, () => {
  it('are recorded once per tree and file (not per tenant); a tree applied before checksums were kept is recorded as it is, said once', async () => {
    const first = await cli('migrate:master');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toBe(''); // a new project: nothing to say
    await cli('provision:tenant', 'org_a', 'org_b', 'org_c');
    const rows = await recorded();
    expect(Object.keys(rows).sort()).toEqual([...fs.readdirSync(master).map((name) => `master/${name}`), ...fs.readdirSync(tenant).map((name) => `tenant/${name}`)].sort());
    expect(rows[`tenant/${FIRST}`]).toBe(fileChecksum(path.join(tenant, FIRST)));

    // As if the trees had been applied by an older tenant-migrate: no table yet.
    await db.knex().raw('drop table public.tenant_migrate_checksums');
    const master1 = await cli('migrate:master');
    expect(master1.stderr).toMatch(/recorded the checksums of 2 master migrations applied before checksums were kept/);
    const tenant1 = await cli('provision:tenant', 'org_d');
    expect(tenant1.stderr).toMatch(/recorded the checksums of 3 tenant migrations applied before checksums were kept/);
    expect(Object.keys(await recorded())).toHaveLength(5);
    for (const again of [await cli('migrate:master'), await cli('migrate:tenants')]) expect(again.stderr).not.toContain('before checksums were kept');
  });

  it('an edited applied tenant file stops migrate:tenants, provision:tenant and rollback:tenants with exit 2 and changes nothing', async () => {
    await cli('migrate:master');
    await cli('provision:tenant', 'org_a', 'org_b');
    const recordedSum = fileChecksum(path.join(tenant, FIRST));
    edit(tenant, FIRST);
    const current = fileChecksum(path.join(tenant, FIRST));
    const before = await snapshot();
    // A dry run refuses what the real command refuses: it would pass a CI gate the deploy then fails.
    for (const args of [['migrate:tenants'], ['provision:tenant', 'org_new'], ['rollback:tenants', '--all'], ['migrate:tenants', '--tenant', 'org_a'], ['migrate:tenants', '--dry-run'], ['provision:tenant', 'org_new', '--dry-run'], ['rollback:tenants', '--dry-run']]) {
      const result = await cli(...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(`${FIRST} (tenant tree) was edited after it was applied: sha256 ${current}, recorded ${recordedSum}`);
      expect(result.stderr).toContain('Nothing was changed');
    }
    expect(await snapshot()).toEqual(before);
    expect(await tenantSchemas(db.knex())).not.toContain(tenantSchemaName('org_new'));
  });

  it('an edited applied master file stops migrate:master and rollback:master', async () => {
    await cli('migrate:master');
    const [name] = fs.readdirSync(master).sort();
    edit(master, name!);
    const before = await db.knex()('knex_migrations').withSchema('public').pluck('name');
    for (const args of [['migrate:master'], ['rollback:master'], ['migrate:master', '--dry-run']]) {
      const result = await cli(...args);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`${name} \\(master tree\\) was edited after it was applied: sha256 [0-9a-f]{64}, recorded [0-9a-f]{64}`));
    }
    expect(await db.knex()('knex_migrations').withSchema('public').pluck('name')).toEqual(before);
  });

  it('a file no tenant has applied may be edited (a failed migration is fixed and run again); line endings are no edit', async () => {
    await cli('migrate:master');
    const newest = path.join(tenant, LAST);
    const content = fs.readFileSync(newest, 'utf8');
    fs.rmSync(newest);
    await cli('provision:tenant', 'org_a');
    // The release fails everywhere …
    fs.writeFileSync(newest, content.replace("table.text('nickname');", "table.text('nickname'); throw new Error('oops');"));
    expect((await cli('migrate:tenants')).code).toBe(1);
    expect(Object.keys(await recorded())).not.toContain(`tenant/${LAST}`);
    // … is fixed, and runs.
    fs.writeFileSync(newest, content);
    expect((await cli('migrate:tenants')).code).toBe(0);
    expect(Object.keys(await recorded())).toContain(`tenant/${LAST}`);
    // A checkout with CRLF line endings is the same file.
    fs.writeFileSync(path.join(tenant, FIRST), fs.readFileSync(path.join(tenant, FIRST), 'utf8').replace(/\n/g, '\r\n'));
    expect((await cli('migrate:tenants')).code).toBe(0);
  });

  it('status lists edited files and --check fails; checksums:accept makes them runnable again and is in the history', async () => {
    await cli('migrate:master');
    await cli('provision:tenant', 'org_a');
    edit(tenant, FIRST);
    const status = await cli('status', '--json');
    const document = JSON.parse(status.stdout);
    expect(document.editedFiles).toEqual([{ tree: 'tenant', name: FIRST, recorded: expect.stringMatching(/^[0-9a-f]{64}$/), current: fileChecksum(path.join(tenant, FIRST)) }]);
    expect(document.ok).toBe(false);
    expect((await cli('status', '--check')).code).toBe(1);
    expect((await cli('status')).stdout).toContain(`Edited after it was applied (tenant tree): ${FIRST}`);

    expect((await cli('checksums:accept', 'no_such_file.ts')).code).toBe(2);
    // A path means the file at that path: not the tenant tree's file of that name.
    expect((await cli('checksums:accept', path.join(master, FIRST))).code).toBe(2);
    expect((await cli('checksums:accept', path.join(tenant, '..', FIRST))).code).toBe(2);
    expect((await cli('checksums:accept', LAST.replace('nickname', 'later'))).code).toBe(2);
    const accepted = await cli('checksums:accept', path.join(tenant, FIRST), '--json');
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(JSON.parse(accepted.stdout).accepted).toEqual([expect.objectContaining({ tree: 'tenant', name: FIRST, changed: true, current: fileChecksum(path.join(tenant, FIRST)) })]);
    expect((await cli('status', '--check')).code).toBe(0);
    expect((await cli('migrate:tenants')).code).toBe(0);
    const history = JSON.parse((await cli('history', '--json')).stdout);
    expect(history.runs.map((run: { command: string }) => run.command)).toContain('checksums:accept');
  });

  it('a file added in the middle of the tree is not taken for an applied one: a later edit of an applied file is still caught', async () => {
    await cli('migrate:master');
    await cli('provision:tenant', 'org_a', 'org_b');
    const LATE = '20260201000002_late.ts';
    writeMigration(tenant, LATE, `await knex.raw('select 1');`);
    expect((await cli('migrate:tenants')).code).toBe(2); // pending but sorts before an applied one
    const rows = await recorded();
    expect(rows[`tenant/${LAST}`]).toBe(fileChecksum(path.join(tenant, LAST)));
    expect(rows[`tenant/${LATE}`]).toBeUndefined();

    fs.rmSync(path.join(tenant, LATE));
    edit(tenant, LAST);
    const before = await snapshot();
    const refused = await cli('migrate:tenants');
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`${LAST} (tenant tree) was edited after it was applied`);
    expect((await cli('status', '--check')).code).toBe(1);
    expect(await snapshot()).toEqual(before);
  });

  it('an applied file renamed (or deleted) stops migrate, rollback and provision with exit 2 and is in status, even in the middle of the tree', async () => {
    await cli('migrate:master');
    await cli('provision:tenant', 'org_a', 'org_b');
    const MIDDLE = '20260101000002_notes.ts';
    const renamed = MIDDLE.replace('notes', 'notes_renamed');
    fs.renameSync(path.join(tenant, MIDDLE), path.join(tenant, renamed));
    const before = await snapshot();
    for (const args of [['migrate:tenants'], ['rollback:tenants'], ['provision:tenant', 'org_c']]) {
      const refused = await cli(...args);
      expect(refused.code, `${args.join(' ')}: ${refused.stderr}`).toBe(2);
      expect(refused.stderr).toContain(`${MIDDLE} (tenant tree) is applied in at least one tenant but has no file`);
    }
    expect(await snapshot()).toEqual(before);
    const status = await cli('status', '--json', '--check');
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout).tenants.missingFiles).toEqual([MIDDLE]);

    fs.renameSync(path.join(tenant, renamed), path.join(tenant, MIDDLE));
    expect((await cli('status', '--check')).code).toBe(0);
    expect((await cli('rollback:tenants')).code).toBe(0);
  });

  it('checksums:accept on a database that never applied anything refuses (exit 2) and creates nothing', async () => {
    const refused = await cli('checksums:accept', FIRST);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`${FIRST} has no recorded checksum`);
    const tables = await db.knex().raw("select relname from pg_class where relnamespace = 'public'::regnamespace and relname like 'tenant_migrate%'");
    expect(tables.rows).toEqual([]);
  });

  it('a rollback forgets the files it left applied nowhere, so they can be edited and run again', async () => {
    await cli('migrate:master');
    await cli('provision:tenant', 'org_a', 'org_b');
    expect((await cli('rollback:tenants', '--to', FIRST)).code).toBe(0);
    expect(Object.keys(await recorded()).filter((key) => key.startsWith('tenant/'))).toEqual([`tenant/${FIRST}`]);
    edit(tenant, LAST);
    expect((await cli('migrate:tenants')).code).toBe(0);
  });
});
