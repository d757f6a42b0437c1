/**
 * PostgreSQL's own parser (libpg-query, compiled to WebAssembly), loaded on first use only: the
 * executor classifies migration statements with it, query:tenants checks its statement is a read.
 */
export type ParsedStatement = { stmt?: Record<string, ({ is_local?: boolean } & Record<string, unknown>) | undefined> };
type Parser = (sql: string) => Promise<{ stmts?: ParsedStatement[] }>;

let parser: Promise<Parser> | undefined;

/**
 * The statements of `sql` as parse trees (one `{ stmt: { <NodeKind>: … } }` each).
 * @throws the parser's syntax error.
 */
export async function parseSql(sql: string): Promise<ParsedStatement[]> {
  parser ??= import('libpg-query').then(async (module) => {
    await module.loadModule();
    return module.parse as Parser;
  });
  return ((await (await parser)(sql)).stmts ?? []);
}

type SyncParser = (sql: string) => { stmts?: ParsedStatement[] };
let syncParser: Promise<SyncParser> | undefined;

/**
 * The same parser for callers that must decide synchronously (inside a Knex `query` event, before
 * the statement is sent): load it once with `await`, then call the function it resolves to.
 */
export async function loadSyncParser(): Promise<(sql: string) => ParsedStatement[]> {
  syncParser ??= import('libpg-query').then(async (module) => {
    await module.loadModule();
    return module.parseSync as SyncParser;
  });
  const parse = await syncParser;
  return (sql) => parse(sql).stmts ?? [];
}
