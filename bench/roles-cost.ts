/**
 * `pnpm bench --roles [--sizes 1000,10000]`: what per-tenant roles (issue 21) cost the application
 * and provisioning. At each fleet size, on a migrated fleet laid with the floor SQL (not timed):
 *
 * - `withTenant` latency (one `select count(*)` per call, random tenants, one call after another
 *   on a warm pool of 4): off is the statement withTenant sent before roles (the owner's login,
 *   today's set-up), on is withTenant as the application's own login role (`SET LOCAL ROLE` in
 *   the same round trip) — called in alternation on the same database, so a busy machine weighs
 *   on both alike;
 * - the first call on each pooled connection after a provisioning: every role change invalidates
 *   the role-membership cache in every backend, so the next `SET ROLE` rebuilds it — with 10,000
 *   roles that is the price to watch;
 * - p99 of `withTenant` while another client provisions tenants one after another;
 * - provisioning 40 new orgs at concurrency 4, roles off and on.
 *
 * Target (issue 21): on ≤ 1.2× off at 10,000 tenants.
 */
import crypto from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { provisionTenant } from '../src/tenants/provision.ts';
import { withTenant } from '../src/tenants/with-tenant.ts';
import { tenantRolePrefix, defaultGroupRoleName, rolesMarkerName } from '../src/tenants/naming.ts';
import { tenantGrants } from '../src/roles/grants.ts';
import type { RolesSettings } from '../src/roles/settings.ts';
import { FIXTURE_DIR } from './fixture.ts';
import { benchTenants, onConnections, resetFleet, type BenchTenant } from './fleet.ts';
import { withClient, type ScratchDatabase } from './server.ts';

export interface RolesCostRow {
  size: number;
  /** Milliseconds per `withTenant` call: p50 and p99, roles off and on. */
  steady: { off: Percentiles; on: Percentiles };
  /** First call on each pooled connection right after a provisioning. */
  firstAfterProvision: { off: Percentiles; on: Percentiles };
  /** While another client provisions tenants one after another. */
  duringProvisioning: { off: Percentiles; on: Percentiles };
  /** Seconds to provision PROVISION_BATCH new orgs at concurrency 4. */
  provisionSeconds: { off: number; on: number };
  /** Seconds to lay the fleet's roles and grants (floor SQL, for scale; not a product path). */
  layRolesSeconds: number;
}

export interface Percentiles {
  p50: number;
  p99: number;
  n: number;
}

const CALLS = 1000;
const PROVISION_BATCH = 40;
const ROUNDS_AFTER_PROVISION = 10;
const STREAM_MS = 8000;

/**
 * Measures every size; the database is laid anew for each. The admin URL's role (a superuser)
 * plays the tool; an application login role is created for the run and dropped after.
 *
 * @example const rows = await runRolesCost(db, adminUrl, [1000, 10000], console.error);
 */
export async function runRolesCost(db: ScratchDatabase, adminUrl: string, sizes: readonly number[], log: (line: string) => void): Promise<RolesCostRow[]> {
  const suffix = crypto.randomBytes(3).toString('hex');
  const app = `tm_bench_app_${suffix}`;
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  const version = await withClient(adminUrl, async (client) => {
    const v = Number((await client.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v);
    await client.query(`create role "${app}" login ${v < 160000 ? 'noinherit' : ''} password '${password}'`);
    return v;
  });
  const rows: RolesCostRow[] = [];
  try {
    for (const size of sizes) rows.push(await measureSize(db, size, app, password, version, log));
  } finally {
    await dropRoles(adminUrl, db.name, app);
  }
  return rows;
}

async function measureSize(db: ScratchDatabase, size: number, app: string, password: string, version: number, log: (line: string) => void): Promise<RolesCostRow> {
  log(`[roles ${size}] set-up: ${size} migrated tenants (floor SQL, not timed)…`);
  const tenants = benchTenants(size);
  await dropRoles(db.url, db.name, undefined); // roles of an earlier size (the database was recreated; roles are cluster-wide)
  await resetFleet(db, tenants, 'migrated');
  await withClient(db.url, (client) => client.query(`grant connect on database "${db.name}" to "${app}"`));
  const settings: RolesSettings = { enabled: true, appRole: app };
  const owner = knexFactory({ client: 'pg', connection: db.url, pool: { min: 4, max: 4 } });
  const appUrl = new URL(db.url);
  appUrl.username = app;
  appUrl.password = password;
  const asApp = knexFactory({ client: 'pg', connection: appUrl.toString(), pool: { min: 4, max: 4 } });
  const tool = knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 5 } });
  try {
    // The fleet's roles first: "off" below is today's withTenant statement (search_path only, as
    // the owner) and "on" is withTenant as the application's login role, called in alternation on
    // the same database, so both see the same machine (this one is shared and busy).
    const started = performance.now();
    await layRoles(db.url, db.name, tenants, app, version);
    const layRolesSeconds = (performance.now() - started) / 1000;
    log(`[roles ${size}] roles and grants laid for ${size} tenants in ${layRolesSeconds.toFixed(1)} s`);
    const off: Call = (tenant) => timedOffCall(owner, tenant);
    const on: Call = (tenant) => timedCall(asApp, tenant);
    const steadyTimes = await alternating(tenants, off, on);
    log(`[roles ${size}] steady: off p50 ${steadyTimes.off.p50.toFixed(3)} ms, on p50 ${steadyTimes.on.p50.toFixed(3)} ms`);
    const first = {
      off: await firstAfterProvision(tool, off, tenants, { enabled: false }, 'off'),
      on: await firstAfterProvision(tool, on, tenants, settings, 'on'),
    };
    const stream = {
      off: await duringProvisioning(tool, off, tenants, { enabled: false }, 'offs'),
      on: await duringProvisioning(tool, on, tenants, settings, 'ons'),
    };
    const provision = { off: await provisionSeconds(tool, { enabled: false }, 'offp'), on: await provisionSeconds(tool, settings, 'onp') };
    log(`[roles ${size}] first after provisioning p50 off ${first.off.p50.toFixed(3)} ms, on ${first.on.p50.toFixed(3)} ms; provisioning ${provision.off.toFixed(2)} s / ${provision.on.toFixed(2)} s`);
    return { size, steady: steadyTimes, firstAfterProvision: first, duringProvisioning: stream, provisionSeconds: provision, layRolesSeconds };
  } finally {
    await Promise.all([owner.destroy(), asApp.destroy(), tool.destroy()]);
  }
}

