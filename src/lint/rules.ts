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
  /**
   * A `SET lock_timeout` (or set_config('lock_timeout', …)) to a non-zero value came earlier in the
   * migration, and nothing set it back to 0 or its default since.
   */
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

/**
 * A serial or identity column: added to an existing table, PostgreSQL draws a number for every
 * existing row — a rewrite, like a volatile default — and no row is left NULL.
 */
const numbersEveryRow = (column: Node): boolean =>
  typeNames(column).some((name) => SERIAL_TYPES.has(name)) || constraintsOf(column).some((constraint) => constraint.contype === 'CONSTR_IDENTITY');

/** Schemas of the system catalogs: reading them (Knex's hasTable, hasColumn) touches no tenant's data. */
const CATALOG_SCHEMAS = new Set(['information_schema', 'pg_catalog']);

/** LOCK TABLE modes from SHARE up conflict with the ROW EXCLUSIVE lock every write takes (lockdefs.h: SHARE = 5). */
const SHARE_LOCK = 5;

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

const relationsOf = (node: Node | undefined): Node[] => ((node?.relations as { RangeVar: Node }[] | undefined) ?? []).map((item) => item.RangeVar);

/** Statements that take a lock blocking reads or writes of an existing table until they finish. */
function locksExistingTable(statement: StatementNode, context: RuleContext): boolean {
  if (alteredExisting(statement, context)) return true;
  if (statement.IndexStmt && !statement.IndexStmt.concurrent && existing(statement.IndexStmt.relation, context)) return true;
  if (statement.RenameStmt && existing(statement.RenameStmt.relation, context)) return true;
  // TRUNCATE takes ACCESS EXCLUSIVE; an explicit LOCK from SHARE up blocks every write.
  if (relationsOf(statement.TruncateStmt).some((relation) => existing(relation, context))) return true;
  if (statement.LockStmt && (statement.LockStmt.mode as number) >= SHARE_LOCK && relationsOf(statement.LockStmt).some((relation) => existing(relation, context))) return true;
  return droppedExistingTable(statement, context);
}

/**
 * Whether a statement builds an index on an existing table without CONCURRENTLY: CREATE INDEX, and
 * ALTER TABLE … ADD UNIQUE / PRIMARY KEY (as a table constraint or on a new column), which build
 * theirs under the ALTER's exclusive lock — unless `USING INDEX` adopts one built beforehand.
 */
function buildsIndexOnExisting(statement: StatementNode, context: RuleContext): boolean {
  if (statement.IndexStmt) return !statement.IndexStmt.concurrent && existing(statement.IndexStmt.relation, context);
  if (!alteredExisting(statement, context)) return false;
  const buildsIndex = (constraint: Node) => ['CONSTR_UNIQUE', 'CONSTR_PRIMARY'].includes(constraint.contype as string) && constraint.indexname === undefined;
  return (
    commands(statement, 'AT_AddConstraint').some((cmd) => buildsIndex((cmd.def as { Constraint: Node }).Constraint)) ||
    addedColumns(statement).some((column) => constraintsOf(column).some(buildsIndex))
  );
}

function droppedExistingTable(statement: StatementNode, context: RuleContext): boolean {
  const drop = statement.DropStmt;
  if (!drop || drop.removeType !== 'OBJECT_TABLE') return false;
  const names = (drop.objects as { List: { items: { String: { sval: string } }[] } }[]).map((object) => object.List.items.at(-1)!.String.sval.toLowerCase());
  return names.some((name) => !context.createdHere.has(name));
}

/** Options of a statement (`WITH (…)` of a view, the clauses of a function) by name → the DefElem. */
const optionsOf = (node: Node | undefined): Map<string, Node> =>
  new Map(((node?.options as { DefElem: Node }[] | undefined) ?? []).map((option) => [String(option.DefElem.defname).toLowerCase(), option.DefElem]));

