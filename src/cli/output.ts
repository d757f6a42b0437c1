/**
 * How results reach the user. `--json`: exactly one JSON document on stdout, everything else on
 * stderr. Otherwise: a live progress line on a terminal (cli-progress), plain lines without one,
 * and a short summary at the end.
 */
import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import pc from 'picocolors';
import { writeJsonDocumentTo } from './json-stream.ts';
import type { FleetResult, MasterResult, StatusResult, TenantResult, WaveSummary } from '../report/results.ts';
import { describeBlockers, type Blocker } from '../report/blockers.ts';
import type { RetryEvent } from '../fleet/run-fleet.ts';

export interface Output {
  json: boolean;
  /** Human-readable line (stdout, or stderr under --json). */
  info(line: string): void;
  warn(line: string): void;
  /** The one JSON document of a --json run; resolves once stdout has taken it (or holds the rest). */
  document(value: unknown): Promise<void>;
  /** Keeps the command's result object, for the run ledger (src/history/run-ledger.ts). */
  result(value: unknown): void;
  readonly lastResult: unknown;
}

export function createOutput(json: boolean): Output {
  const human = json ? process.stderr : process.stdout;
  let lastResult: unknown;
  return {
    json,
    result: (value) => {
      lastResult = value;
    },
    get lastResult() {
      return lastResult;
    },
    info: (line) => human.write(`${line}\n`),
    warn: (line) => process.stderr.write(`${pc.yellow('warning')} ${line}\n`),
    // Streamed, never one string, at the pace stdout takes it: a report lists every tenant (json-stream.ts).
    document: (value) => writeJsonDocumentTo(process.stdout, value),
  };
}

const ICON: Record<TenantResult['status'], string> = {
  migrated: pc.green('✔'),
  provisioned: pc.green('✔'),
  seeded: pc.green('✔'),
  'rolled-back': pc.cyan('↩'),
  'up-to-date': pc.dim('='),
  unchanged: pc.dim('·'),
  failed: pc.red('✘'),
  skipped: pc.dim('-'),
};

/** One tenant's line: what happened to it, and the migrations or the error. */
export function tenantLine(result: TenantResult, command?: string): string {
  const migrations = result.migrations.length > 0 ? `: ${result.migrations.join(', ')}` : '';
  let what: string;
  if (result.status === 'failed') what = pc.red(`failed: ${result.error ?? ''}`);
  else if (command === 'provision:tenant' && result.status === 'up-to-date') what = 'already provisioned, up to date';
  else if (command === 'provision:tenant' && result.status === 'migrated') what = `already provisioned, brought to the latest${migrations}`;
  else if (result.status === 'up-to-date') what = 'up to date';
  else if (result.status === 'unchanged') what = 'unchanged: nothing to undo here';
  else if (result.status === 'rolled-back') what = `rolled back ${result.migrations.join(', ')}`;
  else what = `${result.status}${migrations}`;
  const wave = result.wave === undefined ? '' : ` ${pc.dim(`[wave ${result.wave}]`)}`;
  const role = result.role === undefined ? '' : `; tenant role ${result.role}`;
  return `${ICON[result.status]} ${result.orgId} (${result.schema}) ${what}${role} ${pc.dim(`${result.ms} ms`)}${wave}`;
}

/** Up to this many tenants, a run without a terminal prints one line per tenant that changed. */
export const TENANT_LINES_UP_TO = 100;

/**
 * Progress for a fleet command: a live bar on a terminal. Without one: for a fleet of up to
 * {@link TENANT_LINES_UP_TO} tenants one plain line per tenant that changed or failed (up-to-date
 * tenants are only counted); for a larger one only the failures, plus one progress line every 10 s
 * or every 1 % of the fleet (at most one a second) — a CI log of 100,000 tenants stays readable.
 * Under --json only failures.
 */