/** The statement every measured call runs inside withTenant. */
const QUERY = 'select count(*) from tasks';

type Call = (tenant: BenchTenant) => Promise<number>;

/** withTenant before roles (what it sent until issue 21): the path and the schema check, as the owner. */
async function timedOffCall(knex: Knex, tenant: BenchTenant): Promise<number> {
  const started = performance.now();
  await knex.transaction(async (trx) => {
    await trx.raw(
      `select set_config('search_path', quote_ident(?) || ', public', true) is not null and to_regnamespace(quote_ident(?)) is not null as found`,
      [tenant.schema, tenant.schema],
    );
    await trx.raw(QUERY);
  });
  return performance.now() - started;
}

async function timedCall(knex: Knex, tenant: BenchTenant): Promise<number> {
  const started = performance.now();
  await withTenant(knex, tenant.orgId, (trx) => trx.raw(QUERY));
  return performance.now() - started;
}

function pick(tenants: readonly BenchTenant[]): BenchTenant {
  return tenants[Math.floor(Math.random() * tenants.length)]!;
}

/** Off and on in alternation, call by call, after a warm-up of both. */
async function alternating(tenants: readonly BenchTenant[], off: Call, on: Call): Promise<{ off: Percentiles; on: Percentiles }> {
  for (let i = 0; i < 100; i++) {
    await off(pick(tenants));
    await on(pick(tenants));
  }
  const times = { off: [] as number[], on: [] as number[] };
  for (let i = 0; i < CALLS; i++) {
    times.off.push(await off(pick(tenants)));
    times.on.push(await on(pick(tenants)));
  }
  return { off: percentiles(times.off), on: percentiles(times.on) };
}

/**
 * After each provisioning, one call on each of the pool's 4 connections at once (4 concurrent
 * calls take 4 distinct connections): with roles, the first `SET ROLE` after the role change.
 */
async function firstAfterProvision(tool: Knex, call: Call, tenants: readonly BenchTenant[], roles: RolesSettings, tag: string): Promise<Percentiles> {
  const times: number[] = [];
  for (let round = 0; round < ROUNDS_AFTER_PROVISION; round++) {
    await Promise.all(Array.from({ length: 4 }, () => call(pick(tenants)))); // all four connections warm
    await provisionTenant(tool, [`org_first_${tag}_${round}`], { directory: FIXTURE_DIR, roles });
    times.push(...(await Promise.all(Array.from({ length: 4 }, () => call(pick(tenants))))));
  }
  return percentiles(times);
}

async function duringProvisioning(tool: Knex, call: Call, tenants: readonly BenchTenant[], roles: RolesSettings, tag: string): Promise<Percentiles> {
  let stop = false;
  let n = 0;
  const stream = (async () => {
    while (!stop) await provisionTenant(tool, [`org_stream_${tag}_${n++}`], { directory: FIXTURE_DIR, roles });
  })();
  const times: number[] = [];
  const until = performance.now() + STREAM_MS;
  while (performance.now() < until) times.push(await call(pick(tenants)));
  stop = true;
  await stream;
  return percentiles(times);
}

