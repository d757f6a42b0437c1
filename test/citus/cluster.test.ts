/**
 * tenant-migrate on a real three-node Citus cluster (scripts/citus-cluster.sh up): a coordinator and
 * two workers on loopback. Run with `pnpm test:citus`; CITUS_DATABASE_URL is the coordinator.
 * The tests share the cluster's `postgres` database and run in order (a fleet grows through them).
 */
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { runCli, startCli } from '../support/cli.ts';
import { copyTree, fixture, writeMigration } from '../support/trees.ts';

const url = process.env.CITUS_DATABASE_URL;
const ORGS = Array.from({ length: 50 }, (_, i) => `org_citus${String(i).padStart(2, '0')}`);

describe.skipIf(!url)('on a Citus cluster (coordinator + 2 workers)', () => {
  let knex: Knex;
  let tenantTree: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 4 } });
    // A clean slate in the shared database: every tenant schema and every table of the tool's.
    const { rows } = await knex.raw<{ rows: { nspname: string }[] }>("select nspname from pg_namespace where nspname like 'tid\\_%'");
    for (const { nspname } of rows) await knex.raw('drop schema ?? cascade', [nspname]);
    for (const table of ['tenants', 'tenant_migrate_releases', 'tenant_migrate_checksums', 'knex_migrations', 'knex_migrations_lock', 'plans']) {
      await knex.raw('drop table if exists public.?? cascade', [table]);
    }
    tenantTree = copyTree('citus/tenant');
    env = { DATABASE_URL: url!, MASTER_MIGRATIONS_DIR: fixture('citus/master'), TENANT_MIGRATIONS_DIR: tenantTree };
  });
  afterAll(async () => {
    await knex?.destroy();
  });

  const cli = async (args: string[], extra: Record<string, string> = {}) => {
    const result = await runCli(args, { env: { ...env, ...extra }, timeoutMs: 110_000 });
    return result;
  };
  const json = async (args: string[], extra: Record<string, string> = {}) => {
    const result = await cli([...args, '--json'], extra);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    return JSON.parse(result.stdout);
  };
  /** host:port of the worker holding a tenant's tables. */
  const nodeOf = async (orgId: string): Promise<string> => {
    const { rows } = await knex.raw<{ rows: { node: string }[] }>(
      `select distinct nodename || ':' || nodeport as node from citus_shards where table_name::text like ? || '.%'`,
      [tenantSchemaName(orgId)],
    );
    expect(rows).toHaveLength(1); // every table of the schema on one node
    return rows[0]!.node;
  };
  const applied = async (orgId: string): Promise<string[]> =>
    (await knex.withSchema(tenantSchemaName(orgId)).from('knex_migrations').orderBy('id').pluck('name')) as string[];

  it('the master tree makes its shared table a reference table', async () => {
    await json(['migrate:master']);
    const { rows } = await knex.raw("select citus_table_type from citus_tables where table_name = 'plans'::regclass");
    expect(rows[0].citus_table_type).toBe('reference');
  });

  it('provisions 50 tenants as distributed schemas spread over both workers, and status counts them per node', async () => {
    const result = await json(['provision:tenant', ...ORGS, '--concurrency', '4']);
    expect(result.summary.provisioned).toBe(50);
    const { rows } = await knex.raw<{ rows: { count: number }[] }>(
      "select count(*)::int as count from citus_schemas where schema_name::text like 'tid\\_%'",
    );
    expect(rows[0]!.count).toBe(50);
    const status = await json(['status']);
    expect(status.ok).toBe(true);
    const workers = (await knex.raw<{ rows: { node: string }[] }>("select nodename || ':' || nodeport as node from pg_dist_node where groupid > 0")).rows.map((r) => r.node);
    expect(workers).toHaveLength(2);
    const perNode = Object.fromEntries(status.nodes.map((n: { node: string; tenants: number }) => [n.node, n.tenants]));
    for (const worker of workers) expect(perNode[worker]).toBeGreaterThan(5);
    expect(workers.reduce((sum, worker) => sum + perNode[worker], 0)).toBe(50);
    // And status agrees with where the shards really are.
    const counted = new Map<string, number>();
    for (const orgId of ORGS.slice(0, 10)) counted.set(await nodeOf(orgId), (counted.get(await nodeOf(orgId)) ?? 0) + 1);
    for (const node of counted.keys()) expect(workers).toContain(node);
  });

  it('a tenant table references the reference table, and the foreign key holds through the coordinator', async () => {
    await withTenant(knex, ORGS[0]!, async (trx) => {
      const [pro] = await trx('plans').where({ name: 'pro' }).pluck('id');
      await trx('accounts').insert({ email: 'ada@acme.test', plan_id: pro });
    });
    await expect(withTenant(knex, ORGS[0]!, (trx) => trx('accounts').insert({ email: 'bad@acme.test', plan_id: 999 }))).rejects.toThrow(/foreign key/);
  });

  it('withTenant sees only its own tenant through the coordinator', async () => {
    await withTenant(knex, ORGS[1]!, async (trx) => {
      const [free] = await trx('plans').where({ name: 'free' }).pluck('id');
      await trx('accounts').insert({ email: 'grace@globex.test', plan_id: free });
    });
    expect(await withTenant(knex, ORGS[0]!, (trx) => trx('accounts').pluck('email'))).toEqual(['ada@acme.test']);
    expect(await withTenant(knex, ORGS[1]!, (trx) => trx('accounts').pluck('email'))).toEqual(['grace@globex.test']);
  });

  it('pgvector nearest-neighbour queries work in a distributed tenant schema', async () => {
    const nearest = await withTenant(knex, ORGS[0]!, async (trx) => {
      const [account] = await trx('accounts').pluck('id');
      await trx('documents').insert([
        { account_id: account, title: 'east', embedding: '[1,0,0]' },
        { account_id: account, title: 'north', embedding: '[0,1,0]' },
        { account_id: account, title: 'up', embedding: '[0,0,1]' },
      ]);
      return trx('documents').orderByRaw('embedding <=> ?::vector', ['[0.1,0.9,0.05]']).limit(1).pluck('title');
    });
    expect(nearest).toEqual(['north']);
  });

  it('migrates (replay and modules routes), rolls back the release and migrates again with the fast path off', async () => {
    // A plain-DDL migration (replayed after the first tenants) and one that reads after its DDL.
    writeMigration(tenantTree, '20260201000000_account_notes.ts', "await knex.raw('alter table accounts add column note text');", "await knex.raw('alter table accounts drop column note');");
    writeMigration(
      tenantTree,
      '20260201000001_note_defaults.ts',
      "await knex.raw(\"alter table accounts alter column note set default 'new'\");\n  const [{ count }] = await knex('accounts').count('* as count');\n  if (Number(count) > 0) await knex('accounts').update({ note: 'backfilled' });",
      "await knex.raw('alter table accounts alter column note drop default');",
    );
    const migrated = await json(['migrate:tenants', '--concurrency', '4']);
    expect(migrated.summary.migrated).toBe(50);
    expect(await withTenant(knex, ORGS[0]!, (trx) => trx('accounts').pluck('note'))).toEqual(['backfilled']);
    expect((await json(['status'])).ok).toBe(true);

    const back = await json(['rollback:tenants']);
    expect(back.summary.rolledBack).toBe(50);
    const { rows } = await knex.raw("select count(*)::int as count from information_schema.columns where column_name = 'note' and table_schema like 'tid\\_%'");
    expect(rows[0].count).toBe(0);

    const again = await json(['migrate:tenants'], { TENANT_MIGRATE_FAST_PATH: 'off' });
    expect(again.summary.migrated).toBe(50);
    for (const orgId of [ORGS[0]!, ORGS[49]!]) expect((await applied(orgId)).slice(-2)).toEqual(['20260201000000_account_notes.ts', '20260201000001_note_defaults.ts']);
  });

  it('two concurrent runs apply each migration once per tenant; a killed run is finished by the next', async () => {
    writeMigration(tenantTree, '20260301000000_tags.ts', "await knex.raw('create table tags (id bigserial primary key, name text not null)');\n  await knex.raw('select pg_sleep(0.05)');", "await knex.raw('drop table tags');");
    const [a, b] = await Promise.all([cli(['migrate:tenants', '--json', '--concurrency', '2']), cli(['migrate:tenants', '--json', '--concurrency', '2'])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    // Zero counts are left out of a summary: the run that lost every race may report no `migrated`.
    const total = (JSON.parse(a.stdout).summary.migrated ?? 0) + (JSON.parse(b.stdout).summary.migrated ?? 0);
    expect(total).toBe(50);
    const { rows: dupes } = await knex.raw(
      `select count(*)::int as count from (${ORGS.map((o) => `select name from ${tenantSchemaName(o)}.knex_migrations`).join(' union all ')}) m where name = '20260301000000_tags.ts'`,
    );
    expect(dupes[0].count).toBe(50);

    writeMigration(tenantTree, '20260301000001_slow_labels.ts', "await knex.raw('create table labels (id bigserial primary key)');\n  await knex.raw('select pg_sleep(0.2)');", "await knex.raw('drop table labels');");
    const run = startCli(['migrate:tenants', '--concurrency', '1'], { env, timeoutMs: 110_000 });
    await run.waitForOutput(/org_citus0[2-9]/, 60_000);
    run.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    const reached = (await Promise.all(ORGS.map(applied))).filter((names) => names.includes('20260301000001_slow_labels.ts')).length;
    expect(reached).toBeGreaterThan(0);
    expect(reached).toBeLessThan(50);
    const rest = await json(['migrate:tenants']);
    expect(rest.summary.migrated).toBe(50 - reached);
    const { rows: idle } = await knex.raw("select count(*)::int as count from pg_stat_activity where state like 'idle in transaction%'");
    expect(idle[0].count).toBe(0);
    expect((await json(['status'])).ok).toBe(true);
  });

  it('move:tenant moves a tenant to the other worker; its rows stay and it keeps migrating', async () => {
    const orgId = ORGS[0]!;
    const from = await nodeOf(orgId);
    const workers = (await knex.raw<{ rows: { node: string }[] }>("select nodename || ':' || nodeport as node from pg_dist_node where groupid > 0")).rows.map((r) => r.node);
    const to = workers.find((node) => node !== from)!;
    const before = await withTenant(knex, orgId, (trx) => trx('documents').orderBy('id').select('title', 'embedding'));

    const moved = await json(['move:tenant', orgId, '--to', to]);
    expect(moved).toMatchObject({ ok: true, orgId, from, to, moved: true, mode: 'block-writes' });
    expect(await nodeOf(orgId)).toBe(to);
    expect(await withTenant(knex, orgId, (trx) => trx('documents').orderBy('id').select('title', 'embedding'))).toEqual(before);

    writeMigration(tenantTree, '20260401000000_document_tags.ts', "await knex.raw('alter table documents add column tags text[]');", "await knex.raw('alter table documents drop column tags');");
    const result = await json(['migrate:tenants']);
    expect(result.summary.migrated).toBe(50);
    expect(await withTenant(knex, orgId, (trx) => trx('documents').whereNull('tags').count('* as n'))).toEqual([{ n: '3' }]);

    // Logical replication mode, back to where it was.
    const back = await json(['move:tenant', orgId, '--to', from, '--mode', 'logical']);
    expect(back).toMatchObject({ from: to, to: from, mode: 'logical' });
    expect(await nodeOf(orgId)).toBe(from);
  });

  it('move:tenant refuses bad input with exit 2 and moves nothing', async () => {
    const node = await nodeOf(ORGS[3]!);
    for (const args of [
      ['move:tenant', ORGS[3]!, '--to', '127.0.0.1:1'],
      ['move:tenant', ORGS[3]!, '--to', 'not-a-node'],
      ['move:tenant', 'org_never_provisioned', '--to', node],
    ]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/Nothing was changed/);
    }
    expect(await nodeOf(ORGS[3]!)).toBe(node);
    const same = await json(['move:tenant', ORGS[3]!, '--to', node]);
    expect(same.moved).toBe(false);
  });

  it('TENANT_ROLES=on is refused on Citus with exit 2 and the reason (citus #7719); no role is created, no tenant provisioned', async () => {
    const roleCount = async () => Number((await knex.raw("select count(*) as n from pg_roles where rolname like 'tm\\_%'")).rows[0].n);
    const before = await roleCount();
    for (const args of [['provision:tenant', 'org_citus_roles'], ['migrate:tenants'], ['migrate:master']]) {
      const result = await cli(args, { TENANT_ROLES: 'on', TENANT_APP_ROLE: 'postgres' });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/citus extension.*citusdata\/citus#7719.*TENANT_ROLES=off.*Nothing was changed/);
    }
    expect(await roleCount()).toBe(before);
    const { rows } = await knex.raw('select count(*)::int as n from tenants where org_id = ?', ['org_citus_roles']);
    expect(rows[0].n).toBe(0);
  });
});
