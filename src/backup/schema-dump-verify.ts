/**
 * Reads a catalog dump (schema-dump.ts) back before anything is dropped, and again before a
 * restore: it must be complete (the end marker, last), every SQL part must parse with PostgreSQL's
 * own parser (the COPY data blocks aside), it must create its schema, and every table's COPY block
 * must hold the rows the dump read — counted again here, line by line, against the dump's own
 * trailer and (after a dump) what the COPY reported.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { parseSql } from '../db/parse-sql.ts';
import { DUMP_END_MARKER, type TableRows } from './schema-dump.ts';

/**
 * @returns the tables and rows the file holds.
 * @throws Error saying what is wrong with the file.
 */
export async function verifySchemaDump(file: string, schema: string, expected?: readonly TableRows[]): Promise<TableRows[]> {
  const sql: string[] = [];
  const blocks: TableRows[] = [];
  const trailer: TableRows[] = [];
  let copying: TableRows | undefined;
  let last = '';
  const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (copying) {
      if (line === '\\.') {
        blocks.push(copying);
        copying = undefined;
      } else copying.rows++;
      continue;
    }
    const copy = /^COPY (.+?)(?: \(.*\))? FROM stdin;$/.exec(line);
    if (copy) copying = { table: copy[1]!, rows: 0 };
    const counted = /^-- rows (.+) (\d+)$/.exec(line);
    if (counted) trailer.push({ table: counted[1]!, rows: Number(counted[2]) });
    sql.push(line);
    if (line !== '') last = line;
  }
  const bad = (why: string) => new Error(`the dump ${file} ${why}`);
  if (copying) throw bad(`ends inside the data of ${copying.table} (truncated)`);
  if (last !== `${DUMP_END_MARKER} (${blocks.length} tables)`) throw bad('is incomplete: no end marker, or not the number of tables it holds');
  const statements = await parseSql(sql.join('\n')).catch((error: unknown) => {
    throw bad(`does not parse (${(error as Error).message})`);
  });
  if (!statements.some((statement) => (statement.stmt?.CreateSchemaStmt as { schemaname?: string } | undefined)?.schemaname === schema)) throw bad(`does not create the schema ${schema}`);
  const copies = statements.filter((statement) => statement.stmt?.CopyStmt).length;
  if (copies !== blocks.length) throw bad(`has ${copies} COPY statements but ${blocks.length} data blocks`);
  const same = (a: readonly TableRows[], b: readonly TableRows[]) => a.length === b.length && a.every((t, i) => t.table === b[i]!.table && t.rows === b[i]!.rows);
  if (!same(blocks, trailer)) throw bad(`holds other rows than its trailer counts (${describe(blocks)} vs ${describe(trailer)})`);
  if (expected && !same(blocks, expected)) throw bad(`holds other rows than the dump read (${describe(blocks)} vs ${describe(expected)})`);
  return blocks;
}

function describe(tables: readonly TableRows[]): string {
  return tables.map((t) => `${t.table}: ${t.rows}`).join(', ') || 'no tables';
}
