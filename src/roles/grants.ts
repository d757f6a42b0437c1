/**
 * What a tenant's role may do in its schema, granted explicitly after every change to the schema:
 * in the tenant's transaction, after the DDL and before the bookkeeping, on both routes of the
 * executor (run-schema.ts sends them with the modules, replay-script.ts inlines them in the script).
 * They are never learned or replayed as a migration's SQL: they are built here, per tenant.
 *
 * Default privileges (ALTER DEFAULT PRIVILEGES) cover only objects the named role creates later, so
 * a table created by a migration run as another role, or one that existed before roles were on,
 * would be missed: the grants below cover every object that exists when the transaction commits.
 *
 * Tables and sequences are named, not `GRANT … ON ALL TABLES IN SCHEMA`: PostgreSQL finds "all
 * tables in a schema" by reading the whole of pg_class (it has no index by schema), about 200 ms a
 * statement at 10,000 tenants and ten times that at 100,000, in every tenant's transaction. A
 * schema's relations are found instead through pg_depend's index on the referenced object (every
 * relation records a dependency on its schema, moved with it by ALTER … SET SCHEMA), in a DO block
 * that sends one GRANT per kind: the same privileges on the same objects, in time that does not
 * grow with the fleet. Where the tool may not use plpgsql (a DBA revoked it from PUBLIC), the ON ALL
 * statements are sent instead: slower, never wrong.
 *
 * Routines keep `ON ALL ROUTINES IN SCHEMA` (pg_proc is a few thousand rows plus the fleet's own
 * functions): naming a routine means naming its argument types, which fails where GRANT cannot
 * parse them (an ordered-set aggregate's ORDER BY) or may not look them up (a type in a schema the
 * tool has no USAGE on), cases ON ALL handles (test/integration/adversarial-grants.test.ts).
 *
 * Granted to the tenant role:
 * - USAGE on the schema (never CREATE: DDL is the tool's, through migrations);
 * - SELECT, INSERT, UPDATE, DELETE on every table, view and materialized view — not TRUNCATE (it
 *   takes an ACCESS EXCLUSIVE lock that would queue the tool's own migrations and the app's traffic,
 *   and skips ON DELETE triggers; DELETE does the same work), nor REFERENCES or TRIGGER (DDL);
 * - USAGE, SELECT on every sequence (serial and identity columns call nextval());
 * - EXECUTE on every function and procedure (PUBLIC has it by default; this matters where a
 *   migration revoked it from PUBLIC).
 * Revoked again: everything on the bookkeeping tables and their sequences — the application never
 * reads or writes what tenant-migrate records.
 */
import type { Knex } from 'knex';
import { quoteIdentifier, quoteLiteral } from '../db/quote.ts';
import { MIGRATIONS_LOCK_TABLE, MIGRATIONS_TABLE } from '../migration/bookkeeping.ts';

/** The privileges a tenant role gets on every table of its schema (see the module comment). */
export const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;

/** The tool's own tables (and their sequences) in a tenant schema: the tenant role gets nothing on them. */
export const BOOKKEEPING_TABLES = [MIGRATIONS_TABLE, MIGRATIONS_LOCK_TABLE] as const;
export const BOOKKEEPING_SEQUENCES = [`${MIGRATIONS_TABLE}_id_seq`, `${MIGRATIONS_LOCK_TABLE}_index_seq`] as const;

/** A schema's grants as SQL text (identifiers quoted; nothing bound), ready for a transaction or a script. */
export interface TenantGrants {
  schema: string;
  role: string;
  /** The prefix every tenant role of the database shares (naming.ts). */
  prefix: string;
  statements: readonly string[];
}

/**
 * The grant statements of one tenant.
 *
 * @example tenantGrants('tid_cf4116b064', 'tm_1a2b3c4d5e_tid_cf4116b064').statements[0]
 *   // 'grant usage on schema "tid_cf4116b064" to "tm_1a2b3c4d5e_tid_cf4116b064"'
 */
