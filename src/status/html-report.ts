/**
 * `status --html <file>`: the fleet on one self-contained page — no network, no CDN, nothing
 * fetched: styles and the search script are inline and allowed by their hashes in a
 * Content-Security-Policy of `default-src 'none'`, the charts are inline SVG. Every value that
 * comes from the database or the file system (org ids, migration names, commands, errors) goes
 * through {@link escapeHtml}: an org id may hold `<script>` (naming.ts allows any printable
 * character), and the page must show it, never run it.
 *
 * The page holds customer org ids and error messages: it is as confidential as the database's data.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { RunRecord } from '../history/run-ledger.ts';
import { bucketLabel, type TenantTimes } from '../history/tenant-times.ts';
import { listMigrationNames } from '../migration/source.ts';
import type { StatusResult } from '../report/results.ts';
import { tenantSchemaName } from '../tenants/naming.ts';
import { DEFAULT_REGISTRY, registrySql, type RegistryTable } from '../tenants/registry-table.ts';

/** Failures shown per run; the rest are counted (history --run <id> lists them all). */
const FAILURES_SHOWN = 50;

export interface HtmlReportInput {
  status: StatusResult;
  /** The newest runs of the history, newest first. */
  runs: RunRecord[];
  /** Every file of the master tree, in order (applied or pending). */
  masterFiles: string[];
  /** Registered orgs whose schema is gone, with the schema. */
  missingSchemaOrgs: { orgId: string; schema: string }[];
  /** Where the page was made from: `host:port/database` (never a password). */
  database: string;
  generatedAt: Date;
}

/** `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const STYLE = `
:root { color-scheme: light; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; --line: #d0d7de; --bar: #0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 24px; max-width: 1200px; color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta, .muted { color: var(--muted); } .warning { background: #fff8c5; border: 1px solid #d4a72c; padding: 8px 12px; border-radius: 6px; margin: 12px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 120px; }
.card b { display: block; font-size: 22px; } .card.bad b { color: var(--bad); } .card.ok b { color: var(--ok); }
.verdict.ok { color: var(--ok); } .verdict.bad { color: var(--bad); }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; } td.nowrap, td.num { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .org { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
ul.orgs { list-style: none; padding: 0; margin: 4px 0 12px; columns: 3 260px; } ul.orgs li { padding: 1px 0; break-inside: avoid; }
ul.orgs li .schema { color: var(--muted); font-size: 12px; }
.outcome-ok { color: var(--ok); } .outcome-failed, .outcome-interrupted { color: var(--bad); } .outcome-running { color: var(--warn); }
.state-applied { color: var(--ok); } .state-pending { color: var(--warn); } .state-missing { color: var(--bad); }
input#q { font: inherit; padding: 6px 10px; width: 320px; max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
svg text { font: 11px system-ui, sans-serif; fill: #1f2328; } svg .bar { fill: var(--bar); } svg .axis { fill: var(--muted); }
details summary { cursor: pointer; } pre.error { white-space: pre-wrap; word-break: break-word; margin: 2px 0 6px; font-size: 12px; }
`;

/**
 * The search: filters every org id list by a substring, as typed or from the URL (`#q=<text>`, so a
 * link — or a headless browser — can open the page already filtered).
 */
