/**
 * The migration trees we ship (migrations/master, migrations/tenant), run with STOCK Knex: every
 * `up` and `down` works, tenant tables land in the tenant's schema only (unqualified names under
 * search_path = tenant, public), and pgvector works there: a vector(1536) column, an HNSW cosine
 * index, a nearest-neighbour query.
 *
 * Runs on a server with pgvector (see usePgvectorServer: the test server when it has the extension,
 * else PGlite+pgvector). When the test server lacks pgvector, the last test also checks what a user
 * sees there: the real error, recognised by explainMissingExtension.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import pgvector from 'pgvector';
import { describe, expect, inject, it } from 'vitest';
import { down as dropVector } from '../../migrations/master/20260101000000_enable_vector.ts';
import { EMBEDDING_DIMENSIONS } from '../../migrations/tenant/20260101000002_chat_messages.ts';
import { explainMissingExtension } from '../../src/db/extension-hints.ts';
import { repoRoot } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { usePgvectorServer } from '../support/pgvector-server.ts';

const MASTER = path.join(repoRoot, 'migrations/master');
const TENANT = path.join(repoRoot, 'migrations/tenant');
const SCHEMA = 'tid_test';

/**
 * Knex's own directory loader imports files with Node's native `import()`, which cannot load `.ts`
 * under vitest ("Unknown file extension .ts"; it works under tsx, where the CLI runs). The same
 * files through a migration source whose import vitest transforms; everything else is stock Knex.
 */
function treeSource(directory: string): Knex.MigrationSource<string> {
  return {
    getMigrations: async () => fs.readdirSync(directory).filter((name) => name.endsWith('.ts')).sort(),
    getMigrationName: (name) => name,
    getMigration: (name) => import(path.join(directory, name)),
  };
}

const masterOptions: Knex.MigratorConfig = { migrationSource: treeSource(MASTER) };
const tenantOptions: Knex.MigratorConfig = { migrationSource: treeSource(TENANT), schemaName: SCHEMA };
const tenantKnex: Partial<Knex.Config> = { searchPath: [SCHEMA, 'public'] };

const MASTER_FILES = ['20260101000000_enable_vector.ts', '20260101000001_focus_areas.ts', '20260101000002_coaching_categories.ts'];
const TENANT_FILES = [
  '20260101000000_org_users.ts',
  '20260101000001_org_settings.ts',
  '20260101000002_chat_messages.ts',
  '20260101000003_chat_messages_embedding_hnsw.ts',
];
const KNEX_TABLES = ['knex_migrations', 'knex_migrations_lock'];

async function tablesIn(knex: Knex, schema: string): Promise<string[]> {
  const { rows } = await knex.raw<{ rows: { name: string }[] }>(
    'select table_name as name from information_schema.tables where table_schema = ? order by 1',
    [schema],
  );
  return rows.map((row) => row.name);
}

async function vectorExtensionSchema(knex: Knex): Promise<string | undefined> {
  const { rows } = await knex.raw<{ rows: { schema: string }[] }>(
    `select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'vector'`,
  );
  return rows[0]?.schema;
}

/** A unit-length vector of EMBEDDING_DIMENSIONS pointing mostly along `axis`, tilted by `tilt` towards axis+1. */
function embedding(axis: number, tilt = 0): number[] {
  const values = new Array<number>(EMBEDDING_DIMENSIONS).fill(0);
  values[axis] = 1;
  values[axis + 1] = tilt;
  return values;
}