export function fleetProgress(output: Output, command: string) {
  // provision:tenant names the orgs it was given, even those already provisioned.
  const quietStatuses = command === 'provision:tenant' ? ['skipped'] : ['up-to-date', 'unchanged', 'skipped'];
  const live = Boolean(process.stderr.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let failed = 0;
  const shownHeldUp = new Set<string>();
  const started = Date.now();
  const lines = batchedLines(output);
  let periodic: ReturnType<typeof periodicLine> | undefined;
  return {
    start(total: number) {
      if (!live && !output.json && total > TENANT_LINES_UP_TO) periodic = periodicLine(output, command, total);
      if (!live || total === 0) return;
      // Loaded only for a live bar on a terminal: --help, --version and piped runs never need it.
      const progress = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
      bar = new progress.SingleBar(
        {
          stream: process.stderr,
          format: `${command} [{bar}] {value}/{total} | failed {failed} | {rate}/s | ETA {eta_formatted}{heldUp}`,
          hideCursor: true,
          clearOnComplete: true,
          etaBuffer: 50,
        },
        progress.Presets.shades_classic,
      );
      bar.start(total, 0, { failed: 0, rate: '0', heldUp: '' });
    },
    tenantDone(result: TenantResult) {
      if (result.status === 'failed') failed += 1;
      const quiet = quietStatuses.includes(result.status);
      if (bar) {
        const seconds = Math.max((Date.now() - started) / 1000, 0.001);
        const value = bar.getProgress() * bar.getTotal() + 1;
        bar.increment(1, { failed, rate: (value / seconds).toFixed(1) });
        if (result.status === 'failed') {
          bar.stop();
          output.info(tenantLine(result, command));
          bar.start(bar.getTotal(), value, { failed, rate: (value / seconds).toFixed(1) });
        }
      } else if (result.status === 'failed' || (!quiet && !output.json && !periodic)) {
        // Under --json the document carries every tenant; stderr keeps only what needs attention.
        lines.add(tenantLine(result, command));
      }
      periodic?.tenantDone(result.status === 'failed');
    },
    /**
     * A tenant waits for a lock: on a terminal the bar says who holds it up; otherwise one line per
     * tenant and blocker (not one per sample).
     */
    heldUp(tenant: Pick<TenantResult, 'orgId' | 'schema'>, blockers: Blocker[]) {
      const line = `${tenant.orgId} (${tenant.schema}) ${describeBlockers(blockers)}`;
      if (bar) {
        bar.update({ failed, heldUp: ` | ${line.slice(0, 160)}` });
        return;
      }
      const key = `${tenant.orgId} ${blockers.map((b) => b.pid).join(',')}`;
      if (shownHeldUp.has(key)) return;
      shownHeldUp.add(key);
      lines.add(`${pc.yellow('…')} ${line}`);
    },
    /** A tenant held up was rolled back and goes back to the queue. */
    retry(tenant: Pick<TenantResult, 'orgId' | 'schema'>, event: RetryEvent) {
      const why = event.reason === 'deadlock' ? 'deadlock (this side was the victim)' : event.reason.replace('_', ' ');
      const who = event.blockedBy.length > 0 ? ` — ${describeBlockers(event.blockedBy)}` : '';
      const line = `${pc.yellow('↻')} ${tenant.orgId} (${tenant.schema}) ${why}, rolled back; attempt ${event.attempt + 1} in ${(event.pauseMs / 1000).toFixed(1)} s${who}`;
      bar?.update({ failed, heldUp: '' });
      if (bar) this.note(line);
      else lines.add(line);
    },
    /** A line between tenants (a wave starts): after the tenant lines before it, above the bar. */
    note(line: string) {
      lines.flush();
      if (!bar) return output.info(line);
      const value = bar.getProgress() * bar.getTotal();
      bar.stop();
      output.info(line);
      bar.start(bar.getTotal(), value, { failed });
    },
    stop() {
      bar?.stop();
      lines.flush();
    },
  };
}

/** "migrate:tenants: 4,000/100,000 tenants done (4 %), 0 failed, 41.2/s, about 39 min left". */
function periodicLine(output: Output, command: string, total: number) {
  const started = Date.now();
  const step = Math.max(1, Math.ceil(total / 100));
  let done = 0;
  let failed = 0;
  let lastAt = started;
  let lastDone = 0;
  const number = (n: number) => n.toLocaleString('en-US');
  return {
    tenantDone(failure: boolean) {
      done += 1;
      if (failure) failed += 1;
      const now = Date.now();
      const due = now - lastAt >= 10_000 || (done - lastDone >= step && now - lastAt >= 1_000);
      if (!due || done === total) return; // the summary line says the rest
      const rate = done / Math.max((now - started) / 1000, 0.001);
      const left = Math.round((total - done) / rate);
      const eta = left >= 120 ? `${Math.round(left / 60)} min` : `${left} s`;
      output.info(`${command}: ${number(done)}/${number(total)} tenants done (${Math.floor((100 * done) / total)} %), ${number(failed)} failed, ${rate.toFixed(1)}/s, about ${eta} left`);
      lastAt = now;
      lastDone = done;
    },
  };
}

/**
 * Plain per-tenant lines, written a tenth of a second at a time: on a pipe (CI logs) every write
 * is a blocking system call that wakes the reader, and at thousands of tenants one write per line
 * costs more CPU than the rest of the client's work for that tenant.
 */
function batchedLines(output: Output) {
  let pending: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending.length > 0) output.info(pending.join('\n'));
    pending = [];
  };
  return {
    add(line: string) {
      pending.push(line);
      timer ??= setTimeout(flush, 100);
    },
    flush,
  };
}

