/**
 * deprovision with a verified backup, then restore, of single orgs of a laid-down fleet: the
 * catalog dumper (TENANT_BACKUP_DUMPER=tool) against pg_dump (issue #23 item 2). Each org is
 * restored afterwards, so the fleet is left as it was. Not part of `pnpm bench`:
 *
 *   pnpm exec tsx bench/dumpers.ts --url postgres://postgres@127.0.0.1:5432/tm_bench_scale_10000 [--rounds 3]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import knexFactory from 'knex';
import { parse } from 'pg-connection-string';
import { deprovisionTenant } from '../src/backup/deprovision.ts';
import { restoreTenant } from '../src/backup/restore.ts';
import type { ConnectionSettings } from '../src/config/load-config.ts';

const { values } = parseArgs({ options: { url: { type: 'string' }, rounds: { type: 'string', default: '3' } } });
if (!values.url) throw new Error('--url postgres://… is required');
const parsed = parse(values.url);
const connection: ConnectionSettings = { host: parsed.host ?? '127.0.0.1', port: Number(parsed.port ?? 5432), user: parsed.user ?? 'postgres', database: parsed.database!, ...(parsed.password ? { password: parsed.password } : {}), ssl: false };
const knex = knexFactory({ client: 'pg', connection: { ...connection }, pool: { min: 0, max: 2 } });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-dumpers-'));
const tree = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'fixture-tree');
try {
  const { rows } = await knex.raw<{ rows: { n: string; relations: string }[] }>("select (select count(*) from tenants) as n, (select count(*) from pg_class) as relations");
  console.log(`${rows[0]!.n} tenants, ${rows[0]!.relations} relations in pg_class`);
  const orgs = (await knex('tenants').orderBy('org_id').limit(Number(values.rounds) * 2).pluck('org_id')) as string[];
  for (const [i, org] of orgs.entries()) {
    const dumper = i % 2 === 0 ? 'tool' : 'pg_dump';
    const started = performance.now();
    const result = await deprovisionTenant(knex, [org], { backupDir: dir, connection, dumper });
    const deprovisionMs = Math.round(performance.now() - started);
    const tenant = result.tenants[0]!;
    if (tenant.status !== 'deprovisioned') throw new Error(tenant.error);
    const restoreStarted = performance.now();
    await restoreTenant(knex, tenant.manifest!, { connection, directory: tree });
    const restoreMs = Math.round(performance.now() - restoreStarted);
    console.log(`${dumper.padEnd(7)} ${org}: deprovision with verified backup ${deprovisionMs} ms (${tenant.dumpSize} bytes), restore ${restoreMs} ms`);
  }
} finally {
  await knex.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
}