async function provisionSeconds(tool: Knex, roles: RolesSettings, tag: string): Promise<number> {
  const orgIds = Array.from({ length: PROVISION_BATCH }, (_, i) => `org_prov_${tag}_${i}`);
  const started = performance.now();
  const result = await provisionTenant(tool, orgIds, { directory: FIXTURE_DIR, roles, concurrency: 4 });
  if (!result.ok) throw new Error(`provisioning failed: ${JSON.stringify(result.tenants.find((t) => t.status === 'failed'))}`);
  return (performance.now() - started) / 1000;
}

/**
 * Set-up (timed separately, not a product path): every tenant's role, memberships and grants, as
 * provisioning makes them, 100 tenants per statement on two connections.
 */
async function layRoles(url: string, database: string, tenants: readonly BenchTenant[], app: string, version: number): Promise<void> {
  const prefix = tenantRolePrefix(database);
  const group = defaultGroupRoleName(database);
  await withClient(url, (client) => client.query(`create role "${group}" nologin; create role "${rolesMarkerName(database)}" nologin`));
  const batches: BenchTenant[][] = [];
  for (let i = 0; i < tenants.length; i += 100) batches.push(tenants.slice(i, i + 100));
  await onConnections(url, 2, batches, (client, batch) =>
    client.query(
      batch
        .flatMap(({ schema }) => {
          const role = `"${prefix}${schema}"`;
          return [
            `create role ${role} nologin inherit`,
            `grant "${group}" to ${role}`,
            version >= 160000 ? `grant ${role} to "${app}" with inherit false, set true` : `grant ${role} to "${app}"`,
            `grant ${role} to current_user`,
            ...tenantGrants(schema, `${prefix}${schema}`).statements,
          ];
        })
        .join(';\n'),
    ),
  );
}

/** Drops the tenant roles of the database (and the group, and the app role when given). */
async function dropRoles(url: string, database: string, app: string | undefined): Promise<void> {
  const prefix = tenantRolePrefix(database);
  await withClient(url, async (client) => {
    const { rows } = await client.query<{ rolname: string }>('select rolname from pg_roles where (rolname >= $1 and rolname < $2) or rolname = $3', [prefix, `${prefix}~`, defaultGroupRoleName(database)]);
    // Privileges in the scratch database hold a role back: revoke them with the role's objects.
    for (let i = 0; i < rows.length; i += 200) {
      const names = rows.slice(i, i + 200).map((row) => `"${row.rolname}"`);
      await client.query(`drop owned by ${names.join(', ')}`).catch(() => {});
      await client.query(names.map((name) => `drop role if exists ${name}`).join(';\n')).catch(() => {});
    }
    if (app) await client.query(`drop owned by "${app}"`).catch(() => {});
    if (app) await client.query(`drop role if exists "${app}"`).catch(() => {});
  });
}

function percentiles(times: readonly number[]): Percentiles {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), n: sorted.length };
}

/** The report as a table: one block per size, off and on side by side with the ratio. */
export function formatRolesCost(rows: readonly RolesCostRow[]): string {
  const lines: string[] = [];
  const ms = (value: number) => `${value.toFixed(3)} ms`;
  const ratio = (on: number, off: number) => `${(on / off).toFixed(2)}×`;
  lines.push(['tenants', 'measure', 'roles off', 'roles on', 'on/off'].join('\t'));
  for (const row of rows) {
    const add = (label: string, off: number, on: number, format = ms) => lines.push([row.size.toLocaleString('en-US'), label, format(off), format(on), ratio(on, off)].join('\t'));
    add('withTenant p50', row.steady.off.p50, row.steady.on.p50);
    add('withTenant p99', row.steady.off.p99, row.steady.on.p99);
    add('first call per connection after a provisioning, p50', row.firstAfterProvision.off.p50, row.firstAfterProvision.on.p50);
    add('first call per connection after a provisioning, p99', row.firstAfterProvision.off.p99, row.firstAfterProvision.on.p99);
    add('withTenant p99 during a stream of provisionings', row.duringProvisioning.off.p99, row.duringProvisioning.on.p99);
    add(`provision ${PROVISION_BATCH} orgs, concurrency 4`, row.provisionSeconds.off, row.provisionSeconds.on, (s) => `${s.toFixed(2)} s`);
    lines.push([row.size.toLocaleString('en-US'), 'lay roles + grants for the fleet (floor SQL)', '—', `${row.layRolesSeconds.toFixed(1)} s`, ''].join('\t'));
  }
  return lines.join('\n');
}
