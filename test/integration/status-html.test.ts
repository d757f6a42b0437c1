/**
 * `status --html <file>`: the page a person opens, checked in a real browser. A known fleet — a
 * tenant behind, one whose schema is gone, one deleted in Clerk, one drifted, a failed run — and an
 * org id that is HTML (`org_<script>alert(1)</script>`, which naming.ts allows: no whitespace, no
 * control characters) must show as text, never run. Headless Chromium (Debian's `chromium`) loads
 * the page: its DOM after the page's script ran, the search driven through the URL (`#q=…`), and a
 * screenshot. Without chromium on PATH the browser test is skipped, and its title says why.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { addFromFixture, copyTree, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_status_html' });

const XSS = 'org_<script>alert(1)</script>';
const ORGS = ['org_a', 'org_b', XSS, 'org_c', 'org_gone'];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-status-html-'));
const page = path.join(work, 'fleet.html');

/** Debian's chromium, or another Chromium/Chrome on PATH. */
function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  return undefined;
}
const chromium = findChromium();

function browse(args: string[]): string {
  const profile = fs.mkdtempSync(path.join(work, 'profile-'));
  const result = spawnSync(
    chromium!,
    ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, ...args],
    { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new Error(`chromium ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

/** The text of the element with this id in serialised HTML (the cards are `<div id=…><b>n</b>label</div>`). */
function cardValue(html: string, id: string): string | undefined {
  return new RegExp(`id="${id}"><b>([^<]*)</b>`).exec(html)?.[1];
}

/** The data-org values of a list section, decoded. */
function listed(html: string, section: string): string[] {
  const body = new RegExp(`<section id="${section}">([\\s\\S]*?)</section>`).exec(html)?.[1] ?? '';
  return [...body.matchAll(/data-org="([^"]*)"/g)].map((match) => decode(match[1]!));
}

function decode(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
}

type Status = { tenants: { total: number; upToDate: number; behind: number; behindOrgIds: string[]; deletedOrgIds: string[]; driftedOrgIds: string[] }; missingSchemas: string[] };
let status: Status;
let env: Record<string, string>;

beforeAll(async () => {
  const knex = db.knex();
  await dropAllTenants(knex);
  await knex.raw('drop table if exists public.tenant_migrate_runs');
  const tree = copyTree('tenant-basic', 1);
  env = treeEnv(db.url, { tenant: tree });
  expect((await runCli(['migrate:master'], { env })).code).toBe(0);
  expect((await runCli(['provision:tenant', ...ORGS], { env })).code).toBe(0);
  // A release that fails in one tenant (with an error to show), then one more that nobody has yet.
  await withTenant(knex, XSS, (trx) => trx('org_users').insert({ email: 'poison@example.com' }));
  addFromFixture(tree, 'tenant-failing', '20260101000002_fails_for_some.ts');
  expect((await runCli(['migrate:tenants', '--continue-on-error'], { env })).code).toBe(1);
  addFromFixture(tree, 'tenant-basic', '20260101000002_notes.ts');
  expect((await runCli(['migrate:tenants', '--tenant', 'org_a'], { env })).code).toBe(0);
  // org_gone's schema is gone, org_c was deleted in Clerk, org_b's registry row claims a migration it lacks.
  await knex.raw('drop schema ?? cascade', [tenantSchemaName('org_gone')]);
  await knex('tenants').where({ org_id: 'org_c' }).update({ deleted_at: knex.fn.now() });
  await knex('tenants').where({ org_id: 'org_b' }).update({ migration_version: '20260101000002_notes.ts', migration_count: 3 });

  const json = await runCli(['status', '--json', '--verify'], { env });
  status = JSON.parse(json.stdout);
  const html = await runCli(['status', '--verify', '--html', page], { env });
  expect(html.code, html.stderr).toBe(0);
  expect(html.stdout).toMatch(/Wrote .*fleet\.html \(\d+ kB\): it lists org ids and error messages/);
}, 240_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('status --html', () => {
  it('writes one self-contained page: a CSP of default-src none, every value escaped, the fleet as status --json sees it', () => {
    const html = fs.readFileSync(page, 'utf8');
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'sha256-[^']+'; script-src 'sha256-[^']+'; base-uri 'none'; form-action 'none'">/);
    // Nothing fetched: no URL the browser would load.
    expect(html).not.toMatch(/\b(src|href)=|url\(|@import/);
    // The org id's markup is text: the page's own script is the only one.
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('org_&#60;script&#62;alert(1)&#60;/script&#62;');
    // What the fleet holds (the same as status --json --verify says).
    expect(status.tenants.behindOrgIds).toEqual(expect.arrayContaining([XSS, 'org_c']));
    expect(status.tenants.behindOrgIds).not.toContain('org_a');
    expect(status.missingSchemas).toEqual([tenantSchemaName('org_gone')]);
    expect(status.tenants.deletedOrgIds).toEqual(['org_c']);
    expect(status.tenants.driftedOrgIds).toEqual(['org_b']);
    expect(cardValue(html, 'count-total')).toBe(String(status.tenants.total));
    expect(cardValue(html, 'count-behind')).toBe(String(status.tenants.behind));
    expect(listed(html, 'behind').sort()).toEqual([...status.tenants.behindOrgIds].sort());
    expect(listed(html, 'missing')).toEqual(['org_gone']);
    expect(listed(html, 'deleted')).toEqual(['org_c']);
    expect(listed(html, 'drifted')).toEqual(['org_b']);
    // The latest runs: the failed release with its error, and each fleet run's time histogram.
    expect(html).toMatch(/class="outcome-failed">failed</);
    expect(html).toContain('poisoned tenant');
    expect(html.match(/<svg class="times"/g)?.length).toBeGreaterThanOrEqual(3);
  });

  it('keeps each fleet run\'s per-tenant times in its history row, in fixed buckets', async () => {
    const result = await runCli(['history', '--json'], { env });
    const runs = JSON.parse(result.stdout).runs as { command: string; args: string[]; tenantTimes: { boundsMs: number[]; counts: number[]; tenants: number } | null }[];
    const release = runs.find((run) => run.command === 'migrate:tenants' && run.args.includes('--continue-on-error'))!;
    expect(release.tenantTimes!.boundsMs).toEqual([10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]);
    expect(release.tenantTimes!.counts).toHaveLength(12);
    expect(release.tenantTimes!.tenants).toBe(ORGS.length);
    expect(release.tenantTimes!.counts.reduce((sum, count) => sum + count, 0)).toBe(ORGS.length);
    expect(runs.find((run) => run.command === 'migrate:master')!.tenantTimes).toBeNull();
  });

  it('refuses a page in a directory that does not exist: exit 2, nothing written', async () => {
    const result = await runCli(['status', '--html', path.join(work, 'nope', 'fleet.html')], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('does not exist. Nothing was written.');
  });

  const reason = chromium ? '' : ' (SKIPPED: no chromium on PATH — apt-get install chromium to run it)';
  it.skipIf(!chromium)(`shows the fleet in headless Chromium: counts, escaped org ids, no injected script, the search, a screenshot${reason}`, () => {
    const url = pathToFileURL(page).href;
    const dom = browse(['--dump-dom', url]);
    expect(cardValue(dom, 'count-behind')).toBe(String(status.tenants.behind));
    expect(cardValue(dom, 'count-drifted')).toBe('1');
    expect(cardValue(dom, 'count-missing')).toBe('1');
    // The browser parsed the org id as text: one script element (the page's own), the id shown escaped.
    expect(dom.match(/(?<!org_)<script[\s>]/g)).toHaveLength(1);
    expect(dom).toContain('org_&lt;script&gt;alert(1)&lt;/script&gt;');
    // The CSP let the inline style and script run: the search (from #q=) hid what does not match.
    const searched = browse(['--dump-dom', `${url}#q=${encodeURIComponent('<script>')}`]);
    const shown = /id="matches"[^>]*data-shown="(\d+)"|data-shown="(\d+)"[^>]*id="matches"/.exec(searched);
    expect(shown, 'the search script ran').not.toBeNull();
    const items = [...searched.matchAll(/<(li|div) (?:class="failure" )?data-org="([^"]*)"( hidden="")?/g)];
    expect(items.length).toBeGreaterThan(0);
    for (const [, , org, hidden] of items) expect(Boolean(hidden), decode(org!)).toBe(!decode(org!).includes('<script>'));
    expect(Number(shown![1] ?? shown![2])).toBe(items.filter(([, , org]) => decode(org!).includes('<script>')).length);

    const png = path.join(work, 'status-html.png');
    browse([`--screenshot=${png}`, '--window-size=1200,1500', url]);
    const bytes = fs.readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    if (process.env.STATUS_HTML_SCREENSHOT) fs.copyFileSync(png, process.env.STATUS_HTML_SCREENSHOT);
  }, 300_000);

  it('adds the histogram column to a history table made before it existed, when a run first has one to store', async () => {
    const knex = db.knex();
    await knex.raw('alter table public.tenant_migrate_runs drop column tenant_ms_histogram');
    // A run that lists no tenants stores none, and reading the history works without the column.
    expect((await runCli(['migrate:master'], { env })).code).toBe(0);
    expect((await runCli(['history', '--json', '--limit', '1'], { env })).stdout).toContain('"tenantTimes": null');
    expect((await runCli(['migrate:tenants', '--tenant', 'org_a'], { env })).code).toBe(0);
    const [newest] = JSON.parse((await runCli(['history', '--json', '--limit', '1'], { env })).stdout).runs;
    expect(newest.command).toBe('migrate:tenants');
    expect(newest.tenantTimes).toMatchObject({ tenants: 1 });
  }, 240_000);
});
