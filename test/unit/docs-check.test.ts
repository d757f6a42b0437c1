import { describe, expect, it } from 'vitest';
import { checkedBlocks, normalise } from '../../scripts/docs-check.ts';

describe('docs:check', () => {
  it('reads only ```console checked blocks, each command with the lines it prints', () => {
    const page = [
      '```console',
      '$ pnpm -s status',
      'not run',
      '```',
      '```console checked',
      '$ export DATABASE_URL=embedded',
      '$ pnpm -s status --check',
      'Master (public): 3 applied, 0 pending',
      'Something is pending or drifted (status --check exits 1).',
      '$ echo $?',
      '1',
      '```',
    ].join('\n');
    const blocks = checkedBlocks(page);
    expect(blocks).toHaveLength(1);
    expect(blocks[0]!.commands.map((command) => command.line)).toEqual(['export DATABASE_URL=embedded', 'pnpm -s status --check', 'echo $?']);
    expect(blocks[0]!.commands[1]!.expected).toEqual(['Master (public): 3 applied, 0 pending', 'Something is pending or drifted (status --check exits 1).']);
  });

  it('normalises what changes between runs, and nothing else', () => {
    const a = normalise('✔ org_1 (tid_dfc7654918) migrated: 20260101000000_x.ts 169 ms\n3   2026-11-24 00:29:49Z  ok  1.3 s  root@vm  migrate:master\n  who  root@vm (pid 502)\nwrote /tmp/tenant-migrate-docs-x/fleet.html', '/tmp/tenant-migrate-docs-x');
    const b = normalise('✔ org_1 (tid_dfc7654918) migrated: 20260101000000_x.ts 2 ms\n3 2026-12-07 01:02:03Z ok 12.7 s other@vm migrate:master\n  who  other@vm (pid 7)\nwrote /work/main/fleet.html', '/work/main');
    expect(a).toBe(b);
    expect(normalise('2 tenants — 2 migrated', '/x')).not.toBe(normalise('2 tenants — 1 migrated', '/x'));
    expect(normalise('{ "ms": 0, "total": 3 }', '/x')).toBe(normalise('{ "ms": 1907, "total": 3 }', '/x'));
    expect(normalise('{ "total": 3 }', '/x')).not.toBe(normalise('{ "total": 4 }', '/x'));
    expect(normalise('org_2abc', '/x')).not.toBe(normalise('org_2abd', '/x'));
  });
});