export function tenantGrants(schema: string, role: string, { named = true }: { named?: boolean } = {}): TenantGrants {
  const s = quoteIdentifier(schema);
  const r = quoteIdentifier(role);
  const bookkeeping = BOOKKEEPING_TABLES.map((table) => `${s}.${quoteIdentifier(table)}`).join(', ');
  const sequences = BOOKKEEPING_SEQUENCES.map((sequence) => `${s}.${quoteIdentifier(sequence)}`).join(', ');
  const relations = named
    ? [grantOnEveryRelationSql(schema, role)]
    : [`grant ${TABLE_PRIVILEGES_SQL} on all tables in schema ${s} to ${r}`, `grant ${SEQUENCE_PRIVILEGES_SQL} on all sequences in schema ${s} to ${r}`];
  return {
    schema,
    role,
    prefix: role.slice(0, role.length - schema.length),
    statements: [
      `grant usage on schema ${s} to ${r}`,
      ...relations,
      `grant execute on all routines in schema ${s} to ${r}`,
      `revoke all on table ${bookkeeping} from ${r}`,
      `revoke all on sequence ${sequences} from ${r}`,
    ],
  };
}

const TABLE_PRIVILEGES_SQL = TABLE_PRIVILEGES.join(', ').toLowerCase();
const SEQUENCE_PRIVILEGES_SQL = 'usage, select';

/**
 * One DO block: the schema's tables, views, materialized views, foreign and partitioned tables and
 * its sequences, found through pg_depend (an index lookup by schema), granted to the role with one
 * GRANT per kind — the objects `ON ALL TABLES / SEQUENCES IN SCHEMA` would reach
 * (test/integration/tenant-grants.test.ts compares them).
 */
function grantOnEveryRelationSql(schema: string, role: string): string {
  return `do $tenant_grants$ declare kind record; begin
  for kind in
    select o.kind, string_agg(o.name, ', ') as names from (
      select distinct case when c.relkind = 'S' then 'sequence' else 'table' end as kind, format('%I.%I', ${quoteLiteral(schema)}, c.relname) as name
        from pg_catalog.pg_depend d join pg_catalog.pg_class c on c.oid = d.objid
       where d.refclassid = 'pg_catalog.pg_namespace'::regclass and d.refobjid = ${quoteLiteral(quoteIdentifier(schema))}::regnamespace
         and d.classid = 'pg_catalog.pg_class'::regclass and c.relnamespace = d.refobjid
         and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
    ) o group by o.kind
  loop
    execute format('grant %s on %s %s to %I', case kind.kind when 'table' then ${quoteLiteral(TABLE_PRIVILEGES_SQL)} else ${quoteLiteral(SEQUENCE_PRIVILEGES_SQL)} end, kind.kind, kind.names, ${quoteLiteral(role)});
  end loop;
end $tenant_grants$`;
}

/**
 * Sends a tenant's grants in its transaction, in one round trip. Called by the executor after a
 * unit's DDL and before its bookkeeping; nothing when roles are off (`grants` undefined).
 *
 * @example await applyTenantGrants(trx, run.grants);
 */
export async function applyTenantGrants(trx: Knex | Knex.Transaction, grants: TenantGrants | undefined): Promise<void> {
  if (!grants) return;
  await trx.raw(grants.statements.join(';\n'));
}

/**
 * A migration runs for every tenant alike, and its SQL is learned and replayed for other tenants:
 * one that names a tenant role (its own or another's) would grant one tenant's privileges to the
 * next, or revoke them. Refused — the grants above are the only ones tenant roles get from here.
 *
 * @returns an Error naming the statement when a statement (or a bound value) names a tenant role.
 */
export function tenantRoleRefusal(grants: TenantGrants | undefined, sent: readonly { sql: string; bindings: readonly unknown[] }[]): Error | undefined {
  if (!grants) return undefined;
  const prefix = grants.prefix.toLowerCase();
  const named = sent.find((statement) => statement.sql.toLowerCase().includes(prefix) || statement.bindings.some((value) => typeof value === 'string' && value.toLowerCase().includes(prefix)));
  if (named) {
    return new Error(
      `it names a tenant role (${grants.prefix}…) in "${named.sql.slice(0, 120)}": tenant roles get their privileges from tenant-migrate alone, after every migration. ` +
        'Grant shared tables to the group (TENANT_GROUP_ROLE) in a master migration instead.',
    );
  }
  return undefined;
}
