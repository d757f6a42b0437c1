/** The harness itself: one server for the run, a fresh database for this file. */
import { describe, expect, inject, it } from 'vitest';
import { useFreshDatabase } from '../support/database.ts';

describe('test harness', () => {
  const db = useFreshDatabase({ prefix: 'tm_harness' });

  it('gives this file its own, empty database on the run server', async () => {
    const rows = await db.knex().raw<{ rows: { db: string; tables: number }[] }>(
      `select current_database() as db,
              (select count(*) from information_schema.tables where table_schema = 'public')::int as tables`,
    );
    expect(rows.rows[0]).toEqual({ db: db.name, tables: 0 });
    expect(db.env.DATABASE_URL).toBe(db.url);
    expect(['env', 'container', 'embedded']).toContain(inject('serverKind'));
    expect(inject('serverVersionNum')).toBeGreaterThanOrEqual(130000); // DROP DATABASE … WITH (FORCE)
  });
});
