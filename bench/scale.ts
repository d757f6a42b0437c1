/**
 * `pnpm bench --scale`: does a fleet-wide read stay flat as the fleet grows? `status`,
 * `status --verify` and a no-op `migrate:tenants`, each timed as a whole process on a migrated
 * fleet of each size (default 1,000 and 10,000), side by side with the ratio of the largest size to
 * the smallest. Issue 14 measured `status` at 2.3 s → 5.0 s from 1,000 to 10,000 tenants on
 * PostgreSQL 15 (a nested-loop anti join); the target is a ratio under 1.5 for status and the no-op.
 */
import { runCli, type ProcessRun } from './cli-process.ts';
import { FIXTURE_DIR } from './fixture.ts';
import { benchTenants, resetFleet } from './fleet.ts';
import type { ScratchDatabase } from './server.ts';

export interface ScaleRow {
  id: string;
  label: string;
  /** Median seconds per fleet size, in the order of `sizes`. */
  seconds: number[];
  /** Largest size's median over the smallest's. */
  ratio: number;
  /** The target ratio, when there is one. */
  target?: number;
}

export interface ScaleReport {
  sizes: number[];
  reps: number;
  rows: ScaleRow[];
}

const COMMANDS = [
  { id: 'status', label: 'status', args: ['status', '--json'], target: 1.5 },
  { id: 'status-verify', label: 'status --verify', args: ['status', '--verify', '--json'], target: undefined },
  { id: 'noop', label: 'migrate:tenants, nothing pending', args: ['migrate:tenants', '--json'], target: 1.5 },
] as const;

/**
 * Lays down a migrated fleet of each size (untimed) and times each command `reps` times on it.
 *
 * @example
 *   const report = await runScale(db, [1000, 10000], 3, console.error);
 */
export async function runScale(db: ScratchDatabase, sizes: readonly number[], reps: number, log: (line: string) => void): Promise<ScaleReport> {
  const medians = new Map<string, number[]>(COMMANDS.map((command) => [command.id, []]));
  for (const size of sizes) {
    log(`[scale] set-up: ${size} tenants at the newest migration (floor SQL, not timed)…`);
    await resetFleet(db, benchTenants(size), 'migrated');
    const env = { DATABASE_URL: db.url, TENANT_MIGRATIONS_DIR: FIXTURE_DIR };
    for (const command of COMMANDS) {
      const times: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        const run = await runCli(command.args, env);
        check(command.args, run, size);
        times.push(run.ms / 1000);
        log(`[scale ${size} rep ${rep + 1}/${reps}] ${command.label.padEnd(34)} ${(run.ms / 1000).toFixed(3).padStart(8)} s`);
      }
      medians.get(command.id)!.push(median(times));
    }
  }
  const rows = COMMANDS.map((command): ScaleRow => {
    const seconds = medians.get(command.id)!;
    return { id: command.id, label: command.label, seconds, ratio: seconds.at(-1)! / seconds[0]!, ...(command.target ? { target: command.target } : {}) };
  });
  return { sizes: [...sizes], reps, rows };
}

/** Each run must have done what it claims: every tenant current, none drifted. */
function check(args: readonly string[], run: ProcessRun, size: number): void {
  if (run.exitCode !== 0) throw new Error(`tenant-migrate ${args.join(' ')} exited with ${run.signal ?? run.exitCode}:\n${run.stderr.slice(-2000)}`);
  const document = JSON.parse(run.stdout) as { tenants: { total?: number; upToDate?: number; driftedOrgIds?: string[] } | unknown[]; summary?: { upToDate?: number } };
  const upToDate = Array.isArray(document.tenants) ? document.summary?.upToDate : document.tenants.upToDate;
  if (upToDate !== size) throw new Error(`tenant-migrate ${args.join(' ')}: expected ${size} tenants up to date, got ${upToDate}`);
  if (!Array.isArray(document.tenants) && (document.tenants.driftedOrgIds?.length ?? 0) > 0) {
    throw new Error(`tenant-migrate ${args.join(' ')}: ${document.tenants.driftedOrgIds!.length} tenants reported drifted on a clean fleet`);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The report as a table: one row per command, one column per size, then the ratio and its target. */
export function formatScale(report: ScaleReport): string {
  const sizes = report.sizes.map((size) => `${size.toLocaleString('en-US')} tenants`);
  const header = ['whole process, median of ' + report.reps, ...sizes, `ratio ${sizes.at(-1)} / ${sizes[0]}`, 'target'];
  const lines = report.rows.map((row) => [
    row.label,
    ...row.seconds.map((s) => `${s.toFixed(2)} s`),
    `${row.ratio.toFixed(2)}×`,
    row.target === undefined ? '—' : `< ${row.target}× ${row.ratio < row.target ? 'met' : 'MISSED'}`,
  ]);
  const widths = header.map((cell, i) => Math.max(cell.length, ...lines.map((line) => line[i]!.length)));
  const format = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [format(header), ...lines.map(format)].join('\n');
}
