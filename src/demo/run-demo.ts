/**
 * `pnpm demo`: the main job end to end with nothing installed but the package. Starts an embedded
 * PostgreSQL with pgvector (PGlite) in memory, then runs the real CLI commands against it — the
 * same code and output as `pnpm tenant-migrate …` — plus a vector query through `withTenant`.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';
import pgvector from 'pgvector/knex';
import pc from 'picocolors';
import { main } from '../cli/main.ts';
import { knexConfig } from '../db/connection.ts';
import { EMBEDDED_POOL_SIZE, startEmbeddedServer } from '../embedded/pglite-server.ts';
import { withTenant } from '../tenants/with-tenant.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ORGS = ['org_2demoAcmeCorp', 'org_2demoGlobexInc', 'org_2demoInitech'];
const DIMENSIONS = 1536;

function heading(text: string): void {
  process.stdout.write(`\n${pc.bold(pc.cyan(`▶ ${text}`))}\n`);
}

/** Runs one CLI command in this process, exactly as `pnpm tenant-migrate <args>` would. */
async function cli(...args: string[]): Promise<void> {
  process.stdout.write(pc.dim(`$ pnpm tenant-migrate ${args.map((arg) => (/\s/.test(arg) ? `"${arg}"` : arg)).join(' ')}\n`));
  const code = await main(['node', 'tenant-migrate', ...args]);
  if (code !== 0) throw new Error(`tenant-migrate ${args.join(' ')} exited with ${code}`);
}

/** A deterministic unit-length embedding around one of a few "topics". */
function embedding(topic: number, jitter: number): number[] {
  const values = Array.from({ length: DIMENSIONS }, (_, i) => Math.sin((i + 1) * (topic + 1)) + jitter * Math.cos(i * 7 + topic));
  const norm = Math.hypot(...values);
  return values.map((value) => value / norm);
}

async function vectorSearch(url: string): Promise<void> {
  const knex = knexFactory({ ...knexConfig({ ...parseUrl(url) }, EMBEDDED_POOL_SIZE) });
  try {
    await withTenant(knex, ORGS[0]!, async (trx) => {
      const [user] = await trx('org_users').insert({ clerk_user_id: 'user_2demo', email: 'ada@acme.test' }).returning('id');
      const messages = [
        { content: 'How do I give feedback to a peer?', topic: 0 },
        { content: 'Tips for running a 1:1 with my manager', topic: 1 },
        { content: 'Preparing for a salary negotiation', topic: 2 },
      ];
      const conversationId = randomUUID();
      await trx('chat_messages').insert(
        messages.map((message, i) => ({
          user_id: (user as { id: number }).id,
          conversation_id: conversationId,
          role: 'user',
          content: message.content,
          embedding: pgvector.toSql(embedding(message.topic, 0.05 * i)),
        })),
      );
      const query = pgvector.toSql(embedding(1, 0.2)); // something close to the 1:1 topic
      const nearest = (await trx('chat_messages')
        .select('content', trx.raw('embedding <=> ? as distance', [query]))
        .orderByRaw('embedding <=> ?', [query])
        .limit(2)) as { content: string; distance: number }[];
      for (const row of nearest) process.stdout.write(`  ${row.distance.toFixed(4)}  ${row.content}\n`);
    });
  } finally {
    await knex.destroy();
  }
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty (or already gone): keep it
  }
}

function parseUrl(url: string) {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port), user: parsed.username, database: parsed.pathname.slice(1) };
}

async function demo(): Promise<void> {
  const started = Date.now();
  heading('Starting an embedded PostgreSQL with pgvector (PGlite, in memory)');
  const server = await startEmbeddedServer();
  process.stdout.write(`  listening at ${server.url}\n`);

  // The tenant tree as of "last release": everything but the newest migration, which the demo
  // then ships as a new release to the whole fleet.
  // Inside the project (git-ignored), so the migrations' imports (knex, pgvector) resolve.
  const workDir = path.join(repoRoot, '.tenant-migrate');
  const madeWorkDir = !fs.existsSync(workDir);
  fs.mkdirSync(workDir, { recursive: true });
  const tenantTree = fs.mkdtempSync(path.join(workDir, 'demo-tree-'));
  const shipped = path.join(repoRoot, 'migrations/tenant');
  const files = fs.readdirSync(shipped).filter((file) => file.endsWith('.ts')).sort();
  const newest = files.at(-1)!;
  for (const file of files.slice(0, -1)) fs.copyFileSync(path.join(shipped, file), path.join(tenantTree, file));

  Object.assign(process.env, {
    DATABASE_URL: server.url,
    MASTER_MIGRATIONS_DIR: path.join(repoRoot, 'migrations/master'),
    TENANT_MIGRATIONS_DIR: tenantTree,
    MASTER_SEEDS_DIR: path.join(repoRoot, 'seeds/master'),
    TENANT_SEEDS_DIR: path.join(repoRoot, 'seeds/tenant'),
    // PGlite is a single session: one connection, tenants take turns on it.
    DB_POOL_MAX: String(EMBEDDED_POOL_SIZE),
    // …so one tenant at a time, said here rather than by a warning on every command.
    TENANT_CONCURRENCY: String(EMBEDDED_POOL_SIZE),
  });
  try {
    heading('1. Shared tables in public (and the pgvector extension), and their seed data');
    await cli('migrate:master');
    await cli('seed:master');

    heading('2. Three customer organisations sign up: one schema each, seeded with default settings');
    await cli('provision:tenant', ...ORGS, '--seed');

    heading(`3. A new release adds ${newest}: the fleet is behind`);
    fs.copyFileSync(path.join(shipped, newest), path.join(tenantTree, newest));
    await cli('status');

    heading('4. Deploy: first the plan and its SQL (a dry run), then a canary wave before the rest');
    await cli('migrate:tenants', '--dry-run');
    await cli('migrate:tenants', '--canary', '1');

    heading(`5. The app: store chat messages with embeddings in ${ORGS[0]}, find the nearest`);
    await vectorSearch(server.url);

    heading('6. Where the fleet stands');
    await cli('status', '--check');

    heading('7. Roll the release back on every tenant');
    await cli('rollback:tenants');
    await cli('status', '--json');

    heading('8. Support: one read-only query across every tenant');
    await cli('query:tenants', '--sql', 'select count(*)::int as messages, (select count(*)::int from org_settings) as settings from chat_messages');

    heading(`9. ${ORGS[2]} leaves: deprovision with a verified backup, then (they came back) restore`);
    const backupDir = fs.mkdtempSync(path.join(workDir, 'demo-backups-'));
    await cli('deprovision:tenant', ORGS[2]!, '--backup-dir', path.relative(process.cwd(), backupDir));
    const manifest = fs.readdirSync(backupDir).find((file) => file.endsWith('.json'))!;
    await cli('restore:tenant', path.relative(process.cwd(), path.join(backupDir, manifest)));
    fs.rmSync(backupDir, { recursive: true, force: true });

    heading('10. Who changed what, when: the run history');
    await cli('history');
  } finally {
    fs.rmSync(tenantTree, { recursive: true, force: true });
    // Leave nothing behind: the directory too when the demo made it and nothing else has moved in
    // since (rmdir refuses a directory that is not empty, e.g. DATABASE_URL=embedded's data).
    if (madeWorkDir) removeIfEmpty(workDir);
    await server.stop();
  }
  process.stdout.write(`\n${pc.green(`Demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s.`)} Next: pnpm test, then read README.md.\n`);
}

demo().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${pc.red('demo failed:')} ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
