/**
 * `pnpm bench --scale --sizes 1000,10000,100000`: every command, as a whole process, on a fleet of
 * each size, with the client's peak RSS and the server backends' peak private memory.
 *
 * Per size, a database of its own (`tm_bench_scale_<size>`, kept between runs and resumed: the
 * 100,000 lay-down takes the better part of an hour) is laid down by the floor SQL (untimed; its
 * time and the floor's own rate are reported): size − 2K tenants at the newest fixture migration
 * and 2K registered with empty schemas, K = min(1000, size / 4). Then, timed:
 *
 *   - the floor SQL on K pending tenants (2 connections), then `migrate:tenants` on the other K:
 *     fresh migration per tenant at that catalog size (the process also passes over the
 *     size − K tenants that are up to date, as a real deploy does);
 *   - on the whole fleet, now migrated: the no-op, `status`, `status --verify`, the dry run,
 *     `query:tenants` (one row per tenant), `history`, `provision:tenant` of one new org,
 *     `deprovision:tenant` of it with its verified backup, `restore:tenant` of that backup, and
 *     `sync:clerk` against a local fake Clerk API listing every org (API calls counted).
 *
 * Server memory: every 100 ms, the RssAnon (private, anonymous memory) of every backend whose
 * application_name is tenant-migrate's, pg_dump's or pg_restore's, read from /proc/<pid>/status
 * (the server must be local); the maximum over the command.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startFakeClerk } from '../test/support/fake-clerk.ts';
import { runCli, type ProcessRun } from './cli-process.ts';
import { FIXTURE_DIR, floorMigrateSql } from './fixture.ts';
import { benchTenants, onConnections } from './fleet.ts';
import { layDown } from './lay-down.ts';

export interface ScaleCell {
  seconds: number;
  /** Per tenant (ms), for the rows that migrate tenants. */
  perTenantMs?: number;
  clientPeakMb?: number;
  serverPeakMb?: number;
  note?: string;
}

export interface ScaleSize {
  size: number;
  layDown: { seconds: number; floorMsPerTenant: number | undefined; laidDown: number };
  cells: Record<string, ScaleCell>;
}

export interface ScaleReport {
  sizes: ScaleSize[];
  /** Rows not measured at some size (a failure, or the time ran out), with why. */
  missing: string[];
}

export const SCALE_ROWS = [
  ['floor', 'floor SQL, K pending tenants, 2 connections'],
  ['fresh', 'migrate:tenants, K pending tenants'],
  ['noop', 'migrate:tenants, nothing pending'],
  ['status', 'status'],
  ['verify', 'status --verify'],
  ['dry-run', 'migrate:tenants --dry-run (1 pending)'],
  ['query', 'query:tenants (a row per tenant)'],
  ['history', 'history'],
  ['provision', 'provision:tenant (1 org)'],
  ['deprovision', 'deprovision:tenant + verified backup'],
  ['restore', 'restore:tenant'],
  ['sync', 'sync:clerk (fake Clerk, every org)'],
] as const;

type RowId = (typeof SCALE_ROWS)[number][0];

export interface ScaleOptions {
  adminUrl: string;
  sizes: readonly number[];
  log: (line: string) => void;
  /** Stop starting new commands after this time (the partial table is still reported). */
  deadline?: Date;
  /**
   * Only these rows (BENCH_SCALE_ROWS=deprovision,restore): to measure again what changed on a
   * fleet already laid down. A row that needs another runs it too (restore needs a deprovision,
   * which needs a provision).
   */
  rows?: readonly RowId[];
}