/** `security_invoker` given with no value, or a true one (`true`, `on`, `1`, `yes`). */
const invokerRights = (view: Node | undefined): boolean => {
  const option = optionsOf(view).get('security_invoker');
  if (!option) return false;
  const arg = option.arg as { String?: { sval: string }; Integer?: { ival?: number }; Boolean?: { boolval?: boolean } } | undefined;
  if (!arg) return true;
  if (arg.String) return ['true', 'on', 'yes', '1'].includes(arg.String.sval.toLowerCase());
  return Boolean(arg.Integer?.ival ?? arg.Boolean?.boolval);
};

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
        return kinds.includes('CONSTR_NOTNULL') && !kinds.includes('CONSTR_DEFAULT') && !numbersEveryRow(column);
      }),
  },
  {
    id: 'volatile-default',
    trees: ['master', 'tenant'],
    reason: 'a volatile default (random(), gen_random_uuid(), clock_timestamp(), a serial or identity column) makes PostgreSQL rewrite the whole table under an exclusive lock',
    fix: 'add the column without a default, set the default for new rows, backfill existing rows in batches',
    check: (statement, context) =>
      alteredExisting(statement, context) &&
      addedColumns(statement).some((column) => numbersEveryRow(column) || constraintsOf(column).some((constraint) => constraint.contype === 'CONSTR_DEFAULT' && callsVolatile(constraint.raw_expr))),
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
    reason: 'CREATE INDEX without CONCURRENTLY, or ADD UNIQUE / PRIMARY KEY (which builds one), blocks every write to the shared table while it builds',
    fix: 'CREATE INDEX CONCURRENTLY, in a migration of its own with config.transaction = false; for a constraint, CREATE UNIQUE INDEX CONCURRENTLY there, then ADD CONSTRAINT … UNIQUE (or PRIMARY KEY) USING INDEX',
    check: buildsIndexOnExisting,
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
    fix: "keep the tool's lock timeout on (TENANT_LOCK_TIMEOUT / --lock-timeout, default 1s: it re-queues what times out), or SET LOCAL lock_timeout = '5s' first (knex.raw)",
    check: (statement, context) => !context.lockTimeoutSet && locksExistingTable(statement, context),
  },
  {
    id: 'tenant-schema-qualified',
    trees: ['tenant'],
    reason: 'a name qualified with a schema other than public escapes the tenant: every tenant would change the same object',
    fix: "leave tenant tables unqualified (the search_path is the tenant's schema, then public)",
    check: (statement) =>
      rangeVars(statement).some((relation) => typeof relation.schemaname === 'string' && relation.schemaname !== 'public' && !CATALOG_SCHEMAS.has(relation.schemaname)),
  },
  {
    id: 'tenant-create-extension',
    trees: ['tenant'],
    reason: 'an extension is database-wide: creating it from the tenant tree races between tenants and lands in the first tenant schema',
    fix: 'create it once in the master tree (CREATE EXTENSION IF NOT EXISTS … in public)',
    check: (statement) => statement.CreateExtensionStmt !== undefined,
  },
  {
    id: 'view-with-owner-rights',
    trees: ['master', 'tenant'],
    reason: "a view reads its tables with its owner's privileges (tenant-migrate's role owns them all): through it a tenant role reaches what it could not read itself — another tenant's rows, the registry (TENANT_ROLES=on, docs/isolation.md)",
    fix: 'CREATE VIEW … WITH (security_invoker = true) (PostgreSQL 15+), so the view reads with the privileges of whoever queries it',
    check: (statement) => statement.ViewStmt !== undefined && !invokerRights(statement.ViewStmt),
  },
  {
    id: 'security-definer-function',
    trees: ['master', 'tenant'],
    reason: "a SECURITY DEFINER function runs with its owner's privileges (tenant-migrate's role owns every tenant schema): any tenant role that may call it reaches what its owner can (TENANT_ROLES=on, docs/isolation.md)",
    fix: 'leave it SECURITY INVOKER (the default); if it must be DEFINER, pin its search_path (SET search_path = …) and REVOKE EXECUTE … FROM PUBLIC, granting it only to the roles that need it',
    check: (statement) => {
      const security = optionsOf(statement.CreateFunctionStmt ?? (statement.AlterFunctionStmt as Node | undefined) ?? undefined).get('security');
      return (security?.arg as { Boolean?: { boolval?: boolean } } | undefined)?.Boolean?.boolval === true;
    },
  },
];

