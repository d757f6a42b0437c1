/**
 * Which migrations may be replayed: the fast path sends a migration's recorded SQL to a later
 * tenant instead of running its module again (replay-script.ts). That is only equal to running
 * the module when the module could not have seen anything tenant-specific and its SQL means the
 * same in every schema. So a migration is replayable only when EVERY statement it sent is, by
 * PostgreSQL's own parser (libpg-query), plain DDL — statements whose result carries nothing a
 * module could read (no rows, no row count) — sent without bound values or query options.
 *
 * Anything else — a read (`count()`, `hasTable`, `select current_schema()`), a write whose row
 * count could be read, a savepoint (a swallowed error), `create table … as select` (it reports a
 * row count), a statement with bindings or `rowMode` — makes the migration run as a module for
 * every tenant, exactly as plain Knex runs it.
 */
import { parseSql, type ParsedStatement } from '../db/parse-sql.ts';
import type { SentStatement } from './sent-statements.ts';

/** Statement kinds (libpg-query node names) whose effect is fixed by their text and whose result is empty. */
const PLAIN_DDL = new Set([
  'CreateStmt',
  'AlterTableStmt',
  'IndexStmt',
  'DropStmt',
  'CommentStmt',
  'RenameStmt',
  'CreateEnumStmt',
  'AlterEnumStmt',
  'CompositeTypeStmt',
  'CreateDomainStmt',
  'AlterDomainStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'CreateTrigStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'ViewStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'RuleStmt',
  'CreateStatsStmt',
  'GrantStmt',
  // A DO block runs server-side: whatever it decides, it decides in the tenant's own schema, and it returns nothing.
  'DoStmt',
]);

/**
 * The SQL to replay for a migration that sent `sent`, or undefined when it must run as a module
 * for every tenant.
 *
 * @example
 *   await replayableSql([{ sql: 'create table "t" ("id" serial primary key)', bindings: [], options: {} }]);
 *   // → ['create table "t" ("id" serial primary key)']
 *   await replayableSql([{ sql: 'select count(*) from "t"', bindings: [], options: {} }]); // → undefined
 */
export async function replayableSql(sent: readonly SentStatement[]): Promise<string[] | undefined> {
  if (sent.some((statement) => statement.bindings.length > 0 || Object.keys(statement.options).length > 0)) return undefined;
  for (const { sql } of sent) {
    if (!(await isPlainDdl(sql))) return undefined;
  }
  return sent.map((statement) => statement.sql);
}

/** Whether `sql` parses as one or more statements, each plain DDL (or `SET LOCAL`). */
async function isPlainDdl(sql: string): Promise<boolean> {
  let statements: ParsedStatement[];
  try {
    statements = await parseSql(sql);
  } catch {
    return false; // the server accepted what this parser does not: never guess
  }
  if (statements.length === 0) return false;
  return statements.every(({ stmt }) => {
    const [kind, node] = Object.entries(stmt ?? {})[0] ?? [];
    if (kind === undefined) return false;
    // `set local lock_timeout = …` ends with the transaction; a plain SET would outlive it.
    if (kind === 'VariableSetStmt') return node?.is_local === true;
    // A DO block that may change the session runs as a module, whose connection is then closed.
    if (kind === 'DoStmt') return doBlockEffect(node as DoNode) === undefined;
    return PLAIN_DDL.has(kind);
  });
}

/**
 * Why statements a migration sent leave something behind in the SESSION — beyond the tenant's
 * transaction — or undefined when they do not: a `SET`/`RESET` without LOCAL, `DISCARD`, `PREPARE`,
 * `LISTEN`, a temporary table, or the migration ending the transaction itself (`COMMIT`,
 * `ROLLBACK`). Plain Knex gives each tenant's run a session of its own; the executor, reusing
 * pooled connections, closes a connection such a migration ran on, so no other tenant inherits it.
 * What the parser cannot read counts as leaving something behind.
 *
 * @example
 *   await sessionChange([{ sql: 'set lock_timeout = 5000', bindings: [], options: {} }]); // → 'a SET without LOCAL'
 */
