/**
 * The lint rules: fleet-unsafe DDL, judged on PostgreSQL's own parse tree (libpg-query) of each
 * statement a migration sends. A rule sees one statement with what the migration did before it:
 * the tables it created (changing those is safe: nobody uses them yet) and whether it set a
 * lock_timeout. "Existing table" below means a table this migration did not create.
 */
import type { Tree } from '../migration/checksums.ts';

/** One parsed statement: `{ <NodeKind>: node }`. */
export type StatementNode = Record<string, Record<string, unknown> | undefined>;

export interface RuleContext {
  tree: Tree;
  /** Whether the migration runs in a transaction (the default) or alone (`transaction: false`). */
  transactional: boolean;
  /** Tables created earlier in the same migration (lower-case names, without schema). */
  createdHere: ReadonlySet<string>;
  /** A `SET lock_timeout` (or set_config('lock_timeout', …)) came earlier in the migration. */
  lockTimeoutSet: boolean;
}

export interface Rule {
  id: string;
  /** Which tree it applies to. */
  trees: readonly Tree[];
  reason: string;
  fix: string;
  /** True when the statement breaks the rule. */
  check(statement: StatementNode, context: RuleContext): boolean;
}

type Node = Record<string, unknown>;

const tableOf = (relation: unknown): string | undefined => ((relation as Node | undefined)?.relname as string | undefined)?.toLowerCase();
const existing = (relation: unknown, context: RuleContext): boolean => {
  const name = tableOf(relation);
  return name !== undefined && !context.createdHere.has(name);
};
const commands = (statement: StatementNode, subtype: string): Node[] =>
  ((statement.AlterTableStmt?.cmds as { AlterTableCmd: Node }[] | undefined) ?? []).map((cmd) => cmd.AlterTableCmd).filter((cmd) => cmd.subtype === subtype);
const alteredExisting = (statement: StatementNode, context: RuleContext): boolean =>
  statement.AlterTableStmt !== undefined && statement.AlterTableStmt.objtype === 'OBJECT_TABLE' && existing(statement.AlterTableStmt.relation, context);
const constraintsOf = (column: Node | undefined): Node[] => ((column?.constraints as { Constraint: Node }[] | undefined) ?? []).map((item) => item.Constraint);
const addedColumns = (statement: StatementNode): Node[] => commands(statement, 'AT_AddColumn').map((cmd) => (cmd.def as { ColumnDef: Node }).ColumnDef);
const typeNames = (column: Node): string[] => (((column.typeName as Node | undefined)?.names as { String: { sval: string } }[] | undefined) ?? []).map((name) => name.String.sval.toLowerCase());

/** Functions whose default forces PostgreSQL to rewrite the table (a non-volatile default does not, since 11). */
const VOLATILE_FUNCTIONS = new Set(['random', 'gen_random_uuid', 'uuid_generate_v1', 'uuid_generate_v1mc', 'uuid_generate_v4', 'clock_timestamp', 'timeofday', 'nextval', 'txid_current']);
const SERIAL_TYPES = new Set(['serial', 'serial4', 'bigserial', 'serial8', 'smallserial', 'serial2']);

function callsVolatile(expression: unknown): boolean {
  if (!expression || typeof expression !== 'object') return false;
  const call = (expression as Node).FuncCall as Node | undefined;
  const name = (call?.funcname as { String: { sval: string } }[] | undefined)?.at(-1)?.String.sval.toLowerCase();
  if (name && VOLATILE_FUNCTIONS.has(name)) return true;
  return Object.values(expression as Node).some((value) => (Array.isArray(value) ? value.some(callsVolatile) : callsVolatile(value)));
}

/** Every RangeVar (a table reference) anywhere in a parse tree. */
function rangeVars(node: unknown, found: Node[] = []): Node[] {
  if (!node || typeof node !== 'object') return found;
  if (Array.isArray(node)) {
    for (const item of node) rangeVars(item, found);
    return found;
  }
  const record = node as Node;
  if (typeof record.relname === 'string' && 'relpersistence' in record) found.push(record);
  for (const value of Object.values(record)) rangeVars(value, found);
  return found;
}

/** Statements that take a lock blocking reads or writes of an existing table until they finish. */
function locksExistingTable(statement: StatementNode, context: RuleContext): boolean {
  if (alteredExisting(statement, context)) return true;
  if (statement.IndexStmt && !statement.IndexStmt.concurrent && existing(statement.IndexStmt.relation, context)) return true;
  if (statement.RenameStmt && existing(statement.RenameStmt.relation, context)) return true;
  return droppedExistingTable(statement, context);
}

function droppedExistingTable(statement: StatementNode, context: RuleContext): boolean {
  const drop = statement.DropStmt;
  if (!drop || drop.removeType !== 'OBJECT_TABLE') return false;
  const names = (drop.objects as { List: { items: { String: { sval: string } }[] } }[]).map((object) => object.List.items.at(-1)!.String.sval.toLowerCase());
  return names.some((name) => !context.createdHere.has(name));
}