/** The rows to run: `rows` and what they need; undefined = every row. */
export function rowsToRun(rows: readonly string[] | undefined): Set<RowId> | undefined {
  if (!rows) return undefined;
  const known = new Set<string>(SCALE_ROWS.map(([id]) => id));
  const unknown = rows.filter((row) => !known.has(row));
  if (unknown.length > 0) throw new Error(`BENCH_SCALE_ROWS: unknown row(s) ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  const wanted = new Set(rows as RowId[]);
  if (wanted.has('restore')) wanted.add('deprovision');
  if (wanted.has('deprovision')) wanted.add('provision');
  if (wanted.has('fresh')) wanted.add('floor');
  return wanted;
}

export async function runScale(options: ScaleOptions): Promise<ScaleReport> {
  const report: ScaleReport = { sizes: [], missing: [] };
  for (const size of options.sizes) {
    const result = await measureSize(options, size, report.missing);
    report.sizes.push(result);
  }
  return report;
}

async function measureSize(options: ScaleOptions, size: number, missing: string[]): Promise<ScaleSize> {
  const { log } = options;
  const url = databaseUrl(options.adminUrl, `tm_bench_scale_${size}`);
  const k = Math.min(1000, Math.floor(size / 4));
  const all = benchTenants(size);
  log(`[scale ${size}] lay-down: ${size - 2 * k} migrated + ${2 * k} pending by the floor SQL (untimed; resumed if the database exists)…`);
  const laid = await layDown({ url, size, pending: 2 * k, connections: 4, log: (line) => log(`[scale ${size}] ${line}`) });
  const result: ScaleSize = { size, layDown: laid, cells: {} };
  const env = { DATABASE_URL: url, TENANT_MIGRATIONS_DIR: FIXTURE_DIR, TENANT_ROLES: 'off' };
  const late = () => options.deadline !== undefined && Date.now() > options.deadline.getTime();
  const selected = rowsToRun(options.rows);
  const wanted = (id: RowId) => selected === undefined || selected.has(id);
  const record = (id: RowId, cell: ScaleCell | undefined, why?: string) => {
    if (cell) {
      result.cells[id] = cell;
      log(`[scale ${size}] ${label(id).padEnd(42)} ${cell.seconds.toFixed(2).padStart(8)} s${cell.perTenantMs ? ` (${cell.perTenantMs.toFixed(1)} ms/tenant)` : ''}  client ${mb(cell.clientPeakMb)}  server ${mb(cell.serverPeakMb)}${cell.note ? `  ${cell.note}` : ''}`);
    } else {
      missing.push(`${size}: ${label(id)} — ${why ?? 'not run'}`);
      log(`[scale ${size}] ${label(id)}: NOT MEASURED (${why})`);
    }
  };
  const cli = async (id: RowId, args: string[], check: (run: ProcessRun) => string | undefined, extraEnv: Record<string, string> = {}, perTenant?: number) => {
    if (!wanted(id)) return undefined;
    if (late()) return record(id, undefined, 'deadline reached');
    const sampler = await sampleServerMemory(url);
    let run: ProcessRun;
    try {
      run = await runCli(args, { ...env, ...extraEnv });
    } finally {
      await sampler.stop();
    }
    const problem = run.exitCode !== 0 ? `exit ${run.signal ?? run.exitCode}: ${run.stderr.slice(-500)}` : check(run);
    if (problem) return record(id, undefined, problem);
    const seconds = run.ms / 1000;
    record(id, { seconds, clientPeakMb: run.peakRssKb ? run.peakRssKb / 1024 : undefined, serverPeakMb: sampler.peakMb(), ...(perTenant ? { perTenantMs: run.ms / perTenant } : {}) });
    return run;
  };

  // Fresh migration per tenant at this catalog size: the floor on K pending tenants, the CLI on the other K.
  const pending = all.slice(size - 2 * k);
  const floorTenants = pending.slice(0, k);
  const pendingNow = await countPending(url);
  if (!wanted('floor')) {
    // not asked for (BENCH_SCALE_ROWS)
  } else if (pendingNow === 2 * k) {
    const sampler = await sampleServerMemory(url, 'tenant-migrate-bench-floor');
    const started = performance.now();
    await onConnections(url, 2, floorTenants, (client, tenant) => client.query(floorMigrateSql(tenant.schema)), 'tenant-migrate-bench-floor');
    const ms = performance.now() - started;
    await sampler.stop();
    record('floor', { seconds: ms / 1000, perTenantMs: ms / k, serverPeakMb: sampler.peakMb() });
    await cli('fresh', ['migrate:tenants', '--json'], (run) => expectSummary(run, 'migrated', k), {}, k);
  } else {
    record('floor', undefined, `${pendingNow} tenants pending, expected ${2 * k} (an earlier run migrated them: drop tm_bench_scale_${size} to measure again)`);
    record('fresh', undefined, 'see the floor');
  }

  // The fleet as registered now: a run with BENCH_SCALE_ROWS after an earlier one finds the org the
  // earlier one provisioned and restored, still registered.
  const fleet = await countRegistered(url);
  await cli('noop', ['migrate:tenants', '--json'], (run) => expectSummary(run, 'upToDate', fleet));
  await cli('status', ['status', '--json'], (run) => expectStatus(run, fleet));
  await cli('verify', ['status', '--verify', '--json'], (run) => expectStatus(run, fleet));
  // A dry run with one pending migration for every tenant: one plan, its SQL captured once.
  const tree = treeWithExtraMigration();
  await cli('dry-run', ['migrate:tenants', '--dry-run', '--json'], (run) => {
    const document = JSON.parse(run.stdout) as { ok: boolean; plan: { tenantCount: number }[] };
    return document.ok && document.plan.reduce((sum, group) => sum + group.tenantCount, 0) === fleet ? undefined : `dry run: ${run.stdout.slice(0, 300)}`;
  }, { TENANT_MIGRATIONS_DIR: tree });
  fs.rmSync(tree, { recursive: true, force: true });
  await cli('query', ['query:tenants', '--sql', 'select count(*)::int as tasks from tasks', '--json'], (run) => {
    const document = JSON.parse(run.stdout) as { ok: boolean; rows: unknown[] };
    return document.ok && document.rows.length === fleet ? undefined : `query:tenants returned ${document.rows.length} rows`;
  });
  await cli('history', ['history', '--json'], (run) => (Array.isArray((JSON.parse(run.stdout) as { runs: unknown[] }).runs) ? undefined : 'no runs'));

  const newOrg = `org_benchnew${Date.now()}`;
  const backupDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-backup-'));
  await cli('provision', ['provision:tenant', newOrg, '--json'], (run) => expectSummary(run, 'provisioned', 1));
  const deprovision = await cli('deprovision', ['deprovision:tenant', newOrg, '--backup-dir', backupDir, '--json'], (run) =>
    (JSON.parse(run.stdout) as { ok: boolean }).ok ? undefined : run.stdout.slice(0, 500),
  );
  const manifest = deprovision ? (JSON.parse(deprovision.stdout) as { tenants: { manifest?: string }[] }).tenants[0]?.manifest : undefined;
  if (manifest) {
    await cli('restore', ['restore:tenant', manifest, '--json'], (run) => ((JSON.parse(run.stdout) as { ok: boolean }).ok ? undefined : run.stdout.slice(0, 500)));
  } else if (wanted('restore')) {
    record('restore', undefined, 'no backup to restore');
  }
  fs.rmSync(backupDir, { recursive: true, force: true });

  if (!wanted('sync')) return result;
  const clerk = await startFakeClerk({ orgIds: await registeredOrgIds(url) });
  try {
    const run = await cli('sync', ['sync:clerk', '--json'], (r) => ((JSON.parse(r.stdout) as { ok: boolean }).ok ? undefined : r.stdout.slice(0, 500)), {
      CLERK_SECRET_KEY: 'sk_test_bench',
      CLERK_API_URL: clerk.url,
    });
    if (run && result.cells.sync) result.cells.sync.note = `${clerk.requests.length} API calls for ${clerk.orgIds.length} orgs`;
  } finally {
    await clerk.close();
  }
  return result;
}

function label(id: RowId): string {
  return SCALE_ROWS.find(([row]) => row === id)![1];
}

function mb(value: number | undefined): string {
  return value === undefined ? '—' : `${value.toFixed(0)} MB`;
}

function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function expectSummary(run: ProcessRun, key: string, count: number): string | undefined {
  const document = JSON.parse(run.stdout) as { summary: Record<string, number> };
  return document.summary[key] === count ? undefined : `expected ${count} ${key}, got ${JSON.stringify(document.summary)}`;
}

function expectStatus(run: ProcessRun, size: number): string | undefined {
  const document = JSON.parse(run.stdout) as { tenants: { upToDate: number; driftedOrgIds?: string[] } };
  if (document.tenants.upToDate !== size) return `expected ${size} up to date, got ${document.tenants.upToDate}`;
  return (document.tenants.driftedOrgIds?.length ?? 0) > 0 ? `${document.tenants.driftedOrgIds!.length} drifted` : undefined;
}

/** The fixture tree plus one migration every tenant lacks: what the dry run plans. */
function treeWithExtraMigration(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-tree-'));
  for (const file of fs.readdirSync(FIXTURE_DIR)) fs.copyFileSync(path.join(FIXTURE_DIR, file), path.join(dir, file));
  fs.writeFileSync(
    path.join(dir, '20240101000004_labels.ts'),
    "import type { Knex } from 'knex';\nexport async function up(knex: Knex) { await knex.schema.createTable('labels', (t) => { t.bigIncrements('id'); t.string('name', 100).notNullable(); }); }\nexport async function down(knex: Knex) { await knex.schema.dropTable('labels'); }\n",
  );
  return dir;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function countRegistered(url: string): Promise<number> {
  return (await query<{ n: number }>(url, 'select count(*)::int as n from public.tenants'))[0]!.n;
}

async function countPending(url: string): Promise<number> {
  return (await query<{ n: number }>(url, 'select count(*)::int as n from public.tenants where migration_version is null'))[0]!.n;
}

async function registeredOrgIds(url: string): Promise<string[]> {
  return (await query<{ org_id: string }>(url, 'select org_id from public.tenants order by org_id')).map((row) => row.org_id);
}

/** The application names whose backends count as the tool's. */
const TOOL_APPLICATIONS = ['tenant-migrate', 'pg_dump', 'pg_restore', 'psql'];

/**
 * Samples, every 100 ms until stopped, the private memory (RssAnon) of every backend of the tool
 * (or of `application`) on the database; `peakMb()` is the largest single backend seen.
 */
export async function sampleServerMemory(url: string, application?: string) {
  const client = new pg.Client({ connectionString: url, application_name: 'tenant-migrate-bench-sampler' });
  await client.connect();
  const names = application ? [application] : TOOL_APPLICATIONS;
  let peakKb = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await client.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() and application_name = any($1)', [names]).catch(() => ({ rows: [] }));
      for (const { pid } of rows) {
        try {
          const match = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
          if (match) peakKb = Math.max(peakKb, Number(match[1]));
        } catch {
          // the backend ended, or the server is not local
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await client.end();
    },
    peakMb: () => (peakKb > 0 ? peakKb / 1024 : undefined),
  };
}

/** The table: one row per command, per size seconds (per tenant), client and server peaks. */
export function formatScale(report: ScaleReport): string {
  const header = ['command', ...report.sizes.flatMap(({ size }) => [`${size.toLocaleString('en-US')}: time`, 'client', 'server'])];
  const lines: string[][] = [];
  lines.push(['lay-down (floor SQL, untimed set-up)', ...report.sizes.flatMap((s) => [`${s.layDown.seconds.toFixed(0)} s for ${s.layDown.laidDown}${s.layDown.floorMsPerTenant ? ` (${s.layDown.floorMsPerTenant.toFixed(1)} ms/t)` : ''}`, '', ''])]);
  for (const [id, text] of SCALE_ROWS) {
    lines.push([
      text,
      ...report.sizes.flatMap((s) => {
        const cell = s.cells[id];
        if (!cell) return ['—', '', ''];
        return [`${cell.seconds.toFixed(2)} s${cell.perTenantMs ? ` (${cell.perTenantMs.toFixed(1)} ms/t)` : ''}`, mb(cell.clientPeakMb), mb(cell.serverPeakMb)];
      }),
    ]);
  }
  const widths = header.map((cell, i) => Math.max(cell.length, ...lines.map((line) => line[i]!.length)));
  const format = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  const notes = report.sizes.flatMap((s) => Object.entries(s.cells).filter(([, cell]) => cell.note).map(([id, cell]) => `${s.size}: ${label(id as RowId)}: ${cell.note}`));
  return [format(header), ...lines.map(format), ...notes, ...report.missing.map((line) => `missing: ${line}`)].join('\n');
}