export async function sessionChange(sent: readonly SentStatement[]): Promise<string | undefined> {
  for (const { sql } of sent) {
    let statements: ParsedStatement[];
    try {
      statements = await parseSql(sql);
    } catch {
      return 'a statement the parser cannot read';
    }
    for (const { stmt } of statements) {
      const [kind, node] = Object.entries(stmt ?? {})[0] ?? [];
      const reason = kind === undefined ? undefined : sessionEffect(kind, node as SessionNode | undefined);
      if (reason) return reason;
    }
  }
  return undefined;
}

type Persistence = { relpersistence?: string };
type DoNode = { args?: { DefElem?: { defname?: string; arg?: { String?: { sval?: string } } } }[] };

/**
 * What in a DO block's body could outlive the transaction in the session. The body is PL/pgSQL
 * text the SQL parser does not open, so it is searched for the words such statements need; a
 * false alarm only costs a reconnect. (Dynamic SQL built from pieces is not seen — nor would it be
 * by any reading of the text.)
 */
const DO_SESSION_EFFECTS: [RegExp, string][] = [
  [/\bset_config\s*\(/i, 'set_config()'],
  [/\b(?:temp|temporary)\b/i, 'a temporary table'],
  [/(?:^|;|\b(?:begin|then|else|loop)\b)\s*(?:set|reset)\s+(?!local\b)/i, 'a SET or RESET without LOCAL'],
  [/\b(?:listen|unlisten|discard|prepare)\b/i, 'LISTEN, DISCARD or PREPARE'],
  [/\bpg_advisory_lock(?:_shared)?\b/i, 'a session advisory lock'],
];

function doBlockEffect(node: DoNode | undefined): string | undefined {
  const body = node?.args?.find((arg) => arg.DefElem?.defname === 'as')?.DefElem?.arg?.String?.sval ?? '';
  const found = DO_SESSION_EFFECTS.find(([pattern]) => pattern.test(body));
  return found ? `a DO block that may change the session (${found[1]})` : undefined;
}
type SessionNode = { is_local?: boolean; kind?: string; relation?: Persistence; view?: Persistence; into?: { rel?: Persistence } };

/** `set_config(…)` called anywhere in a statement (`select set_config('search_path', …, false)`). */
const SET_CONFIG_CALL = '{"FuncCall":{"funcname":[{"String":{"sval":"set_config"}}]';

/** Savepoints (Knex's nested transactions) stay inside the transaction; the rest of TransactionStmt does not. */
const INSIDE_TRANSACTION = new Set(['TRANS_STMT_SAVEPOINT', 'TRANS_STMT_RELEASE', 'TRANS_STMT_ROLLBACK_TO']);

function sessionEffect(kind: string, node: SessionNode | undefined): string | undefined {
  switch (kind) {
    case 'VariableSetStmt':
      return node?.is_local ? undefined : 'a SET or RESET without LOCAL';
    case 'TransactionStmt':
      return INSIDE_TRANSACTION.has(node?.kind ?? '') ? undefined : 'the migration ended or began a transaction itself';
    case 'DiscardStmt':
    case 'PrepareStmt':
    case 'ListenStmt':
    case 'UnlistenStmt':
      return `a ${kind.replace(/Stmt$/, '').toUpperCase()} statement`;
    case 'DoStmt':
      return doBlockEffect(node as DoNode);
    case 'CreateStmt':
      return node?.relation?.relpersistence === 't' ? 'a temporary table' : undefined;
    case 'ViewStmt':
      return node?.view?.relpersistence === 't' ? 'a temporary view' : undefined;
    case 'CreateTableAsStmt':
      return node?.into?.rel?.relpersistence === 't' ? 'a temporary table' : undefined;
    default:
      return JSON.stringify(node ?? {}).includes(SET_CONFIG_CALL) ? 'a set_config() call' : undefined;
  }
}
