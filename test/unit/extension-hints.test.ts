/**
 * explainMissingExtension: the error shapes below are what node-postgres (through Knex) reported
 * from a real PostgreSQL 15 without pgvector (message prefixed with the SQL by Knex, code, detail,
 * hint), plus the older and permission variants. test/integration/shipped-trees.test.ts checks the
 * live errors where a server without pgvector is at hand.
 */
import { describe, expect, it } from 'vitest';
import { explainMissingExtension, PGVECTOR_IMAGE } from '../../src/db/extension-hints.ts';

/** An Error with the fields node-postgres puts on a DatabaseError. */
function pgError(message: string, fields: { code?: string; detail?: string; hint?: string } = {}): Error {
  return Object.assign(new Error(message), fields);
}

const NOT_AVAILABLE_PG15 = pgError('CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public - extension "vector" is not available', {
  code: '0A000',
  detail: 'Could not open extension control file "/usr/share/postgresql/15/extension/vector.control": No such file or directory.',
  hint: 'The extension must first be installed on the system where PostgreSQL is running.',
});

const TYPE_MISSING = pgError(
  'create table "chat_messages" ("id" bigserial primary key, "embedding" vector(1536), "created_at" timestamptz not null default CURRENT_TIMESTAMP) - type "vector" does not exist',
  { code: '42704' },
);

describe('explainMissingExtension', () => {
  it('extension not installed on the server (PostgreSQL 15+, 0A000): OS package with the server major, image, managed services, embedded', () => {
    const hint = explainMissingExtension(NOT_AVAILABLE_PG15);
    expect(hint).toBeDefined();
    expect(hint).toContain('not installed on this PostgreSQL server (version 15)');
    expect(hint).toContain('postgresql-15-pgvector');
    expect(hint).toContain('brew install pgvector');
    expect(hint).toContain(PGVECTOR_IMAGE);
    expect(hint).toMatch(/RDS/);
    expect(hint).toMatch(/Cloud SQL/);
    expect(hint).toContain('azure.extensions');
    expect(hint).toContain('migrate:master');
    expect(hint).toContain('DATABASE_URL=embedded');
  });

  it('extension not installed, older servers (58P01 "could not open extension control file")', () => {
    const error = pgError(
      'could not open extension control file "/usr/share/postgresql/13/extension/vector.control": No such file or directory',
      { code: '58P01' },
    );
    const hint = explainMissingExtension(error);
    expect(hint).toContain('postgresql-13-pgvector');
    expect(hint).toContain('not installed');
  });

  it('unknown server version: a package name pattern', () => {
    const hint = explainMissingExtension(pgError('extension "vector" is not available', { code: '0A000' }));
    expect(hint).toContain('postgresql-<major>-pgvector');
  });

  it('the version from other layouts: Homebrew, RHEL, Windows', () => {
    const detail = (path: string) => `Could not open extension control file "${path}": No such file or directory.`;
    const version = (path: string) =>
      explainMissingExtension(pgError('extension "vector" is not available', { code: '0A000', detail: detail(path) }));
    expect(version('/opt/homebrew/share/postgresql@17/extension/vector.control')).toContain('postgresql-17-pgvector');
    expect(version('/usr/pgsql-16/share/extension/vector.control')).toContain('pgvector_16');
    expect(version('C:\\Program Files\\PostgreSQL\\16\\share\\extension\\vector.control')).toContain('postgresql-16-pgvector');
  });

  it('type "vector" does not exist (42704): run the master migrations first, or install', () => {
    const hint = explainMissingExtension(TYPE_MISSING);
    expect(hint).toContain('"vector" type is missing');
    expect(hint).toContain('migrate:master');
    expect(hint).toContain('CREATE EXTENSION vector WITH SCHEMA public');
    expect(hint).toContain('postgresql-<major>-pgvector');
    expect(hint).toContain(PGVECTOR_IMAGE);
    expect(hint).toContain('DATABASE_URL=embedded');
  });

  it.each([
    ['type "public.vector" does not exist', '42704'],
    ['type "halfvec" does not exist', '42704'],
    ['access method "hnsw" does not exist', '42704'],
    ['access method "ivfflat" does not exist', '42704'],
    ['operator class "vector_cosine_ops" does not exist for access method "hnsw"', '42704'],
    ['operator class "vector_l2_ops" does not exist for access method "btree"', '42704'],
    ['operator does not exist: vector <=> unknown', '42883'],
    ['operator does not exist: unknown <=> unknown', '42883'],
    ['function cosine_distance(text, text) does not exist', '42883'],
  ])('recognises %s (%s)', (message, code) => {
    expect(explainMissingExtension(pgError(`select 1 - ${message}`, { code }))).toContain('migrate:master');
  });

  it('permission denied to create the extension (42501): an administrator creates it once', () => {
    const hint = explainMissingExtension(
      pgError('permission denied to create extension "vector"', { code: '42501', hint: 'Must be superuser to create this extension.' }),
    );
    expect(hint).toContain('may not create');
    expect(hint).toContain('CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public');
    expect(hint).toContain('rds_superuser');
  });

  it('follows the cause chain (a MigrationError wrapping the pg error)', () => {
    const wrapped = new Error('tenant org_a (tid_x): 20260101000002_chat_messages.ts failed', { cause: TYPE_MISSING });
    expect(explainMissingExtension(wrapped)).toContain('migrate:master');
  });

  it('works on plain messages without a code', () => {
    expect(explainMissingExtension(new Error('type "vector" does not exist'))).toBeDefined();
  });

  it.each([
    ['another type', pgError('type "geometry" does not exist', { code: '42704' })],
    ['another extension', pgError('extension "postgis" is not available', { code: '0A000', detail: 'Could not open extension control file "/usr/share/postgresql/15/extension/postgis.control": No such file or directory.' })],
    ['a table', pgError('relation "chat_messages" does not exist', { code: '42P01' })],
    ['another operator', pgError('operator does not exist: integer = text', { code: '42883' })],
    ['a vector-looking word with a different code', pgError('duplicate key value violates unique constraint "vector_unique"', { code: '23505' })],
    ['not an error', 'type "vector" is fine'],
    ['undefined', undefined],
    ['null', null],
  ])('stays silent for %s', (_label, error) => {
    expect(explainMissingExtension(error)).toBeUndefined();
  });

  it('survives a cyclic cause chain', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(explainMissingExtension(a)).toBeUndefined();
  });
});
