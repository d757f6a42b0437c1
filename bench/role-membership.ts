/**
 * What a role change costs the next `SET ROLE` of a login role that is a member of N roles — the
 * cost behind `withTenant`'s first call on each pooled connection after a provisioning with
 * TENANT_ROLES=on (every provisioning grants memberships, which invalidates every backend's cached
 * membership list; the next SET ROLE rebuilds it). Side by side, in one run: the server at
 * BENCH_DATABASE_URL (PostgreSQL 15 here) and an embedded PostgreSQL 17.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres pnpm exec tsx bench/role-membership.ts
 *
 * Roles are cluster-wide: this makes `tm_rm_*` roles and drops them at the end.
 */
import pg from 'pg';
import { startEmbeddedServer } from '../test/support/embedded-server.ts';

const SIZES = [1000, 3000, 10000];
const PREFIX = 'tm_rm_';

interface Row { server: string; roles: number; steadyMs: number; firstAfterChangeMs: number; growSeconds: number }

async function measureServer(label: string, url: string): Promise<Row[]> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const version = Number((await admin.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v);
  const grantTo = (role: string) => (version >= 160000 ? `grant ${role} to ${PREFIX}app with inherit false, set true` : `grant ${role} to ${PREFIX}app`);
  const rows: Row[] = [];
  try {
    await admin.query(`create role ${PREFIX}app login noinherit password 'bench'`);
    const appUrl = new URL(url);
    appUrl.username = `${PREFIX}app`;
    appUrl.password = 'bench';
    let made = 0;
    for (const size of SIZES) {
      const started = performance.now();
      while (made < size) {
        const batch: string[] = [];
        for (let i = 0; i < 250 && made < size; i++, made++) batch.push(`create role ${PREFIX}r${made} nologin; ${grantTo(`${PREFIX}r${made}`)};`);
        await admin.query(batch.join('\n'));
      }
      const growSeconds = (performance.now() - started) / 1000;
      const app = new pg.Client({ connectionString: appUrl.toString() });
      await app.connect();
      const call = async () => {
        const t = performance.now();
        await app.query(`begin; set local role ${PREFIX}r1; commit`);
        return performance.now() - t;
      };
      const steady: number[] = [];
      for (let i = 0; i < 30; i++) steady.push(await call());
      const first: number[] = [];
      for (let i = 0; i < 15; i++) {
        await admin.query(`create role ${PREFIX}x${size}_${i} nologin; ${grantTo(`${PREFIX}x${size}_${i}`)}`);
        first.push(await call());
      }
      await app.end();
      rows.push({ server: label, roles: size, steadyMs: median(steady), firstAfterChangeMs: median(first), growSeconds });
      console.error(`[${label}] ${size} roles: steady ${median(steady).toFixed(1)} ms, first after a role change ${median(first).toFixed(1)} ms`);
    }
  } finally {
    const { rows: names } = await admin.query<{ rolname: string }>(`select rolname from pg_roles where rolname like '${PREFIX}%' order by rolname <> '${PREFIX}app'`);
    for (let i = 0; i < names.length; i += 500) await admin.query(names.slice(i, i + 500).map(({ rolname }) => `drop role "${rolname}"`).join(';\n'));
    await admin.end();
  }
  return rows;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const url = process.env.BENCH_DATABASE_URL;
const results: Row[] = [];
if (url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const version = (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
  await client.end();
  results.push(...(await measureServer(`PostgreSQL ${version}`, url)));
}
const embedded = await startEmbeddedServer({ name: 'role-membership' });
try {
  const client = new pg.Client({ connectionString: embedded.url('postgres') });
  await client.connect();
  const version = (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]!.v;
  await client.end();
  results.push(...(await measureServer(`PostgreSQL ${version} (embedded)`, embedded.url('postgres'))));
} finally {
  await embedded.stop();
}
console.log('| server | login role a member of | SET ROLE, steady (p50) | first SET ROLE after a role change (p50) |');
console.log('| --- | ---: | ---: | ---: |');
for (const row of results) console.log(`| ${row.server} | ${row.roles.toLocaleString('en-US')} roles | ${row.steadyMs.toFixed(1)} ms | ${row.firstAfterChangeMs.toFixed(1)} ms |`);