const SUMMARY_WORDS: [keyof FleetResult['summary'], string][] = [
  ['provisioned', 'provisioned'],
  ['seeded', 'seeded'],
  ['migrated', 'migrated'],
  ['rolledBack', 'rolled back'],
  ['upToDate', 'up to date'],
  ['unchanged', 'unchanged (nothing to undo there)'],
  ['failed', 'failed'],
  ['skipped', 'skipped (not started after the first failure; use --continue-on-error to go on)'],
  ['rolesCreated', 'tenant roles created'],
  ['rolesDropped', 'tenant roles dropped (TENANT_ROLES=off)'],
];

export function fleetSummaryLine(result: FleetResult): string {
  const { summary } = result;
  // In a run of waves, a failure stops the later waves whatever --continue-on-error says.
  const words = (key: keyof FleetResult['summary'], text: string) => (key === 'skipped' && result.waves ? 'skipped (not started after a failure)' : text);
  const parts = SUMMARY_WORDS.filter(([key]) => summary[key]).map(([key, text]) => `${summary[key]} ${words(key, text)}`);
  const text = `${result.command}: ${summary.total} tenant${summary.total === 1 ? '' : 's'}${parts.length ? ` — ${parts.join(', ')}` : ''} (${summary.ms} ms)`;
  return result.ok ? pc.green(text) : pc.red(text);
}

/**
 * What a plain `rollback:tenants` undid, under its summary: the release, or why nothing was undone
 * and how to go further back. Nothing for `--to` and `--all`, whose flag says it.
 */
export function rollbackReleaseLine(result: FleetResult): string | undefined {
  if (result.release === undefined) return undefined;
  if (result.release === null) {
    return (
      '  nothing to undo: no tenant of this run holds a release (only the migrations it was provisioned with, which a plain rollback never undoes); ' +
      'to go further back: rollback:tenants --to <migration>'
    );
  }
  const { id, migrations } = result.release;
  const rest = result.ok ? 'undone in every tenant of this run that held it' : 'the failed tenants still hold it: run rollback:tenants again to finish';
  return `  release #${id} (${migrations.join(', ')}), the newest release a tenant of this run held: ${rest}`;
}

/** "wave 2: 9 tenants — 8 migrated, 1 failed" (the run's JSON has the same per wave). */
export function waveLine(wave: WaveSummary): string {
  const parts = (
    [
      [wave.migrated, 'migrated'],
      [wave.upToDate, 'up to date'],
      [wave.failed, 'failed'],
      [wave.skipped, 'skipped'],
    ] as const
  ).filter(([count]) => count > 0);
  const text = `wave ${wave.wave}: ${wave.tenants} tenant${wave.tenants === 1 ? '' : 's'}${parts.length ? ` — ${parts.map(([count, word]) => `${count} ${word}`).join(', ')}` : ''}`;
  return wave.failed > 0 ? pc.red(text) : wave.skipped === wave.tenants && wave.tenants > 0 ? pc.yellow(text) : text;
}