export const RULES: readonly Rule[] = [
  {
    id: 'not-null-without-default',
    trees: ['master', 'tenant'],
    reason: 'adding a NOT NULL column without a default to an existing table fails on any row, and breaks inserts of the app version still running',
    fix: 'add the column nullable (or with a default), backfill, then SET NOT NULL in a later release',
    check: (statement, context) =>
      alteredExisting(statement, context) &&
      addedColumns(statement).some((column) => {
        const kinds = constraintsOf(column).map((constraint) => constraint.contype);
        return kinds.includes('CONSTR_NOTNULL') && !kinds.includes('CONSTR_DEFAULT') && !typeNames(column).some((name) => SERIAL_TYPES.has(name));
      }),
  },
  {
    id: 'volatile-default',
    trees: ['master', 'tenant'],
    reason: 'a volatile default (random(), gen_random_uuid(), clock_timestamp(), a serial) makes PostgreSQL rewrite the whole table under an exclusive lock',
    fix: 'add the column without a default, set the default for new rows, backfill existing rows in batches',
    check: (statement, context) =>
      alteredExisting(statement, context) &&
      addedColumns(statement).some(
        (column) => typeNames(column).some((name) => SERIAL_TYPES.has(name)) || constraintsOf(column).some((constraint) => constraint.contype === 'CONSTR_DEFAULT' && callsVolatile(constraint.raw_expr)),
      ),
  },
  {
    id: 'column-type-change',
    trees: ['master', 'tenant'],
    reason: "changing a column's type rewrites the table under an exclusive lock (most changes) and breaks the app version still running",
    fix: 'add a new column of the new type, write both, backfill, switch reads, drop the old column in a later release',
    check: (statement, context) => alteredExisting(statement, context) && commands(statement, 'AT_AlterColumnType').length > 0,
  },
  {
    id: 'rename-or-drop',
    trees: ['master', 'tenant'],
    reason: 'renaming or dropping a column or table breaks the app version still running during a staged rollout',
    fix: 'stop using it in the app first; drop it in a later release (rename: add the new one, copy, switch, drop the old)',
    check: (statement, context) =>
      (alteredExisting(statement, context) && commands(statement, 'AT_DropColumn').length > 0) ||
      (statement.RenameStmt !== undefined && ['OBJECT_COLUMN', 'OBJECT_TABLE'].includes(statement.RenameStmt.renameType as string) && existing(statement.RenameStmt.relation, context)) ||
      droppedExistingTable(statement, context),
  },
  {
    id: 'index-not-concurrent',
    trees: ['master'],
    reason: 'CREATE INDEX without CONCURRENTLY blocks every write to the shared table while it builds',
    fix: 'CREATE INDEX CONCURRENTLY, in a migration of its own with config.transaction = false',
    check: (statement, context) => statement.IndexStmt !== undefined && !statement.IndexStmt.concurrent && existing(statement.IndexStmt.relation, context),
  },
  {
    id: 'concurrently-in-transaction',
    trees: ['master', 'tenant'],
    reason: 'CONCURRENTLY cannot run inside a transaction block: the migration fails',
    fix: 'move it to a migration of its own with export const config = { transaction: false }',
    check: (statement, context) => context.transactional && (statement.IndexStmt?.concurrent === true || statement.DropStmt?.concurrent === true),
  },
  {
    id: 'constraint-not-valid',
    trees: ['master', 'tenant'],
    reason: 'adding a foreign key or check constraint validates every row while holding a lock that blocks writes',
    fix: 'add it NOT VALID, then VALIDATE CONSTRAINT in a later migration (that takes a weaker lock)',
    check: (statement, context) =>
      alteredExisting(statement, context) &&
      commands(statement, 'AT_AddConstraint').some((cmd) => {
        const constraint = (cmd.def as { Constraint: Node }).Constraint;
        return ['CONSTR_FOREIGN', 'CONSTR_CHECK'].includes(constraint.contype as string) && constraint.skip_validation !== true;
      }),
  },
  {
    id: 'missing-lock-timeout',
    trees: ['master'],
    reason: 'a lock-taking statement on a shared table without lock_timeout queues behind long queries, and every query of every tenant queues behind it',
    fix: "SET LOCAL lock_timeout = '5s' first (knex.raw), and retry the deploy if it times out",
    check: (statement, context) => !context.lockTimeoutSet && locksExistingTable(statement, context),
  },
  {
    id: 'tenant-schema-qualified',
    trees: ['tenant'],
    reason: 'a name qualified with a schema other than public escapes the tenant: every tenant would change the same object',
    fix: "leave tenant tables unqualified (the search_path is the tenant's schema, then public)",
    check: (statement) => rangeVars(statement).some((relation) => typeof relation.schemaname === 'string' && relation.schemaname !== 'public'),
  },
  {
    id: 'tenant-create-extension',
    trees: ['tenant'],
    reason: 'an extension is database-wide: creating it from the tenant tree races between tenants and lands in the first tenant schema',
    fix: 'create it once in the master tree (CREATE EXTENSION IF NOT EXISTS … in public)',
    check: (statement) => statement.CreateExtensionStmt !== undefined,
  },
];

/** Updates what the rules know of the migration after a statement. */
export function afterStatement(statement: StatementNode, context: { createdHere: Set<string>; lockTimeoutSet: boolean }): void {
  const created = tableOf(statement.CreateStmt?.relation) ?? tableOf((statement.CreateTableAsStmt?.into as Node | undefined)?.rel);
  if (created) context.createdHere.add(created);
  if (statement.VariableSetStmt?.name === 'lock_timeout') context.lockTimeoutSet = true;
  if (JSON.stringify(statement).includes('"set_config"') && JSON.stringify(statement).includes('"lock_timeout"')) context.lockTimeoutSet = true;
}
