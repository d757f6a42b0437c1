/**
 * The differential suite (issue 8): tenant-migrate's executor — statement batching, replay of
 * learned DDL, the one-script fast path — must leave every tenant exactly where plain Knex leaves
 * it, and report what plain Knex would report.
 *
 * For each case of the corpus (corpus.ts, fixtures in test/fixtures/differential/), three scenarios
 * of six tenants each (org ids with quotes, dollars, backslashes, Unicode, dots; per-tenant data
 * that makes some cases fail for some tenants):
 * - `migrate-c1` / `migrate-c4`: provisioned on the base tree, data written, the case's migrations
 *   added, `migrateTenants` (concurrency 1 and 4, continueOnError) — the first tenant runs the
 *   modules, later ones take the learned/replayed path;
 * - `provision`: `provisionTenant` of six new orgs straight onto the full tree.
 * The reference (reference.ts) runs the same trees with plain Knex in another database, same org
 * ids (so the same schema names), and every tenant's end state is compared part by part: status,
 * registry row, catalog, rows, knex_migrations. Everything runs with the fast path on and off: one
 * test file each (fast-path-on.test.ts, fast-path-off.test.ts), so vitest runs them side by side.
 */
import fs from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { knexConfig } from '../../../src/db/connection.ts';
import type { TenantResult } from '../../../src/report/results.ts';
import { migrateTenants } from '../../../src/tenants/migrate-tenants.ts';
import { tenantSchemaName } from '../../../src/tenants/naming.ts';
import { provisionTenant } from '../../../src/tenants/provision.ts';
import { createTestDatabase, quoteIdent, useFreshDatabase, withAdminClient, type TestDatabase } from '../../support/database.ts';
import { clearLeftovers, expectNoLeftovers, findLeftovers } from '../../support/leftovers.ts';
import { addFromFixture, copyTree, fixture } from '../../support/trees.ts';
import { useRoleLogins, type RoleLogins } from '../../support/roles.ts';
import { readRoleStatus } from '../../../src/roles/role-status.ts';
import { BASE_TREE, CASES, type DifferentialCase } from './corpus.ts';
import { referenceMigrate, referenceProvision, type ReferenceOutcome, treeSource } from './reference.ts';
import { installStateReader, readSchemaStates, type SchemaState } from './tenant-state.ts';

interface Scenario {
  key: 'migrate-c1' | 'migrate-c4' | 'provision';
  concurrency: number;
}
const SCENARIOS: readonly Scenario[] = [
  { key: 'migrate-c1', concurrency: 1 },
  { key: 'migrate-c4', concurrency: 4 },
  { key: 'provision', concurrency: 1 },
];

/**
 * Six org ids per case and scenario; the position decides the tenant's data: 1 has a duplicate
 * item name, 2 is listed in public.legacy_schemas (a DO block refuses it), 3 has a negative
 * quantity, 5 has no items at all.
 */
const ORG_SHAPES: readonly ((key: string) => string)[] = [
  (key) => `org_${key}_2abc123def456`,
  (key) => `org_${key}_dup'quote";--`,
  (key) => `org_${key}_$$legacy$tm_guard$`,
  (key) => `org_${key}_back\\slash\\neg`,
  (key) => `org_${key}_ünï€ode`,
  (key) => `ORG_${key}_Empty.Dots-and-dashes`,
];
const LEGACY_POSITION = 2;

interface Tenant {
  orgId: string;
  schema: string;
  position: number;
}

function tenantsOf(testCase: DifferentialCase, scenario: Scenario): Tenant[] {
  return ORG_SHAPES.map((shape, position) => {
    const orgId = shape(`${testCase.name}/${scenario.key}`);
    return { orgId, schema: tenantSchemaName(orgId), position };
  });
}

/** The data a tenant has before the case's migrations run (scenario migrate). */
async function writeTenantData(knex: Knex, tenant: Tenant): Promise<void> {
  const { schema, position } = tenant;
  await knex.withSchema(schema).table('owners').insert({ email: `owner${position}@example.com`, display_name: position % 2 ? 'Ada' : null });
  if (position === 5) return;
  const items: { name: string; qty: number; note?: string }[] = [
    { name: 'alpha', qty: 3 },
    { name: 'beta', qty: 5, note: "fragile; don't stack" },
    { name: `gamma ${position}`, qty: 10 * position },
  ];
  if (position === 1) items.push({ name: 'alpha', qty: 7 }); // a duplicate name
  if (position === 3) items.push({ name: 'delta', qty: -2 }); // a negative quantity
  await knex.withSchema(schema).table('items').insert(items);
}

