/**
 * The bench's fixture tenant tree (bench/fixture-tree/, four Knex-format TypeScript migrations) and
 * its hand-written plain-SQL equivalent — the "floor": the same DDL, bookkeeping and registry
 * writes, sent as ONE simple-protocol query string (one round trip, one transaction) per tenant.
 *
 * The SQL below is what Knex 3 generates for the four files (checked at run time: after the first
 * rep every contender's tenant schema must have the same catalog fingerprint, see fleet.ts).
 */
import { fileURLToPath } from 'node:url';
import { listMigrationNames } from '../src/migration/source.ts';

export const FIXTURE_DIR = fileURLToPath(new URL('./fixture-tree/', import.meta.url));

/** The migrations the SQL below was written for, in order. */
export const FIXTURE_NAMES = [
  '20240101000000_projects.ts',
  '20240101000001_tasks.ts',
  '20240101000002_comments.ts',
  '20240101000003_tasks_priority.ts',
] as const;

export const FIXTURE_VERSION = FIXTURE_NAMES.at(-1)!;

/** Refuses to run when the directory and the hand-written SQL have drifted apart. */
export function checkFixtureTree(): void {
  const found = listMigrationNames(FIXTURE_DIR);
  if (found.join() !== FIXTURE_NAMES.join()) {
    throw new Error(
      `bench/fixture-tree holds ${found.join(', ') || 'nothing'}, but bench/fixture.ts has SQL for ${FIXTURE_NAMES.join(', ')}: update both together.`,
    );
  }
}

/** The four migrations' DDL, unqualified (runs with search_path = tenant schema, public). */
const MIGRATIONS_DDL = `
create table "projects" ("id" bigserial primary key, "name" varchar(200) not null, "slug" varchar(100) not null, "settings" jsonb not null default '{}'::jsonb, "archived_at" timestamptz, "created_at" timestamptz not null default CURRENT_TIMESTAMP, "updated_at" timestamptz not null default CURRENT_TIMESTAMP);
alter table "projects" add constraint "projects_slug_unique" unique ("slug");
create index "projects_created_at_index" on "projects" ("created_at");
create table "tasks" ("id" bigserial primary key, "project_id" bigint not null, "title" varchar(300) not null, "status" varchar(20) not null default 'open', "payload" jsonb not null default '{}'::jsonb, "due_at" timestamptz, "created_at" timestamptz not null default CURRENT_TIMESTAMP, "updated_at" timestamptz not null default CURRENT_TIMESTAMP);
alter table "tasks" add constraint "tasks_project_id_foreign" foreign key ("project_id") references "projects" ("id") on delete CASCADE;
create index "tasks_project_id_status_index" on "tasks" ("project_id", "status");
create index "tasks_due_at_index" on "tasks" ("due_at");
create table "comments" ("id" bigserial primary key, "task_id" bigint not null, "reply_to" bigint, "author_id" varchar(64) not null, "body" text not null, "metadata" jsonb not null default '{}'::jsonb, "created_at" timestamptz not null default CURRENT_TIMESTAMP);
alter table "comments" add constraint "comments_task_id_foreign" foreign key ("task_id") references "tasks" ("id") on delete CASCADE;
alter table "comments" add constraint "comments_reply_to_foreign" foreign key ("reply_to") references "comments" ("id") on delete SET NULL;
create index "comments_task_id_created_at_index" on "comments" ("task_id", "created_at");
alter table "tasks" add column "priority" integer not null default '0';
create index "tasks_project_id_priority_index" on "tasks" ("project_id", "priority");
`;

/** Knex's bookkeeping tables, as src/migration/bookkeeping.ts creates them (unqualified). */
const BOOKKEEPING_DDL = `
create table "knex_migrations" (id serial primary key, name varchar(255), batch integer, migration_time timestamptz);
create table "knex_migrations_lock" ("index" serial primary key, is_locked integer);
insert into "knex_migrations_lock" (is_locked) values (0);
`;

const RECORD_APPLIED = `insert into "knex_migrations" (name, batch, migration_time) values ${FIXTURE_NAMES.map((name) => `('${name}', 1, now())`).join(', ')};`;