/** Updates what the rules know of the migration after a statement. */
export function afterStatement(statement: StatementNode, context: { createdHere: Set<string>; lockTimeoutSet: boolean }): void {
  const created = tableOf(statement.CreateStmt?.relation) ?? tableOf((statement.CreateTableAsStmt?.into as Node | undefined)?.rel);
  if (created) context.createdHere.add(created);
  context.lockTimeoutSet = lockTimeoutAfter(statement, context.lockTimeoutSet);
}

/**
 * Whether a lock_timeout is in force after a statement. 0 disables the timeout, and DEFAULT / RESET
 * return to the server's (0 unless configured, which lint cannot see): neither counts. A value lint
 * cannot read (an expression, a bound parameter) still counts: lint does not guess a finding.
 */
function lockTimeoutAfter(statement: StatementNode, before: boolean): boolean {
  const set = statement.VariableSetStmt;
  if (set?.kind === 'VAR_RESET_ALL') return false;
  if (set?.name === 'lock_timeout') {
    if (set.kind === 'VAR_SET_VALUE') return enables((set.args as Node[] | undefined)?.[0]);
    return set.kind === 'VAR_SET_CURRENT' ? before : false;
  }
  // set_config('lock_timeout', value, is_local), anywhere in the statement; the last one wins.
  let now = before;
  for (const call of nodesOfKind(statement, 'FuncCall')) {
    const [name, value] = (call.args as Node[] | undefined) ?? [];
    if ((call.funcname as { String: { sval: string } }[] | undefined)?.at(-1)?.String.sval.toLowerCase() === 'set_config' && constantText(name)?.toLowerCase() === 'lock_timeout') now = enables(value);
  }
  return now;
}

/** Whether setting lock_timeout to this value leaves a timeout in force (anything but 0). */
const enables = (value: Node | undefined): boolean => milliseconds(constantText(value)) !== 0;

/** The text of a constant (`0`, `'5s'`, `'0'::text`); undefined for anything else. */
function constantText(node: Node | undefined): string | undefined {
  if (node?.TypeCast) return constantText((node.TypeCast as Node).arg as Node | undefined);
  const constant = node?.A_Const as Record<string, Record<string, unknown> | undefined> | undefined;
  if (!constant) return undefined;
  // libpg-query leaves out zero values: `0` parses as `{ ival: {} }`.
  if (constant.ival) return String(constant.ival.ival ?? 0);
  const text = constant.fval?.fval ?? constant.sval?.sval;
  return typeof text === 'string' ? text : undefined;
}

/** Milliseconds per unit of a time setting (PostgreSQL's units, case-sensitive; none means milliseconds). */
const TIME_UNITS = new Map([['', 1], ['us', 0.001], ['ms', 1], ['s', 1000], ['min', 60_000], ['h', 3_600_000], ['d', 86_400_000]]);

/** A lock_timeout value in whole milliseconds, rounded as PostgreSQL does ('0.4ms' is 0); undefined if unreadable. */
function milliseconds(text: string | undefined): number | undefined {
  const match = text === undefined ? null : /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z]*)\s*$/.exec(text);
  const unit = match ? TIME_UNITS.get(match[2]!) : undefined;
  return match && unit !== undefined ? Math.round(Number(match[1]) * unit) : undefined;
}

/** Every node of one kind (`FuncCall`, …) anywhere in a parse tree. */
function nodesOfKind(node: unknown, kind: string, found: Node[] = []): Node[] {
  if (!node || typeof node !== 'object') return found;
  for (const [key, value] of Object.entries(node as Node)) {
    if (key === kind && value && typeof value === 'object' && !Array.isArray(value)) found.push(value as Node);
    nodesOfKind(value, kind, found);
  }
  return found;
}