/**
 * The trees, copied once per file: the base tree, and per case the base tree plus the case's
 * files. Both tenant-migrate and the reference import the same files, once each — vitest
 * transforms every newly imported path, and that, not the migrations, would be most of the time.
 */
let base: string | undefined;
const fullTrees = new Map<string, string>();

function baseTree(): string {
  return (base ??= copyTree(BASE_TREE));
}

function fullTree(testCase: DifferentialCase): string {
  let tree = fullTrees.get(testCase.name);
  if (!tree) {
    tree = copyTree(BASE_TREE);
    const folder = `differential/${testCase.name}`;
    for (const file of fs.readdirSync(fixture(folder)).filter((name) => name.endsWith('.ts'))) addFromFixture(tree, folder, file);
    fullTrees.set(testCase.name, tree);
  }
  return tree;
}

/** A tenant's end state: what it was reported as, its registry row, and its schema. */
interface TenantEnd extends SchemaState {
  status: string;
  registry: { version: string | null; count: number } | null;
}

/** The parts still worth comparing when one side has no schema at all (the rest would only repeat it). */
const WHEN_MISSING: readonly (keyof TenantEnd)[] = ['status', 'exists', 'registry'];

/**
 * Registers the whole differential suite for one setting of the fast path, with its own pair of
 * databases (tenant-migrate's and the reference's).
 *
 * @example
 *   defineDifferentialSuite(true); // in fast-path-on.test.ts
 */
