/**
 * A tenant schema as text, to compare before a deprovision and after its restore: `pg_dump -n`
 * (plain, with data) where this machine's pg_dump can read the server, else the catalog dumper's own
 * text. Both without what differs from one dump to the next (header comments, pg_dump's random
 * \restrict key, the catalog dumper's line naming itself).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type pg from 'pg';
import type { ConnectionSettings } from '../../src/config/load-config.ts';
import { libpqEnvironment } from '../../src/backup/pg-tools.ts';
import { dumpSchemaToFile } from '../../src/backup/schema-dump.ts';

/** Major version of the pg_dump on PATH, or 0 when there is none. */
export function pgDumpMajor(): number {
  try {
    return Number(/\(PostgreSQL\)\s+(\d+)/.exec(execFileSync('pg_dump', ['--version'], { encoding: 'utf8' }))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** `pg_dump --schema` of one schema, plain with data, without its header comments and \restrict key. */
export function pgDumpText(connection: ConnectionSettings, schema: string): string {
  const { env, cleanup } = libpqEnvironment(connection);
  try {
    const text = execFileSync('pg_dump', ['--schema', schema, '--no-password'], { env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    return text
      .split('\n')
      .filter((line) => !/^\\(un)?restrict /.test(line) && !/^-- (Dumped (from|by)|Started on|Completed on)/.test(line))
      .join('\n');
  } finally {
    cleanup();
  }
}

/** The catalog dumper's text of one schema (written to a file in `dir`, read, removed). */
export async function catalogDumpText(knex: Knex, schema: string, dir: string): Promise<string> {
  const file = path.join(dir, `probe-${Date.now()}.sql`);
  const client = (await knex.client.acquireConnection()) as pg.ClientBase;
  try {
    const outcome = await dumpSchemaToFile(client, schema, file, { lockWaitTimeoutMs: 5000, statementTimeoutMs: 0, dumper: 'probe' });
    if (outcome.kind !== 'dumped') throw new Error(`the catalog dumper did not dump ${schema}: ${JSON.stringify(outcome)}`);
  } finally {
    await knex.client.releaseConnection(client);
  }
  const text = fs.readFileSync(file, 'utf8');
  fs.rmSync(file);
  return text.split('\n').filter((line) => !line.startsWith('-- Dumped by')).join('\n');
}
