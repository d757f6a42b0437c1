/**
 * The corpus of the differential suite: one fixture folder per case under
 * test/fixtures/differential/<name>/, each applied on top of the shared base tree
 * (test/fixtures/differential/base: `items` and `owners`). Each case is a shape that statement
 * batching or the replay of learned DDL could get wrong.
 *
 * `replayable`: the case's migrations send nothing but plain DDL (no reads, no writes, no bound
 * values, no savepoints, no `create table … as select`), so with the fast path on, a tenant after
 * the first must not run the modules again — the suite checks that, so it cannot pass by never
 * taking the fast path.
 */
export interface DifferentialCase {
  name: string;
  /** What could go wrong, in a line. */
  risk: string;
  replayable?: boolean;
}

export const BASE_TREE = 'differential/base';

export const CASES: readonly DifferentialCase[] = [
  { name: 'savepoint-swallowed-unique-index', risk: 'a nested transaction fails on one tenant\'s duplicates and the error is caught: the rest must commit' },
  { name: 'savepoint-swallowed-insert', risk: 'a savepoint insert fails on every tenant and is caught (provisioning too)' },
  { name: 'savepoint-optional-extension', risk: 'a caught CREATE EXTENSION failure in a savepoint, then DDL that depends on it' },
  { name: 'savepoint-nested-success', risk: 'DDL and an insert inside a savepoint that succeeds' },
  { name: 'count-then-seed', risk: 'count() without bindings right after DDL decides whether to seed' },
  { name: 'pluck-after-ddl', risk: 'pluck() without bindings right after DDL' },
  { name: 'raw-select-after-ddl', risk: "knex.raw('select …') without bindings right after DDL, result inserted" },
  { name: 'read-with-bindings-after-ddl', risk: 'a bound select after DDL decides an update' },
  { name: 'multi-statement-raw', risk: 'several statements (DDL and an insert) in one knex.raw' },
  { name: 'multi-statement-raw-then-read', risk: 'a multi-statement raw followed by a binding-less read: whose result does the read get?' },
  { name: 'dollar-quoted-functions', risk: '$$ / $body$ function bodies and a comment full of semicolons' },
  { name: 'trigger-fires-later-insert', risk: 'function + trigger, and an insert in the same migration that fires it' },
  { name: 'trigger-builder-and-update', risk: 'a BEFORE UPDATE trigger with a -- comment in its body, fired by a data fix' },
  { name: 'native-enum-builder', risk: "table.enu(…, { useNative: true, enumName }) and an insert using its default", },
  { name: 'enum-create-and-add-value', risk: 'create type … as enum, alter type … add value (before, if not exists) over two migrations', replayable: true },
  { name: 'sql-comments', risk: '-- and /* */ comments in raw SQL, one leading a statement' },
  { name: 'trailing-line-comment', risk: 'a raw statement ending in "-- note" with no newline, DDL after it', replayable: true },
  { name: 'trailing-line-comment-last', risk: 'the migration\'s last statement ends in "-- note": bookkeeping and COMMIT follow it', replayable: true },
  { name: 'query-options', risk: ".options({ rowMode: 'array' }) and custom type parsers after DDL; the migration throws on a wrong shape" },
  // Not replayable: `create table … as select` reports a row count the module could read.
  { name: 'create-table-as-select', risk: 'create table … as select over tenant data, then a key and an index' },
  { name: 'do-block', risk: 'a DO block that adds a column conditionally and updates rows' },
  { name: 'do-block-session-setting', risk: 'a DO block that sets a session setting and a temporary table: the next tenant on that connection must not inherit them' },
  { name: 'sequences', risk: 'create sequence, setval from data, nextval default, owned by' },
  { name: 'fails-for-one-tenant-data', risk: 'a check constraint that one tenant\'s data violates: that tenant failed and untouched, the others migrated' },
  { name: 'fails-for-one-schema-do-block', risk: 'a DO block that raises for one schema (current_schema()), DDL before and after it' },
  { name: 'transaction-false', risk: 'export const config = { transaction: false } (create index concurrently) between two transactional migrations' },
  { name: 'reads-current-schema', risk: 'select current_schema() and DDL/data built from it: must never be another tenant\'s' },
  { name: 'check-and-foreign-key', risk: 'foreign keys (on delete), check constraints by builder and raw, a composite primary key', replayable: true },
  { name: 'column-default-and-comment', risk: 'column defaults and comments on columns and tables (quotes inside)', replayable: true },
  { name: 'index-variants', risk: 'named, expression, partial and multi-column indexes', replayable: true },
  { name: 'alter-column-type', risk: 'alter column type (Knex emits several statements per column)', replayable: true },
  { name: 'rename-column', risk: 'rename columns on two tables', replayable: true },
  { name: 'backfill-insert-select', risk: 'insert … select from a builder and a bound update after DDL' },
  { name: 'plain-ddl-two-migrations', risk: 'two plain-DDL migrations with foreign keys between them: the replay path', replayable: true },
  { name: 'view-over-items', risk: "a view whose text holds a semicolon in a literal, and comment on view", replayable: true },
];