describe('shipped migration trees (stock Knex)', () => {
  const server = usePgvectorServer({ prefix: 'tm_trees' });

  /** Master tree on public and the tenant tree in SCHEMA (no-ops when already there), so each test can run alone. */
  async function prepareTenant(): Promise<void> {
    await server.withKnex({}, async (knex) => {
      await knex.migrate.latest(masterOptions);
      await knex.raw('create schema if not exists ??', [SCHEMA]);
    });
    await server.withKnex(tenantKnex, (knex) => knex.migrate.latest(tenantOptions));
  }

  it('master: up, down, up on public — pgvector enabled in public, focus_areas and coaching_categories', async () => {
    await server.withKnex({}, async (knex) => {
      const [batch, applied] = await knex.migrate.latest(masterOptions);
      expect(batch).toBe(1);
      expect(applied).toEqual(MASTER_FILES);
      expect(await tablesIn(knex, 'public')).toEqual(['coaching_categories', 'focus_areas', ...KNEX_TABLES]);
      expect(await vectorExtensionSchema(knex)).toBe('public');

      // The tables work: a category belongs to a focus area; a slug is unique within it.
      const [area] = await knex('focus_areas').insert({ slug: 'leadership', name: 'Leadership' }).returning('id');
      await knex('coaching_categories').insert({ focus_area_id: area.id, slug: 'feedback', name: 'Giving feedback' });
      await expect(knex('coaching_categories').insert({ focus_area_id: area.id, slug: 'feedback', name: 'Again' })).rejects.toThrow(
        /unique/,
      );
      await expect(knex('focus_areas').where({ id: area.id }).delete()).rejects.toThrow(/foreign key/);
      const row = await knex('focus_areas').first();
      expect(row.created_at).toBeInstanceOf(Date);
      expect(row).toMatchObject({ is_active: true, sort_order: 0 });

      await knex.migrate.rollback(masterOptions, true);
      expect(await tablesIn(knex, 'public')).toEqual(KNEX_TABLES);
      expect(await vectorExtensionSchema(knex)).toBeUndefined();

      await knex.migrate.latest(masterOptions);
      expect(await tablesIn(knex, 'public')).toEqual(['coaching_categories', 'focus_areas', ...KNEX_TABLES]);
      expect(await vectorExtensionSchema(knex)).toBe('public');
    });
  });

  it('tenant: up, down, up inside its schema (search_path tenant, public); nothing lands in public', async () => {
    const publicBefore = await server.withKnex({}, async (knex) => {
      await knex.migrate.latest(masterOptions); // vector in public (no-op when the first test ran)
      await knex.raw('create schema if not exists ??', [SCHEMA]);
      return tablesIn(knex, 'public');
    });

    await server.withKnex(tenantKnex, async (knex) => {
      const [, applied] = await knex.migrate.latest(tenantOptions);
      expect(applied).toEqual(TENANT_FILES);
      expect(await tablesIn(knex, SCHEMA)).toEqual(['chat_messages', ...KNEX_TABLES, 'org_settings', 'org_users']);
      expect(await tablesIn(knex, 'public')).toEqual(publicBefore);

      // The embedding column uses public's vector type; the indexes sit next to the table.
      const { rows: columns } = await knex.raw(
        `select format_type(a.atttypid, a.atttypmod) as type, tn.nspname as type_schema
           from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
           join pg_type t on t.oid = a.atttypid join pg_namespace tn on tn.oid = t.typnamespace
          where n.nspname = ? and c.relname = 'chat_messages' and a.attname = 'embedding'`,
        [SCHEMA],
      );
      expect(columns).toEqual([{ type: `vector(${EMBEDDING_DIMENSIONS})`, type_schema: 'public' }]);
      const { rows: indexes } = await knex.raw<{ rows: { schemaname: string; indexname: string; indexdef: string }[] }>(
        `select schemaname, indexname, indexdef from pg_indexes where tablename = 'chat_messages' order by indexname`,
      );
      expect(indexes.every((index) => index.schemaname === SCHEMA)).toBe(true);
      const hnsw = indexes.find((index) => index.indexname === 'chat_messages_embedding_hnsw');
      expect(hnsw?.indexdef).toMatch(/USING hnsw \(embedding (public\.)?vector_cosine_ops\)/);
      expect(indexes.map((index) => index.indexname)).toEqual(
        expect.arrayContaining(['chat_messages_conversation_id_created_at_index', 'chat_messages_user_id_created_at_index']),
      );

      await knex.migrate.rollback(tenantOptions, true);
      expect(await tablesIn(knex, SCHEMA)).toEqual(KNEX_TABLES);

      const [, again] = await knex.migrate.latest(tenantOptions);
      expect(again).toHaveLength(TENANT_FILES.length);
      expect(await tablesIn(knex, SCHEMA)).toEqual(['chat_messages', ...KNEX_TABLES, 'org_settings', 'org_users']);
      expect(await tablesIn(knex, 'public')).toEqual(publicBefore);
    });
  });

  it('chat_messages stores embeddings and answers a cosine nearest-neighbour query in the tenant', async () => {
    await prepareTenant();
    await server.withKnex(tenantKnex, async (knex) => {
      await knex('chat_messages').delete();
      await knex('org_users').delete();

      const [user] = await knex('org_users')
        .insert({ clerk_user_id: 'user_2abc', email: 'ada@example.com', role: 'org:admin' })
        .returning('id');
      await knex('org_settings').insert({ key: 'assistant', value: { tone: 'warm' }, updated_by: user.id });
      const conversation = crypto.randomUUID();
      const messages = [
        { content: 'about x', embedding: embedding(0) },
        { content: 'about y', embedding: embedding(1) },
        { content: 'mostly x', embedding: embedding(0, 0.3) },
        { content: 'not embedded yet', embedding: null },
      ];
      await knex('chat_messages').insert(
        messages.map((message, i) => ({
          user_id: user.id,
          conversation_id: conversation,
          role: i % 2 ? 'assistant' : 'user',
          content: message.content,
          embedding: message.embedding && pgvector.toSql(message.embedding),
        })),
      );

      const query = pgvector.toSql(embedding(0, 0.1));
      const nearest = await knex('chat_messages')
        .select('content', knex.raw('embedding <=> ? as distance', [query]))
        .whereNotNull('embedding')
        .orderByRaw('embedding <=> ?', [query])
        .limit(2);
      expect(nearest.map((row) => row.content)).toEqual(['about x', 'mostly x']);
      expect(Number(nearest[0].distance)).toBeLessThan(0.01);

      // Read back through pgvector's parser; the dimension is enforced.
      const stored = await knex('chat_messages').where({ content: 'about y' }).first('embedding');
      expect(pgvector.fromSql(stored.embedding)).toEqual(embedding(1));
      await expect(
        knex('chat_messages').insert({ user_id: user.id, conversation_id: conversation, role: 'user', content: 'bad', embedding: '[1,2,3]' }),
      ).rejects.toThrow(new RegExp(`expected ${EMBEDDING_DIMENSIONS} dimensions, not 3`));
      await expect(
        knex('chat_messages').insert({ user_id: user.id, conversation_id: conversation, role: 'robot', content: 'bad' }),
      ).rejects.toThrow(/chat_messages_role_check/);

      // The planner can serve the ordering from the HNSW index.
      const plan = await knex.transaction(async (trx) => {
        await trx.raw('set local enable_seqscan = off');
        const { rows } = await trx.raw('explain select id from chat_messages order by embedding <=> ? limit 2', [query]);
        return rows.map((row: { 'QUERY PLAN': string }) => row['QUERY PLAN']).join('\n');
      });
      expect(plan).toContain('chat_messages_embedding_hnsw');

      // Deleting a user deletes their history.
      await knex('org_users').where({ id: user.id }).delete();
      expect(await knex('chat_messages').count({ n: '*' }).first()).toEqual({ n: 0 });
      expect(await knex('org_settings').first('updated_by')).toEqual({ updated_by: null });
    });
  });

  it("enable_vector's down refuses while a tenant still has a vector column (no CASCADE)", async () => {
    await prepareTenant();
    await server.withKnex({}, async (knex) => {
      await expect(dropVector(knex)).rejects.toThrow(/cannot drop extension vector because other objects depend on it/);
      expect(await vectorExtensionSchema(knex)).toBe('public');
    });
  });
});

describe.runIf(!inject('pgvectorAvailable'))('on the test server, which has no pgvector', () => {
  const db = useFreshDatabase({ prefix: 'tm_novector' });

  it('the trees fail with PostgreSQL errors that explainMissingExtension turns into install advice', async () => {
    const knex = db.createKnex({ searchPath: [SCHEMA, 'public'] });
    const master = await knex.migrate.latest(masterOptions).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(master).toMatchObject({ code: '0A000', message: expect.stringContaining('extension "vector" is not available') });
    expect(explainMissingExtension(master)).toContain('not installed on this PostgreSQL server');

    await knex.raw('create schema ??', [SCHEMA]);
    const tenant = await knex.migrate.latest(tenantOptions).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(tenant).toMatchObject({ code: '42704', message: expect.stringContaining('type "vector" does not exist') });
    expect(explainMissingExtension(tenant)).toContain('migrate:master');
    // Knex ran each file in the one transaction of latest(): nothing of the tree is left.
    expect(await tablesIn(knex, SCHEMA)).toEqual(KNEX_TABLES);
  });
});
