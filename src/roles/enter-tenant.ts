/**
 * The one round trip that opens a tenant's transaction for the application (`withTenant`,
 * `forEachTenant`, `query:tenants`): the search_path (`SET LOCAL`), whether the schema exists, and —
 * when the database has tenant roles — `SET LOCAL ROLE` to the tenant's role.
 *
 * Whether roles are on is read from the cluster, not from an option the application must remember:
 * the tenant's role is `<prefix>` + schema (naming.ts), the prefix computed by the server from
 * `current_database()`. When that role exists it is assumed. When it does not, but the database's
 * marker role (`<prefix>roles_on`, made with the group by every run with roles on) does, roles are
 * on and this tenant lacks one: an error, never a silent run as the login role. Both are lookups by
 * name in the catalog cache (`to_regrole`): an earlier version scanned pg_roles for any role with
 * the prefix, and planning that view on every call made `withTenant` ~1.5× slower (bench --roles).
 *
 * The path ends with `pg_temp`: PostgreSQL searches the session's temporary schema FIRST unless the
 * path names it, so a temporary table left on a pooled connection (by another tenant's code) would
 * shadow this tenant's table of the same name. Named last, it is searched last.
 */
import type { Knex } from 'knex';
import { ROLES_MARKER_SUFFIX, TENANT_ROLE_PREFIX_SQL } from '../tenants/naming.ts';

export interface EnteredTenant {
  /** The schema exists. */
  found: boolean;
  /** The role the transaction now runs as, or null when the database has no tenant roles. */
  role: string | null;
  /** The database has tenant roles but this tenant has none (the transaction runs as the login role: do not go on). */
  missingRole: boolean;
}

/**
 * Opens a tenant's transaction: path, schema check and role, in one statement.
 *
 * @example
 *   const entered = await enterTenant(trx, 'tid_cf4116b064');
 *   if (!entered.found || entered.missingRole) throw …;
 */
export async function enterTenant(trx: Knex.Transaction, schema: string, settings: Record<string, string> = {}): Promise<EnteredTenant> {
  const extra = Object.keys(settings).map(() => ` and set_config(?, ?, true) is not null`).join('');
  const { rows } = await trx.raw<{ rows: { found: boolean; role: string | null; prefixUsed: boolean }[] }>(
    `with r as (select p.prefix || ? as name, p.prefix from (select ${TENANT_ROLE_PREFIX_SQL} as prefix) p)
     select set_config('search_path', quote_ident(?) || ', public, pg_temp', true) is not null${extra}
              and to_regnamespace(quote_ident(?)) is not null as found,
            case when to_regrole(quote_ident(r.name)) is not null then set_config('role', r.name, true) end as role,
            to_regrole(quote_ident(r.name)) is null and to_regrole(quote_ident(r.prefix || ?)) is not null as "prefixUsed"
       from r`,
    [schema, schema, ...Object.entries(settings).flat(), schema, ROLES_MARKER_SUFFIX],
  );
  const row = rows[0]!;
  return { found: row.found, role: row.role, missingRole: row.prefixUsed };
}
