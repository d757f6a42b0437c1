/**
 * The start-up section of `pnpm bench --startup`: what a command costs before it does any work,
 * whole process from spawn to exit, for the ways tenant-migrate is started:
 *
 *   - `tsx src/cli/main.ts` — this repository's `pnpm <command>` scripts (tsx's CLI, which starts
 *     a second node process with its loader), i.e. how every command started before the build;
 *   - `node --import tsx src/cli/main.ts` — from source in one process (the tests, the old bin);
 *   - `node bin/tenant-migrate.js` — the installed bin: compiled dist/, no tsx.
 *
 * Commands: `--version`, and `migrate:tenants` with nothing pending on 10 tenants (bench fixture
 * tree, TypeScript: nothing pending imports no migration, so the compiled CLI never loads tsx).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { REPO_ROOT } from './cli-process.ts';
import { FIXTURE_DIR } from './fixture.ts';
import { benchTenants, resetFleet } from './fleet.ts';
import type { ScratchDatabase } from './server.ts';

export const STARTUP_TENANTS = 10;

interface Launcher {
  id: string;
  label: string;
  argv: string[];
}

export interface StartupMeasurement {
  command: string;
  launcher: string;
  label: string;
  runsMs: number[];
  medianMs: number;
}

function launchers(): Launcher[] {
  const tsxCli = createRequire(path.join(REPO_ROOT, 'package.json')).resolve('tsx/cli');
  const source = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
  return [
    { id: 'tsx-cli', label: 'tsx src/cli/main.ts (pnpm scripts; before)', argv: [tsxCli, source] },
    { id: 'node-import-tsx', label: 'node --import tsx src/cli/main.ts', argv: ['--import', 'tsx', source] },
    { id: 'compiled', label: 'node bin/tenant-migrate.js (compiled; after)', argv: [path.join(REPO_ROOT, 'bin', 'tenant-migrate.js')] },
  ];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Builds dist/ from the current source, puts 10 tenants at the newest fixture migration, and runs
 * each command `reps` times per launcher, the launchers alternating within each rep.
 *
 * @example
 *   const rows = await measureStartup(db, 5, console.error);
 */
export async function measureStartup(db: ScratchDatabase, reps: number, log: (line: string) => void): Promise<StartupMeasurement[]> {
  log('[startup] pnpm build (dist/ from the current source)…');
  execFileSync('pnpm', ['-s', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  await resetFleet(db, benchTenants(STARTUP_TENANTS), 'migrated');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: db.url,
    TENANT_MIGRATIONS_DIR: FIXTURE_DIR,
  };
  const commands: { name: string; args: string[]; expect: string }[] = [
    { name: '--version', args: ['--version'], expect: '.' },
    { name: `migrate:tenants, nothing pending, ${STARTUP_TENANTS} tenants`, args: ['migrate:tenants'], expect: `${STARTUP_TENANTS} up to date` },
  ];
  const all = launchers();
  const rows: StartupMeasurement[] = [];
  for (const command of commands) {
    const byLauncher = new Map(all.map((launcher) => [launcher.id, [] as number[]]));
    for (let rep = 0; rep < reps; rep++) {
      for (let i = 0; i < all.length; i++) {
        const launcher = all[(i + rep) % all.length]!;
        const started = performance.now();
        const run = spawnSync(process.execPath, [...launcher.argv, ...command.args], { cwd: REPO_ROOT, env, encoding: 'utf8' });
        const ms = performance.now() - started;
        if (run.status !== 0 || !run.stdout.includes(command.expect)) {
          throw new Error(`${launcher.label} ${command.args.join(' ')} failed (exit ${run.status}):\n${run.stderr}${run.stdout}`);
        }
        byLauncher.get(launcher.id)!.push(ms);
        log(`[startup rep ${rep + 1}/${reps}] ${command.args[0]!.padEnd(16)} ${launcher.id.padEnd(16)} ${(ms / 1000).toFixed(3)} s`);
      }
    }
    for (const launcher of all) {
      const runsMs = byLauncher.get(launcher.id)!;
      rows.push({ command: command.name, launcher: launcher.id, label: launcher.label, runsMs, medianMs: median(runsMs) });
    }
  }
  return rows;
}

/** The section as a table, with each launcher's median against `tsx src/cli/main.ts`. */
export function formatStartup(rows: readonly StartupMeasurement[]): string {
  const lines = ['', `start-up, whole process (median of ${rows[0]?.runsMs.length ?? 0} runs, min–max):`];
  for (const command of [...new Set(rows.map((row) => row.command))]) {
    lines.push(`  ${command}`);
    const group = rows.filter((row) => row.command === command);
    const before = group.find((row) => row.launcher === 'tsx-cli')!.medianMs;
    for (const row of group) {
      const range = `${(Math.min(...row.runsMs) / 1000).toFixed(3)}–${(Math.max(...row.runsMs) / 1000).toFixed(3)}`;
      lines.push(
        `    ${row.label.padEnd(46)} ${(row.medianMs / 1000).toFixed(3)} s  (${range})  ${(row.medianMs / before).toFixed(2)}× the tsx CLI`,
      );
    }
  }
  return lines.join('\n');
}