export function masterLines(result: MasterResult): string[] {
  if (!result.ok) return [pc.red(`✘ ${result.command} failed: ${result.error ?? ''}`)];
  if (result.migrations.length === 0) {
    return [`${result.command}: ${result.command === 'migrate:master' ? 'already up to date' : 'nothing to roll back'} (${result.ms} ms)`];
  }
  const verb = result.command === 'migrate:master' ? 'applied' : 'rolled back';
  return [
    pc.green(`${result.command}: ${verb} ${result.migrations.length} migration${result.migrations.length === 1 ? '' : 's'} in public (${result.ms} ms)`),
    ...result.migrations.map((name) => `  ${name}`),
  ];
}

export function statusLines(status: StatusResult): string[] {
  const { master, tenants } = status;
  const lines = [
    `Master (public): ${master.applied} applied, ${master.pending.length} pending${master.pending.length ? `: ${master.pending.join(', ')}` : ''}`,
  ];
  if (master.missingFiles.length) lines.push(pc.red(`  applied but missing their file: ${master.missingFiles.join(', ')}`));
  const drift = [
    tenants.driftedOrgIds?.length ? `${tenants.driftedOrgIds.length} drifted` : '',
    tenants.missingFileOrgIds.length ? `${tenants.missingFileOrgIds.length} with a missing migration file` : '',
    status.missingSchemas.length ? `${status.missingSchemas.length} without a schema` : '',
  ].filter(Boolean);
  lines.push(`Tenants: ${tenants.total} registered — ${[`${tenants.upToDate} up to date`, `${tenants.behind} behind`, ...drift].join(', ')}`);
  const width = Math.max(0, ...tenants.versions.map(({ version }) => (version ?? '(no migrations)').length));
  for (const { version, count } of tenants.versions) lines.push(`  ${(version ?? '(no migrations)').padEnd(width)}  ${count}`);
  if (status.nodes) lines.push(`Citus nodes: ${status.nodes.map(({ node, tenants }) => `${node} ${tenants}`).join(', ')}`);
  if (tenants.behindOrgIds.length) lines.push(pc.yellow(`Behind: ${preview(tenants.behindOrgIds)}`));
  if (tenants.driftedOrgIds?.length) {
    lines.push(pc.red(`Drifted (registry disagrees with the schema's knex_migrations; run migrate:tenants --verify): ${preview(tenants.driftedOrgIds)}`));
  }
  if (tenants.missingFileOrgIds.length) lines.push(pc.red(`Applied a migration whose file is gone: ${preview(tenants.missingFileOrgIds)}`));
  if (tenants.missingFiles.length) lines.push(pc.red(`Applied in some tenant, gone from the tenant tree (deleted or renamed; restore it): ${preview(tenants.missingFiles)}`));
  if (tenants.deletedOrgIds.length) lines.push(pc.yellow(`Deleted in Clerk, awaiting deprovisioning: ${preview(tenants.deletedOrgIds)}`));
  if (status.orphanSchemas.length) lines.push(pc.yellow(`Orphan schemas (no registry row): ${preview(status.orphanSchemas)}`));
  if (status.missingSchemas.length) lines.push(pc.red(`Missing schemas (registered, not in the database): ${preview(status.missingSchemas)}`));
  for (const file of status.editedFiles) {
    lines.push(pc.red(`Edited after it was applied (${file.tree} tree): ${file.name} — sha256 now ${file.current.slice(0, 12)}…, recorded ${file.recorded.slice(0, 12)}… (checksums:accept ${file.name} if intended)`));
  }
  lines.push(status.ok ? pc.green('Everything is up to date.') : pc.yellow('Something is pending or drifted (status --check exits 1).'));
  return lines;
}

/** At most 20 names, then a count: a status of 10,000 tenants must stay readable. */
function preview(names: readonly string[]): string {
  return names.length <= 20 ? names.join(', ') : `${names.slice(0, 20).join(', ')} … and ${names.length - 20} more (see --json)`;
}
