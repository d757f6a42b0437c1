/**
 * `pnpm bench --live [--tenants N]` (issue #20): what the application sees while the fleet is
 * migrated under it. N tenants (default 1,000) each with a `notes` table; a steady application load
 * (connections looping short transactions — insert a note, count the notes — over random tenants,
 * one of them pinned to the tenant a long report blocks); a fleet migration that alters `notes`.
 * Measured: the application's p50/p99/max latency before and during the run, its worst stall on the
 * blocked tenant, and the run's time — with the default lock timeout, side by side with
 * `--lock-timeout 0` (the behaviour before issue #20: wait as long as it takes).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import pg from 'pg';
import { provisionTenant } from '../src/tenants/provision.ts';
import { knexConfig } from '../src/db/connection.ts';
import { runCli } from './cli-process.ts';
import { benchTenants } from './fleet.ts';
import type { ScratchDatabase } from './server.ts';

export interface LiveRow {
  label: string;
  lockTimeout: string;
  runSeconds: number;
  exitCode: number | null;
  retried: number;
  before: Latency;
  during: Latency;
  /** The longest transaction of the connection pinned to the blocked tenant, during the run. */
  blockedTenantMaxMs: number;
  appErrors: number;
}

export interface Latency {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

export interface LiveReport {
  tenants: number;
  appConnections: number;
  blockerSeconds: number;
  rows: LiveRow[];
}

const APP_CONNECTIONS = 8;
const BEFORE_MS = 3000;
const BLOCKER_MS = 8000;

/**
 * Provisions `size` tenants (untimed), then runs each contender: a new migration adding a column
 * to `notes`, a blocker on one tenant, the application load throughout.
 */
export async function runLive(db: ScratchDatabase, size: number, log: (line: string) => void): Promise<LiveReport> {
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-bench-live-'));
  try {
    fs.writeFileSync(
      path.join(tree, '20260101000000_notes.ts'),
      "export async function up(knex) { await knex.raw('create table notes (id bigserial primary key, body text not null)'); }\nexport async function down(knex) { await knex.raw('drop table notes'); }\n",
    );
    const tenants = benchTenants(size);
    log(`[live] set-up: provisioning ${size} tenants with a notes table (not timed)…`);
    const knex = knexFactory(knexConfig(connectionOf(db.url), 9));
    try {
      const provisioned = await provisionTenant(knex, tenants.map((t) => t.orgId), { directory: tree, concurrency: 8 });
      if (!provisioned.ok) throw new Error(`provisioning failed: ${provisioned.tenants.find((t) => t.status === 'failed')?.error}`);
    } finally {
      await knex.destroy();
    }
    const rows: LiveRow[] = [];
    const contenders = [
      { label: 'tenant-migrate, lock timeout (default)', args: [] as string[], lockTimeout: 'default (1 s)' },
      { label: 'tenant-migrate --lock-timeout 0 (before #20)', args: ['--lock-timeout', '0'], lockTimeout: '0 (wait)' },
    ];
    for (const [i, contender] of contenders.entries()) {
      const name = `2026020${i + 1}000000_notes_tag${i + 1}.ts`;
      fs.writeFileSync(path.join(tree, name), `export async function up(knex) { await knex.raw('alter table notes add column tag${i + 1} text'); }\nexport async function down(knex) {}\n`);
      // Among the first tenants the run reaches (it works in org id order).
      const blocked = tenants[1]!.schema;
      const app = await startLoad(db.url, tenants.map((t) => t.schema), blocked);
      await sleep(BEFORE_MS);
      const before = app.cut();
      const blocker = await startBlockerFor(db.url, blocked);
      // The read lasts BLOCKER_MS from the moment the run first waits for it (the CLI takes seconds to start).
      const released = blocker.releaseAfterToolWaited(BLOCKER_MS);
      log(`[live] ${contender.label}: migrating ${size} tenants under load, ${blocked} blocked for ${BLOCKER_MS / 1000} s…`);
      const run = await runCli(['migrate:tenants', '--json', ...contender.args], { DATABASE_URL: db.url, TENANT_MIGRATIONS_DIR: tree });
      const during = app.cut();
      await blocker.release();
      await released;
      const errors = await app.stop();
      const summary = parseSummary(run.stdout);
      const row: LiveRow = {
        label: contender.label,
        lockTimeout: contender.lockTimeout,
        runSeconds: run.ms / 1000,
        exitCode: run.exitCode,
        retried: summary?.retried ?? 0,
        before: latency(before.all),
        during: latency(during.all),
        blockedTenantMaxMs: Math.max(0, ...during.blocked),
        appErrors: errors,
      };
      rows.push(row);
      log(`[live] ${contender.label}: ${row.runSeconds.toFixed(1)} s, exit ${row.exitCode}, retried ${row.retried}; app during p99 ${row.during.p99.toFixed(0)} ms, max ${row.during.max.toFixed(0)} ms; blocked tenant max ${row.blockedTenantMaxMs.toFixed(0)} ms`);
    }
    return { tenants: size, appConnections: APP_CONNECTIONS + 1, blockerSeconds: BLOCKER_MS / 1000, rows };
  } finally {
    fs.rmSync(tree, { recursive: true, force: true });
  }
}

/** The table --live prints. */
export function formatLive(report: LiveReport): string {
  const ms = (value: number) => `${value.toFixed(value < 10 ? 1 : 0)} ms`;
  const lines = [
    `--live: ${report.tenants} tenants; application: ${report.appConnections} connections of short transactions (insert + count); one tenant's notes held by a ${report.blockerSeconds} s read`,
    '',
    `${'contender'.padEnd(46)} ${'run'.padStart(8)} ${'retried'.padStart(8)} ${'before p50/p99/max'.padStart(26)} ${'during p50/p99/max'.padStart(28)} ${'blocked tenant max'.padStart(19)} ${'app errors'.padStart(10)}`,
  ];
  for (const row of report.rows) {
    const trio = (l: Latency) => `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}`;
    lines.push(
      `${row.label.padEnd(46)} ${`${row.runSeconds.toFixed(1)} s`.padStart(8)} ${String(row.retried).padStart(8)} ${trio(row.before).padStart(26)} ${trio(row.during).padStart(28)} ${ms(row.blockedTenantMaxMs).padStart(19)} ${String(row.appErrors).padStart(10)}`,
    );
  }
  return lines.join('\n');
}

function parseSummary(stdout: string): { retried?: number } | undefined {
  try {
    return (JSON.parse(stdout) as { summary: { retried?: number } }).summary;
  } catch {
    return undefined;
  }
}

function latency(values: readonly number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? 0, count: sorted.length };
}

