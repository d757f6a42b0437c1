/**
 * On a server without pgvector, the shipped trees fail with exit 1 and an error that says what is
 * missing and how to get it — not just PostgreSQL's "type vector does not exist".
 */
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { repoRoot, runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_no_vector' });
const shipped = { master: path.join(repoRoot, 'migrations/master'), tenant: path.join(repoRoot, 'migrations/tenant') };
const hasPgvector = inject('pgvectorAvailable');

describe.skipIf(hasPgvector)(`shipped trees on a server without pgvector (${inject('serverKind')} ${inject('serverVersion')})`, () => {
  it('migrate:master fails with exit 1 and says how to install pgvector', async () => {
    const result = await runCli(['migrate:master'], { env: treeEnv(db.url, shipped) });
    expect(result.code).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toContain('20260101000000_enable_vector.ts');
    expect(output).toContain('extension "vector" is not available');
    expect(output).toMatch(/pgvector is not installed on this PostgreSQL server/);
    expect(output).toContain('pgvector/pgvector:pg17');
    expect(output, output).toMatch(/postgresql-(\d+|<major>)-pgvector/);
  });

  it('provision:tenant fails with exit 1, names the tenant, says to install pgvector, and writes nothing', async () => {
    const result = await runCli(['provision:tenant', 'org_needs_vector', '--json'], { env: treeEnv(db.url, shipped) });
    expect(result.code).toBe(1);
    const tenant = JSON.parse(result.stdout).tenants[0];
    expect(tenant).toMatchObject({ orgId: 'org_needs_vector', status: 'failed' });
    expect(tenant.error).toContain('20260101000002_chat_messages.ts');
    expect(tenant.error).toContain('type "vector" does not exist');
    expect(tenant.error).toMatch(/pgvector/);
    const { rows } = await db.knex().raw('select count(*)::int as n from public.tenants');
    expect(rows[0].n).toBe(0);
  });
});