const SCRIPT = `
(function () {
  var input = document.getElementById('q');
  var count = document.getElementById('matches');
  function apply() {
    var needle = input.value.toLowerCase();
    var items = document.querySelectorAll('[data-org]');
    var shown = 0;
    for (var i = 0; i < items.length; i++) {
      var match = items[i].getAttribute('data-org').toLowerCase().indexOf(needle) !== -1;
      items[i].hidden = !match;
      if (match) shown++;
    }
    count.textContent = needle ? shown + ' of ' + items.length + ' listed entries match' : '';
    count.setAttribute('data-shown', String(shown));
  }
  input.addEventListener('input', apply);
  var hash = /^#q=(.*)$/.exec(location.hash);
  if (hash) { input.value = decodeURIComponent(hash[1]); apply(); }
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The Content-Security-Policy of the page: nothing but its own inline style and script. */
export function contentSecurityPolicy(): string {
  return `default-src 'none'; style-src ${sha256(STYLE)}; script-src ${sha256(SCRIPT)}; base-uri 'none'; form-action 'none'`;
}

function card(label: string, value: number | string, id: string, tone?: 'ok' | 'bad'): string {
  return `<div class="card${tone ? ` ${tone}` : ''}" id="${id}"><b>${escapeHtml(value)}</b>${escapeHtml(label)}</div>`;
}

/** A horizontal bar chart of tenants per newest migration. */
function versionChart(versions: StatusResult['tenants']['versions']): string {
  if (versions.length === 0) return '<p class="muted">No tenants registered.</p>';
  const max = Math.max(...versions.map((version) => version.count));
  const row = 22;
  const labelWidth = 380;
  const barWidth = 520;
  const height = versions.length * row + 4;
  const bars = versions.map((version, i) => {
    const width = Math.max(1, Math.round((version.count / max) * barWidth));
    const y = i * row + 2;
    const name = version.version ?? '(nothing applied)';
    return (
      `<g><title>${escapeHtml(`${name}: ${version.count}`)}</title>` +
      `<text x="${labelWidth - 6}" y="${y + 14}" text-anchor="end">${escapeHtml(name)}</text>` +
      `<rect class="bar" x="${labelWidth}" y="${y + 2}" width="${width}" height="${row - 6}" rx="2"></rect>` +
      `<text x="${labelWidth + width + 4}" y="${y + 14}">${escapeHtml(version.count)}</text></g>`
    );
  });
  return `<svg id="version-chart" role="img" aria-label="tenants per newest migration" width="${labelWidth + barWidth + 60}" height="${height}" viewBox="0 0 ${labelWidth + barWidth + 60} ${height}" xmlns="http://www.w3.org/2000/svg">${bars.join('')}</svg>`;
}

/** A run's per-tenant times: one bar per fixed bucket, the count above it, the upper bound below. */
function timesChart(times: TenantTimes, runId: number): string {
  const max = Math.max(1, ...times.counts);
  const column = 30;
  const plot = 48;
  const width = times.counts.length * column;
  const bars = times.counts.map((count, i) => {
    const h = count === 0 ? 0 : Math.max(2, Math.round((count / max) * plot));
    const x = i * column + 3;
    const bound = i < times.boundsMs.length ? times.boundsMs[i]! : undefined;
    const tick = bound === undefined ? '&gt;' : bound >= 1000 ? `${bound / 1000}s` : String(bound);
    return (
      `<g><title>${escapeHtml(`${bucketLabel(times.boundsMs, i)}: ${count} tenant${count === 1 ? '' : 's'}`)}</title>` +
      `<rect class="bar" x="${x}" y="${14 + plot - h}" width="${column - 6}" height="${h}"></rect>` +
      (count > 0 ? `<text x="${x + (column - 6) / 2}" y="${12 + plot - h}" text-anchor="middle">${count}</text>` : '') +
      `<text class="axis" x="${x + (column - 6) / 2}" y="${plot + 28}" text-anchor="middle">${tick}</text></g>`
    );
  });
  return `<svg class="times" data-run="${runId}" role="img" aria-label="tenants per time bucket (ms, upper bound)" width="${width}" height="${plot + 32}" viewBox="0 0 ${width} ${plot + 32}" xmlns="http://www.w3.org/2000/svg">${bars.join('')}</svg>`;
}

function orgList(id: string, title: string, orgs: readonly { orgId: string; schema: string }[], note: string): string {
  if (orgs.length === 0) return '';
  const items = orgs
    .map(({ orgId, schema }) => `<li data-org="${escapeHtml(orgId)}"><span class="org">${escapeHtml(orgId)}</span> <span class="schema">${escapeHtml(schema)}</span></li>`)
    .join('');
  return `<section id="${id}"><h3>${escapeHtml(title)} (<span class="n">${orgs.length}</span>)</h3><p class="muted">${escapeHtml(note)}</p><ul class="orgs">${items}</ul></section>`;
}

function withSchemas(orgIds: readonly string[]): { orgId: string; schema: string }[] {
  return orgIds.map((orgId) => ({ orgId, schema: tenantSchemaName(orgId) }));
}

function duration(run: RunRecord): string {
  if (!run.finishedAt) return '—';
  const ms = Date.parse(run.finishedAt) - Date.parse(run.startedAt);
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

function runRows(runs: readonly RunRecord[]): string {
  if (runs.length === 0) return '<p class="muted">No runs recorded yet (the history starts with the first command that changes the database).</p>';
  const rows = runs.map((run) => {
    const who = `${run.actor.osUser ?? '?'}@${run.actor.host ?? '?'}`;
    const failures = run.failures.slice(0, FAILURES_SHOWN).map(
      (failure) =>
        `<div class="failure"${failure.orgId === undefined ? '' : ` data-org="${escapeHtml(failure.orgId)}"`}>` +
        (failure.orgId === undefined ? '' : `<span class="org">${escapeHtml(failure.orgId)}</span> `) +
        `<pre class="error">${escapeHtml(failure.error)}</pre></div>`,
    );
    const more = run.failures.length > FAILURES_SHOWN ? `<p class="muted">and ${run.failures.length - FAILURES_SHOWN} more: history --run ${run.id}</p>` : '';
    const failureCell = run.failures.length === 0 ? '' : `<details${run.failures.length <= 5 ? ' open' : ''}><summary>${run.failures.length} failed</summary>${failures.join('')}${more}</details>`;
    return (
      `<tr class="run" id="run-${run.id}"><td class="num">${run.id}</td><td><code>${escapeHtml(run.args.join(' ') || run.command)}</code></td>` +
      `<td class="nowrap">${escapeHtml(run.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</td><td class="outcome-${escapeHtml(run.outcome)}">${escapeHtml(run.outcome)}</td>` +
      `<td class="num">${escapeHtml(duration(run))}</td><td>${escapeHtml(who)}</td>` +
      `<td>${run.tenantTimes ? timesChart(run.tenantTimes, run.id) : '<span class="muted">—</span>'}</td><td>${failureCell}</td></tr>`
    );
  });
  return (
    '<table id="runs"><thead><tr><th>id</th><th>command</th><th>started (UTC)</th><th>outcome</th><th>took</th><th>who</th>' +
    '<th>tenants per time bucket (ms, upper bound)</th><th>failures</th></tr></thead><tbody>' +
    rows.join('') +
    '</tbody></table>'
  );
}

function masterTable(input: HtmlReportInput): string {
  const pending = new Set(input.status.master.pending);
  const rows = [
    ...input.masterFiles.map((name) => [name, pending.has(name) ? 'pending' : 'applied'] as const),
    ...input.status.master.missingFiles.map((name) => [name, 'missing'] as const),
  ];
  if (rows.length === 0) return '<p class="muted">The master tree has no migrations.</p>';
  const state = { applied: 'applied', pending: 'pending', missing: 'applied, file gone' };
  return (
    '<table id="master"><thead><tr><th>migration</th><th>state</th></tr></thead><tbody>' +
    rows.map(([name, kind]) => `<tr><td><code>${escapeHtml(name)}</code></td><td class="state-${kind}">${state[kind]}</td></tr>`).join('') +
    '</tbody></table>'
  );
}

/**
 * The whole page as a string: pure, so a test can render any input.
 *
 * @example
 *   fs.writeFileSync('fleet.html', renderStatusHtml({ status, runs, masterFiles, missingSchemaOrgs: [], database: 'db:5432/app', generatedAt: new Date() }));
 */
export function renderStatusHtml(input: HtmlReportInput): string {
  const { status } = input;
  const tenants = status.tenants;
  const drifted = tenants.driftedOrgIds;
  const cards = [
    card('registered', tenants.total, 'count-total'),
    card('up to date', tenants.upToDate, 'count-up-to-date', 'ok'),
    card('behind', tenants.behind, 'count-behind', tenants.behind > 0 ? 'bad' : undefined),
    card('missing schema', status.missingSchemas.length, 'count-missing', status.missingSchemas.length > 0 ? 'bad' : undefined),
    card('newest file gone', tenants.missingFileOrgIds.length, 'count-missing-file', tenants.missingFileOrgIds.length > 0 ? 'bad' : undefined),
    card('deleted in Clerk', tenants.deletedOrgIds.length, 'count-deleted'),
    ...(drifted ? [card('drifted', drifted.length, 'count-drifted', drifted.length > 0 ? 'bad' : undefined)] : []),
    card('orphan schemas', status.orphanSchemas.length, 'count-orphans', status.orphanSchemas.length > 0 ? 'bad' : undefined),
  ];
  const lists = [
    orgList('behind', 'Behind', withSchemas(tenants.behindOrgIds), 'migrate:tenants brings them to the newest migration.'),
    orgList('missing', 'Missing schema', input.missingSchemaOrgs, 'Registered, but the schema is not in the database: restore the data, or remove the registry row if the org is gone.'),
    orgList('missing-file', 'Newest applied migration has no file', withSchemas(tenants.missingFileOrgIds), 'Their newest migration was deleted or renamed in the tree.'),
    orgList('deleted', 'Deleted in Clerk, awaiting deprovisioning', withSchemas(tenants.deletedOrgIds), 'Kept until deprovision:tenant removes them.'),
    ...(drifted ? [orgList('drifted', 'Drifted (registry disagrees with the schema)', withSchemas(drifted), 'migrate:tenants --verify corrects them.')] : []),
  ].join('');
  const extra = [
    status.orphanSchemas.length > 0 ? `<h3>Orphan schemas (${status.orphanSchemas.length})</h3><p>${status.orphanSchemas.map((schema) => `<code>${escapeHtml(schema)}</code>`).join(' ')}</p>` : '',
    status.editedFiles.length > 0
      ? `<h3>Edited after they were applied (${status.editedFiles.length})</h3><ul>${status.editedFiles.map((file) => `<li><code>${escapeHtml(file.name)}</code> (${escapeHtml(file.tree)} tree) — checksums:accept if intended</li>`).join('')}</ul>`
      : '',
    tenants.missingFiles.length > 0 ? `<h3>Tenant migrations applied but gone from the tree</h3><p>${tenants.missingFiles.map((name) => `<code>${escapeHtml(name)}</code>`).join(' ')}</p>` : '',
  ].join('');
  const verdict = status.ok
    ? '<p class="verdict ok" id="verdict">Everything is up to date.</p>'
    : '<p class="verdict bad" id="verdict">Something is pending or drifted (status --check exits 1).</p>';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy()}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tenant-migrate: fleet status</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Fleet status</h1>
<p class="meta">${escapeHtml(input.database)} — generated ${escapeHtml(input.generatedAt.toISOString())} by tenant-migrate status --html${drifted ? ' --verify' : ''}</p>
<p class="warning">This page lists customer org ids and error messages from the database: share it only as you would share that data.</p>
${verdict}
<div class="cards">${cards.join('')}</div>
<h2>Versions</h2>
<p class="muted">Tenants per newest applied migration.</p>
${versionChart(tenants.versions)}
<h2>Tenants that need attention</h2>
<p><input id="q" type="search" placeholder="Search org ids" aria-label="Search org ids" autocomplete="off"> <span id="matches" class="muted"></span></p>
${lists || '<p class="muted" id="none">None: every registered tenant is on the newest migration.</p>'}
${extra}
<h2>Master tree (public)</h2>
<p class="muted">${status.master.applied} applied, ${status.master.pending.length} pending.</p>
${masterTable(input)}
<h2>Latest runs</h2>
${runRows(input.runs)}
<script>${SCRIPT}</script>
</body>
</html>
`;
}

export interface WriteStatusHtmlOptions {
  status: StatusResult;
  masterDirectory: string;
  registry?: RegistryTable;
  /** `host:port/database`, shown on the page. */
  database: string;
  /** How many of the newest runs to show (default 20). */
  runs?: number;
}

/**
 * Reads what the page needs beyond the status (the history, the master tree, the orgs of missing
 * schemas), renders it and writes it to `file`.
 *
 * @returns the page's size in bytes.
 */
export async function writeStatusHtml(knex: Knex, file: string, options: WriteStatusHtmlOptions): Promise<number> {
  const { listRuns } = await import('../history/run-ledger.ts');
  const registry = options.registry ?? DEFAULT_REGISTRY;
  const missingSchemaOrgs =
    options.status.missingSchemas.length === 0
      ? []
      : ((
          await knex.raw<{ rows: { org_id: string; schema_name: string }[] }>(
            `select org_id, schema_name from ${registrySql(registry)} where schema_name = any(?) order by org_id`,
            [options.status.missingSchemas],
          )
        ).rows.map((row) => ({ orgId: row.org_id, schema: row.schema_name })));
  const html = renderStatusHtml({
    status: options.status,
    runs: await listRuns(knex, { limit: options.runs ?? 20 }),
    masterFiles: listMigrationNames(path.resolve(options.masterDirectory)),
    missingSchemaOrgs,
    database: options.database,
    generatedAt: new Date(),
  });
  fs.writeFileSync(file, html);
  return Buffer.byteLength(html);
}
