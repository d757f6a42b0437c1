/**
 * Start-up of the CLI as users get it: each packed tarball installed with npm into a fresh
 * project, its bin run by each Node binary given, against a bare `node -e 0` on the same binary —
 * `--version`, `--help`, and `status` on 10 tenants with nothing pending. Medians of `--reps` runs
 * (default 7) after one warm-up run (which fills Node 22+'s compile cache), the commands and
 * binaries interleaved so load on the machine hits them alike.
 *
 *   node --import tsx bench/startup-installed.ts --tarball before.tgz --tarball after.tgz \
 *     --node /usr/bin/node --node /opt/node22/bin/node [--reps 7]
 *
 * Server: BENCH_DATABASE_URL, else TEST_DATABASE_URL (admin URL; a scratch database is created
 * there for the 10 tenants and dropped at the end). A tarball: `pnpm pack`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import knexFactory from 'knex';
import { median } from './startup.ts';

const { values } = parseArgs({
  options: {
    tarball: { type: 'string', multiple: true, default: [] },
    node: { type: 'string', multiple: true, default: [process.execPath] },
    reps: { type: 'string', default: '7' },
  },
});
const reps = Number(values.reps);
const adminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!adminUrl || values.tarball.length === 0) {
  console.error('usage: BENCH_DATABASE_URL=postgres://… node --import tsx bench/startup-installed.ts --tarball x.tgz [--tarball y.tgz] [--node /path/to/node …] [--reps 7]');
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-startup-installed-'));
const database = `tm_startup_${process.pid}`;
const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
const url = new URL(adminUrl);
url.pathname = `/${database}`;

/** A fresh npm project with the tarball installed; returns the bin's path. */
function install(tarball: string, name: string): string {
  const app = path.join(work, name);
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: `startup-${name}`, private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', path.resolve(tarball)], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });
  return path.join(app, 'node_modules/tenant-migrate/bin/tenant-migrate.js');
}

/** A JavaScript tree with one master and one tenant migration (nothing for tsx to compile). */
function writeTrees(): Record<string, string> {
  const master = path.join(work, 'migrations/master');
  const tenant = path.join(work, 'migrations/tenant');
  fs.mkdirSync(master, { recursive: true });
  fs.mkdirSync(tenant, { recursive: true });
  fs.writeFileSync(path.join(master, '20260101000000_plans.mjs'), "export async function up(knex) { await knex.schema.createTable('plans', (t) => { t.increments('id'); }); }\nexport async function down(knex) { await knex.schema.dropTable('plans'); }\n");
  fs.writeFileSync(path.join(tenant, '20260101000000_notes.mjs'), "export async function up(knex) { await knex.schema.createTable('notes', (t) => { t.increments('id'); }); }\nexport async function down(knex) { await knex.schema.dropTable('notes'); }\n");
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: url.toString(), MASTER_MIGRATIONS_DIR: master, TENANT_MIGRATIONS_DIR: tenant };
}

function timed(argv: string[], env: Record<string, string>, expect: string): number {
  const started = performance.now();
  const run = spawnSync(argv[0]!, argv.slice(1), { cwd: work, env, encoding: 'utf8' });
  const ms = performance.now() - started;
  if (run.status !== 0 || !(run.stdout + run.stderr).includes(expect)) throw new Error(`${argv.join(' ')} failed (exit ${run.status}):\n${run.stderr}${run.stdout}`);
  return ms;
}

try {
  await admin.raw('create database ??', [database]);
  const env = writeTrees();
  const bins = values.tarball.map((tarball, index) => ({ label: path.basename(tarball), bin: install(tarball, `app${index}`) }));
  execFileSync(process.execPath, [bins[0]!.bin, 'migrate:master'], { cwd: work, env, stdio: 'ignore' });
  execFileSync(process.execPath, [bins[0]!.bin, 'provision:tenant', ...Array.from({ length: 10 }, (_, i) => `org_startup_${i}`)], { cwd: work, env, stdio: 'ignore' });

  const commands = [
    { name: '--version', args: ['--version'], expect: '.' },
    { name: '--help', args: ['--help'], expect: 'Usage' },
    { name: 'status (10 tenants)', args: ['status'], expect: '10' },
  ];
  console.log(`start-up, whole process, median of ${reps} (after 1 warm-up), ms — and × a bare \`node -e 0\``);
  for (const node of values.node) {
    const version = execFileSync(node, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
    const rows: { label: string; runs: number[] }[] = [{ label: 'node -e 0', runs: [] }];
    const plan: { row: number; argv: string[]; expect: string }[] = [{ row: 0, argv: [node, '-e', '0'], expect: '' }];
    for (const { label, bin } of bins) {
      for (const command of commands) {
        rows.push({ label: `${label.padEnd(26)} ${command.name}`, runs: [] });
        plan.push({ row: rows.length - 1, argv: [node, bin, ...command.args], expect: command.expect });
      }
    }
    for (const step of plan) timed(step.argv, env, step.expect); // warm-up
    for (let rep = 0; rep < reps; rep++) for (const step of plan) rows[step.row]!.runs.push(timed(step.argv, env, step.expect));
    const bare = median(rows[0]!.runs);
    console.log(`\nNode ${version}`);
    for (const row of rows) console.log(`  ${row.label.padEnd(48)} ${median(row.runs).toFixed(0).padStart(6)} ms  ${(median(row.runs) / bare).toFixed(1).padStart(5)}×`);
  }
} finally {
  await admin.raw('drop database if exists ?? with (force)', [database]).catch(() => {});
  await admin.destroy();
  fs.rmSync(work, { recursive: true, force: true });
}