/** Schema names are tenant-migrate's own (`tid_` + 10 hex); checked anyway before they reach SQL. */
export function ident(schema: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`unexpected schema name ${JSON.stringify(schema)}`);
  return `"${schema}"`;
}

/** Org ids of the bench are generated (`org_bench_…`), but quote them properly anyway. */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Floor, migrate: a registered tenant with empty bookkeeping → at the newest migration. */
export function floorMigrateSql(schema: string): string {
  return `begin;
set local search_path to ${ident(schema)}, public;
${MIGRATIONS_DDL}
${RECORD_APPLIED}
update public.tenants set migration_version = ${literal(FIXTURE_VERSION)}, migration_count = ${FIXTURE_NAMES.length}, migrated_at = now() where schema_name = ${literal(schema)};
commit;`;
}

/** Floor, provision: nothing → schema, tables, bookkeeping and registry row, in one transaction. */
export function floorProvisionSql(orgId: string, schema: string): string {
  return `begin;
create schema ${ident(schema)};
set local search_path to ${ident(schema)}, public;
${BOOKKEEPING_DDL}
${MIGRATIONS_DDL}
${RECORD_APPLIED}
insert into public.tenants (org_id, schema_name, migration_version, migration_count, migrated_at) values (${literal(orgId)}, ${literal(schema)}, ${literal(FIXTURE_VERSION)}, ${FIXTURE_NAMES.length}, now());
commit;`;
}

/**
 * The DDL of the four migrations with `tasks.priority` declared in `create table "tasks"` instead
 * of added by `alter table … add column … default` (same column, same attnum, same default; only
 * pg_attribute's fast-default `attmissingval` differs). For the untimed lay-down of big fleets:
 * on PostgreSQL 15 `ADD COLUMN … DEFAULT` reads pg_index, pg_partitioned_table and
 * pg_statistic_ext in full (their seq_scan counters rise by one each), so every tenant provisioned
 * costs a scan of every index of every tenant before it: 1.9 s for pg_index's 526,000 rows at
 * 37,000 tenants on the loaded bench machine. The timed rows (the floor, `migrate:tenants`) keep
 * the real DDL and pay it: that is what a fleet pays.
 */
const LAY_DOWN_DDL = (() => {
  const addColumn = `alter table "tasks" add column "priority" integer not null default '0';\n`;
  const tasksEnd = `"updated_at" timestamptz not null default CURRENT_TIMESTAMP);\nalter table "tasks" add constraint "tasks_project_id_foreign"`;
  if (!MIGRATIONS_DDL.includes(addColumn) || !MIGRATIONS_DDL.includes(tasksEnd)) throw new Error('bench/fixture.ts: the lay-down DDL no longer matches MIGRATIONS_DDL');
  return MIGRATIONS_DDL.replace(addColumn, '').replace(tasksEnd, tasksEnd.replace(');', `, "priority" integer not null default '0');`));
})();

/** Untimed set-up of a big fleet: floorProvisionSql without `ADD COLUMN … DEFAULT` (see LAY_DOWN_DDL). */
export function layDownProvisionSql(orgId: string, schema: string): string {
  return floorProvisionSql(orgId, schema).replace(MIGRATIONS_DDL, LAY_DOWN_DDL);
}

/**
 * Set-up (not timed): registered tenants with empty schemas and empty bookkeeping, many per
 * statement. One implicit transaction per batch.
 */
export function registerEmptySql(tenants: readonly { orgId: string; schema: string }[]): string {
  const schemas = tenants
    .map(({ schema }) => {
      const s = ident(schema);
      return `create schema ${s};
create table ${s}."knex_migrations" (id serial primary key, name varchar(255), batch integer, migration_time timestamptz);
create table ${s}."knex_migrations_lock" ("index" serial primary key, is_locked integer);
insert into ${s}."knex_migrations_lock" (is_locked) values (0);`;
    })
    .join('\n');
  const rows = tenants.map(({ orgId, schema }) => `(${literal(orgId)}, ${literal(schema)})`).join(', ');
  return `${schemas}\ninsert into public.tenants (org_id, schema_name) values ${rows};`;
}