/** The application: APP_CONNECTIONS over random tenants, one more pinned to the blocked tenant. */
async function startLoad(url: string, schemas: readonly string[], blocked: string) {
  let all: number[] = [];
  let onBlocked: number[] = [];
  let errors = 0;
  let stopping = false;
  const deadline = Date.now() + 15 * 60_000;
  const loops: Promise<void>[] = [];
  for (let i = 0; i <= APP_CONNECTIONS; i++) {
    const pinned = i === APP_CONNECTIONS;
    const client = new pg.Client({ connectionString: url, application_name: 'bench-app' });
    await client.connect();
    loops.push(
      (async () => {
        try {
          while (!stopping && Date.now() < deadline) {
            const schema = pinned ? blocked : schemas[Math.floor(Math.random() * schemas.length)]!;
            const started = performance.now();
            try {
              await client.query('begin');
              await client.query(`set local search_path = "${schema}"`);
              await client.query('insert into notes (body) values ($1)', ['a note']);
              await client.query('select count(*) from notes');
              await client.query('commit');
              const ms = performance.now() - started;
              all.push(ms);
              if (pinned) onBlocked.push(ms);
            } catch {
              errors += 1;
              await client.query('rollback').catch(() => {});
            }
            await sleep(10);
          }
        } finally {
          await client.end().catch(() => {});
        }
      })(),
    );
  }
  return {
    /** The latencies since the last cut. */
    cut() {
      const taken = { all, blocked: onBlocked };
      all = [];
      onBlocked = [];
      return taken;
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return errors;
    },
  };
}

/** A report on one tenant: a read inside an open transaction (ACCESS SHARE on notes until it ends). */
async function startBlockerFor(url: string, schema: string) {
  const client = new pg.Client({ connectionString: url, application_name: 'bench-report' });
  await client.connect();
  await client.query('begin');
  await client.query(`select count(*) from "${schema}".notes`);
  const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  let done = false;
  const release = async () => {
    if (done) return;
    done = true;
    await client.query('commit').catch(() => {});
    await client.end().catch(() => {});
  };
  return {
    release,
    /** Releases it `holdMs` after a tool backend is first seen waiting for it (bounded: 10 minutes). */
    async releaseAfterToolWaited(holdMs: number) {
      const watcher = new pg.Client({ connectionString: url, application_name: 'bench-watch' });
      await watcher.connect();
      try {
        const deadline = Date.now() + 10 * 60_000;
        while (!done && Date.now() < deadline) {
          const { rows } = await watcher.query<{ n: number }>(
            "select count(*)::int as n from pg_stat_activity where application_name = 'tenant-migrate' and $1 = any(pg_blocking_pids(pid))",
            [pid],
          );
          if (rows[0]!.n > 0) break;
          await sleep(20);
        }
      } finally {
        await watcher.end().catch(() => {});
      }
      await sleep(holdMs);
      await release();
    },
  };
}

function connectionOf(url: string) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: parsed.pathname.slice(1),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