export function defineDifferentialSuite(fastPath: boolean, { roles = false }: { roles?: boolean } = {}): void {
  const tool = useFreshDatabase({ prefix: 'tm_differential' });
  // With per-tenant roles (issue 21): tenant-migrate runs as a non-superuser with CREATEROLE, and
  // every tenant's grants are checked to be exactly what src/roles/grants.ts makes them.
  const logins: RoleLogins | undefined = roles ? useRoleLogins(tool) : undefined;
  const runner = () => logins?.tool() ?? tool.knex();
  let reference: TestDatabase;
  let referenceKnex: Knex;

  beforeAll(async () => {
    reference = await createTestDatabase('tm_differential_ref');
    // Thousands of small commits: not waiting for each WAL flush keeps the suite within CI budget on
    // a busy disk. It changes durability after a crash only, nothing a session can observe. Set
    // before the first connection to either database, so every session has it.
    await withAdminClient(async (client) => {
      for (const name of [tool.name, reference.name]) await client.query(`alter database ${quoteIdent(name)} set synchronous_commit = off`);
    });
    referenceKnex = knexFactory(knexConfig(reference.connection, 2));
    const legacy = CASES.flatMap((testCase) => SCENARIOS.map((scenario) => tenantsOf(testCase, scenario)[LEGACY_POSITION]!.schema));
    for (const knex of [tool.knex(), referenceKnex]) {
      await installStateReader(knex);
      // A master-tree table the fails-for-one-schema case reads.
      await knex.raw('create table public.legacy_schemas (schema_name text primary key)');
      await knex('legacy_schemas').withSchema('public').insert(legacy.map((schema_name) => ({ schema_name })));
    }
    if (logins) await tool.knex().raw('grant select on public.legacy_schemas to public');
  });
  afterAll(async () => {
    await referenceKnex?.destroy();
    await reference?.drop();
  }, 180_000); // dropping hundreds of schemas' files takes minutes on a busy disk
  afterEach(async () => {
    await expectNoLeftovers(tool.knex());
    await expectNoLeftovers(referenceKnex);
    // Every case has its own trees, with file names other cases use for other content.
    await runner().raw('drop table if exists public.tenant_migrate_checksums');
  });

  /** Why plain Knex failed a tenant (for the messages), by org id. */
  const referenceErrors = new Map<string, string>();

  /** Reference end states, computed once per case and scenario (shared by fast path on and off). */
  const referenceEnds = new Map<string, Promise<Map<string, TenantEnd>>>();

  function referenceEndsOf(testCase: DifferentialCase, scenario: Scenario): Promise<Map<string, TenantEnd>> {
    const key = `${testCase.name}/${scenario.key}`;
    let ends = referenceEnds.get(key);
    if (!ends) {
      ends = computeReference(testCase, scenario);
      referenceEnds.set(key, ends);
    }
    return ends;
  }

  async function computeReference(testCase: DifferentialCase, scenario: Scenario): Promise<Map<string, TenantEnd>> {
    const tenants = tenantsOf(testCase, scenario);
    const trees = { base: treeSource(baseTree()), full: treeSource(fullTree(testCase)) };
    const statuses = new Map<string, ReferenceOutcome>();
    for (const tenant of tenants) {
      const outcome =
        scenario.key === 'provision'
          ? await referenceProvision(reference.connection, tenant.schema, trees.full)
          : await referenceMigrate(reference.connection, tenant.schema, trees, (knex) => writeTenantData(knex, tenant));
      statuses.set(tenant.orgId, outcome);
    }
    const states = await readSchemaStates(referenceKnex, tenants.map((tenant) => tenant.schema));
    const ends = new Map<string, TenantEnd>();
    for (const tenant of tenants) {
      const state = states.get(tenant.schema)!;
      // The registry row tenant-migrate should have written: newest applied migration and count.
      const applied = (state.knexMigrations ?? []) as [string, number][];
      const registry = state.exists ? { version: applied.map(([name]) => name).sort().at(-1) ?? null, count: applied.length } : null;
      const { status, error } = statuses.get(tenant.orgId)!;
      ends.set(tenant.orgId, { status, registry, ...state });
      if (error) referenceErrors.set(tenant.orgId, error);
    }
    await dropSchemas(referenceKnex, tenants);
    return ends;
  }

  async function dropSchemas(knex: Knex, tenants: readonly Tenant[]): Promise<void> {
    for (const tenant of tenants) await knex.raw('drop schema if exists ?? cascade', [tenant.schema]);
  }

  /**
   * Counts round trips (calls of pg's Client#query) per tenant, while tenants run one at a time:
   * everything sent between one tenant's end and the next's is the next one's.
   */
  function watchRoundTrips() {
    const original = pg.Client.prototype.query;
    const perTenant = new Map<string, number>();
    const order: string[] = [];
    let counting = false;
    let current = 0;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      // The blocker monitor's looks (its own connection, outside the tenants' runs: db/blocker-monitor.ts)
      // are not a tenant's round trips.
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
      if (counting && !(typeof text === 'string' && text.includes('pg_blocking_pids'))) current++;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    return {
      onStart() {
        counting = true;
        current = 0;
      },
      onTenantDone(result: TenantResult) {
        perTenant.set(result.orgId, current);
        order.push(result.orgId);
        current = 0;
      },
      stop() {
        pg.Client.prototype.query = original;
        return { perTenant, order };
      },
    };
  }

  /** At most this many round trips for a tenant whose pending migrations are all known (one script). */
  const REPLAYED_ROUND_TRIPS = 1;
  /** A new org's role: BEGIN, does it exist, create it and its memberships, COMMIT (src/roles/tenant-role.ts). */
  const ROLE_ROUND_TRIPS = 4;

  describe.each(CASES)('$name', (testCase) => {
    it.each(SCENARIOS)('$key', async (scenario) => {
      const expected = await referenceEndsOf(testCase, scenario);
      const tenants = tenantsOf(testCase, scenario);
      const orgIds = tenants.map((tenant) => tenant.orgId);
      const knex = tool.knex();
      const run = runner();
      const rolesOption = logins ? { roles: logins.settings } : {};

      let result: Awaited<ReturnType<typeof migrateTenants>>;
      let rounds: ReturnType<ReturnType<typeof watchRoundTrips>['stop']>;
      try {
        if (scenario.key !== 'provision') {
          const provisioned = await provisionTenant(run, orgIds, { directory: baseTree(), concurrency: 4, fastPath, ...rolesOption });
          expect(provisioned.ok, 'provisioning on the base tree').toBe(true);
          for (const tenant of tenants) await writeTenantData(knex, tenant);
        }
        const watch = watchRoundTrips();
        try {
          const options = { directory: fullTree(testCase), concurrency: scenario.concurrency, continueOnError: true, fastPath, ...rolesOption, ...watch };
          result =
            scenario.key === 'provision'
              ? await provisionTenant(run, orgIds, options)
              : await migrateTenants(run, { ...options, tenants: orgIds });
        } finally {
          rounds = watch.stop();
        }

        const states = await readSchemaStates(knex, tenants.map((tenant) => tenant.schema));
        const registry = new Map(
          (
            await knex('tenants')
              .withSchema('public')
              .whereIn('org_id', orgIds)
              .select<{ org_id: string; migration_version: string | null; migration_count: number }[]>('org_id', 'migration_version', 'migration_count')
          ).map((row) => [row.org_id, { version: row.migration_version, count: row.migration_count }]),
        );
        const reported = new Map(result.tenants.map((tenant) => [tenant.orgId, tenant]));

        for (const tenant of tenants) {
          const want = expected.get(tenant.orgId)!;
          const said = reported.get(tenant.orgId);
          const got: TenantEnd = { status: said?.status ?? 'missing', registry: registry.get(tenant.orgId) ?? null, ...states.get(tenant.schema)! };
          const label = `${testCase.name} · ${scenario.key} · fast path ${fastPath ? 'on' : 'off'} · ${tenant.orgId} (${tenant.schema})`;
          const why =
            (said?.error ? ` — tenant-migrate said: ${said.error}` : '') +
            (referenceErrors.has(tenant.orgId) ? ` — plain Knex said: ${referenceErrors.get(tenant.orgId)}` : '');
          const parts = want.exists === got.exists ? [...new Set([...Object.keys(want), ...Object.keys(got)])] : WHEN_MISSING;
          for (const part of parts as (keyof TenantEnd)[]) {
            expect.soft(got[part], `${label} · ${part}${part === 'status' ? why : ''}`).toEqual(want[part]);
          }
        }

        if (logins) {
          // The ACLs: every tenant that has a schema holds exactly the grants of src/roles/grants.ts.
          const live = tenants.filter((tenant) => states.get(tenant.schema)!.exists);
          const { missingRoleOrgIds, grantDriftOrgIds } = await readRoleStatus(knex, live, { verify: true });
          expect.soft({ missingRoleOrgIds, grantDriftOrgIds }, `${testCase.name} · ${scenario.key}: tenant roles and grants`).toEqual({ missingRoleOrgIds: [], grantDriftOrgIds: [] });
        }

        // Not vacuous: with the fast path on, a plain-DDL case replays for every tenant after the
        // first; with it off, every tenant runs the modules again.
        if (testCase.replayable && scenario.concurrency === 1) {
          const later = rounds.order.slice(1).filter((orgId) => expected.get(orgId)!.status !== 'failed');
          expect(later.length, 'tenants after the first that plain Knex migrates').toBeGreaterThan(0);
          for (const orgId of later) {
            const trips = rounds.perTenant.get(orgId)!;
            // With roles, a new org's role is created first in a short transaction of its own.
            const roleTrips = logins && scenario.key === 'provision' ? ROLE_ROUND_TRIPS : 0;
            if (fastPath) expect.soft(trips, `${testCase.name} · ${scenario.key}: round trips of ${orgId}, replayed`).toBeLessThanOrEqual(REPLAYED_ROUND_TRIPS + roleTrips);
            else expect.soft(trips, `${testCase.name} · ${scenario.key}: round trips of ${orgId}, fast path off`).toBeGreaterThan(REPLAYED_ROUND_TRIPS);
          }
        }
      } finally {
        // A transaction left open would hold its tenant's locks and stall the clean-up and every
        // later case: note it (the test fails), then end it.
        expect.soft(await findLeftovers(knex), 'sessions left idle in transaction / advisory locks left held').toEqual({
          idleInTransaction: [],
          advisoryLocks: [],
        });
        await clearLeftovers(knex);
        await dropSchemas(knex, tenants);
        await knex('tenants').withSchema('public').whereIn('org_id', orgIds).delete().catch(() => {});
      }
    });
  });
}
