import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliEnv, repoRoot } from '../support/cli.ts';

describe('pnpm demo', () => {
  it('runs the main job end to end on an embedded PostgreSQL with pgvector, with nothing configured', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/demo/run-demo.ts'], { cwd: repoRoot, env: cliEnv() });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, output).toBe(0);
    expect(output).toContain('applied 3 migrations in public');
    expect(output).toContain('3 provisioned');
    expect(output).toContain('3 behind');
    expect(output).toContain('3 migrated');
    // The deploy: a dry run first (nothing changed), then one canary before the other two.
    expect(output).toMatch(/3 tenants at 20260101000002_chat_messages\.ts \(.*\): would apply 20260101000003_chat_messages_embedding_hnsw\.ts/);
    expect(output).toContain('in a transaction that was rolled back; nothing was changed.');
    expect(output).toContain('wave 1/2: 1 tenant');
    expect(output).toContain('wave 2: 2 tenants — 2 migrated');
    expect(output).toMatch(/0\.\d{4} {2}Tips for running a 1:1 with my manager/); // the nearest neighbour comes first
    expect(output).toContain('3 rolled back');
    expect(output).toContain('seed:master: ran 1 seed in public');
    expect(output).toMatch(/org_2demoAcmeCorp\s+3\s+3\n/); // query:tenants: 3 messages (step 5), 3 seeded settings
    // A deprovision with a verified backup, then a restore from its manifest, both in the history.
    expect(output).toMatch(/✔ org_2demoInitech \(tid_[0-9a-f]{10}\) deprovisioned, backup .*\.json \(\d+ bytes, verified\)/);
    expect(output).toMatch(/restore:tenant: org_2demoInitech \(tid_[0-9a-f]{10}\) restored at 20260101000002_chat_messages\.ts \(3 applied\)/);
    expect(output).toMatch(/ok\s+.*rollback:tenants/); // the history lists the demo's own runs
    expect(output).toMatch(/ok\s+.*deprovision:tenant org_2demoInitech --backup-dir/);
    expect(output).toMatch(/ok\s+.*restore:tenant /);
    expect(output).toContain('Demo finished');
    // It leaves nothing behind in the project (its temporary tree lived under .tenant-migrate/).
    const workDir = path.join(repoRoot, '.tenant-migrate');
    const left = fs.existsSync(workDir) ? fs.readdirSync(workDir) : [];
    expect(left.filter((name) => name.startsWith('demo-tree-') || name.startsWith('demo-backups-'))).toEqual([]);
  }, 180_000); // the demo runs a dozen commands on PGlite: about 20 s alone, minutes on a loaded machine
});
