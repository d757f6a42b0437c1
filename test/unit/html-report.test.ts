import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bucketLabel, tenantTimes } from '../../src/history/tenant-times.ts';
import type { RunRecord } from '../../src/history/run-ledger.ts';
import type { StatusResult } from '../../src/report/results.ts';
import { escapeHtml, renderStatusHtml } from '../../src/status/html-report.ts';

const HOSTILE = `org_"><img src=x onerror=alert(1)><script>alert('x')</script>&amp;`;

function status(): StatusResult {
  return {
    master: { applied: 1, pending: ['<b>m2</b>.ts'], missingFiles: [] },
    tenants: {
      total: 2,
      upToDate: 0,
      behind: 2,
      versions: [{ version: '<svg onload=alert(1)>.ts', count: 2 }],
      behindOrgIds: [HOSTILE, 'org_plain'],
      missingFileOrgIds: [],
      missingFiles: [],
      deletedOrgIds: [HOSTILE],
      driftedOrgIds: [],
    },
    orphanSchemas: [],
    missingSchemas: [],
    editedFiles: [],
    ok: false,
  };
}

const run: RunRecord = {
  id: 7,
  command: 'migrate:tenants',
  args: ['migrate:tenants', '--tenant', HOSTILE],
  actor: { osUser: '<u>', host: 'h', pid: 1 } as RunRecord['actor'],
  startedAt: '2026-12-07T01:00:00.000Z',
  finishedAt: '2026-12-07T01:00:01.500Z',
  outcome: 'failed',
  summary: {},
  failures: [{ orgId: HOSTILE, error: 'boom </pre><script>alert(2)</script>' }],
  tenantTimes: tenantTimes([{ status: 'migrated', ms: 7 }, { status: 'failed', ms: 300 }, { status: 'skipped', ms: 0 }])!,
};

describe('status --html page', () => {
  const html = renderStatusHtml({ status: status(), runs: [run], masterFiles: ['m1.ts', '<b>m2</b>.ts'], missingSchemaOrgs: [], database: 'db<x>', generatedAt: new Date(0) });

  it('escapes every value: the only script and the only tags are the page\'s own', () => {
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).not.toMatch(/<img|<svg onload|<b>m2|<u>|db<x>/);
    expect(html).toContain(escapeHtml(HOSTILE));
    // An attribute value never ends early: no raw quote inside data-org.
    for (const match of html.matchAll(/data-org="([^"]*)"/g)) expect(match[1]).not.toMatch(/[<>]/);
  });

  it('allows exactly its inline style and script by their sha256 in the CSP', () => {
    const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)![1]!;
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    const hash = (text: string) => createHash('sha256').update(text).digest('base64');
    expect(csp).toBe(`default-src 'none'; style-src 'sha256-${hash(style)}'; script-src 'sha256-${hash(script)}'; base-uri 'none'; form-action 'none'`);
  });

  it('keeps tenant times in fixed buckets, leaving out skipped and unopened tenants', () => {
    expect(run.tenantTimes!.counts).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(run.tenantTimes!.tenants).toBe(2);
    expect(tenantTimes([{ status: 'up-to-date', ms: 0 }])).toBeUndefined();
    expect(tenantTimes([{ status: 'migrated', ms: 99_999 }])!.counts.at(-1)).toBe(1);
    expect([0, 1, 11].map((i) => bucketLabel(run.tenantTimes!.boundsMs, i))).toEqual(['≤ 10 ms', '10 ms–25 ms', '> 30 s']);
  });
});
