/**
 * Statements a migration sends that would end the transaction it runs in, refused before they are
 * sent. Knex emits `query` synchronously before it hands a statement to the driver, so a listener
 * that throws rejects that query and nothing reaches the server. Savepoints pass (Knex's nested
 * transactions use them); SQL the parser rejects passes too (the server rejects it as well).
 */
import type { Knex } from 'knex';
import { loadSyncParser, type ParsedStatement } from '../db/parse-sql.ts';

/** Every statement after which the transaction's work would be kept (or lost) for good. */
export const ENDS_TRANSACTION: ReadonlySet<string> = new Set([
  'TRANS_STMT_COMMIT',
  'TRANS_STMT_ROLLBACK',
  'TRANS_STMT_PREPARE',
  'TRANS_STMT_COMMIT_PREPARED',
  'TRANS_STMT_ROLLBACK_PREPARED',
]);

/**
 * What a real run refuses: `ROLLBACK`/`ABORT` would undo the tenant's work and leave the rest of
 * the migration and its bookkeeping to commit on their own (the tenant recorded as migrated with
 * nothing of it applied), and `PREPARE TRANSACTION` would leave a prepared transaction holding the
 * tenant's locks. (`COMMIT` is the "create index concurrently" pattern: it commits in two parts, as
 * with plain Knex.)
 */
export const UNDOES_TRANSACTION: ReadonlySet<string> = new Set(['TRANS_STMT_ROLLBACK', 'TRANS_STMT_PREPARE']);

/** A COMMIT (or END) a migration sends itself: the "create index concurrently" pattern. */
export const COMMITS_TRANSACTION: ReadonlySet<string> = new Set(['TRANS_STMT_COMMIT']);

/** Only these words can start such a statement: anything else is not parsed at all. */
const MAY_END = /\b(?:commit|end|rollback|abort|prepare)\b/i;

export interface HeldBack {
  /** The first statement refused, as the migration sent it. */
  heldBack: string | undefined;
  stop(): void;
}

/** Refuses, for as long as it is not stopped, every statement of `trx` of one of `kinds`. */
export async function holdBackTransactionEnd(trx: Knex, kinds: ReadonlySet<string>, refusal: (sql: string) => string): Promise<HeldBack> {
  const parse = await loadSyncParser();
  const listener = (event: { sql?: unknown }) => {
    if (typeof event.sql !== 'string' || !MAY_END.test(event.sql) || !endsTransaction(event.sql, parse, kinds)) return;
    guard.heldBack ??= event.sql;
    throw new Error(refusal(event.sql.trim()));
  };
  const guard: HeldBack = { heldBack: undefined, stop: () => void trx.off('query', listener) };
  trx.on('query', listener);
  return guard;
}

function endsTransaction(sql: string, parse: (sql: string) => ParsedStatement[], kinds: ReadonlySet<string>): boolean {
  let statements: ParsedStatement[];
  try {
    statements = parse(sql);
  } catch {
    return false;
  }
  return statements.some((statement) => kinds.has(String(statement.stmt?.TransactionStmt?.kind)));
}

/** The first statement of `sent` of one of `kinds` (e.g. a COMMIT a migration sent itself), if any. */
export async function firstTransactionEnd(sent: readonly { sql: string }[], kinds: ReadonlySet<string>): Promise<string | undefined> {
  const candidates = sent.filter(({ sql }) => MAY_END.test(sql));
  if (candidates.length === 0) return undefined;
  const parse = await loadSyncParser();
  return candidates.find(({ sql }) => endsTransaction(sql, parse, kinds))?.sql.trim();
}
