/**
 * What `status` says about per-tenant roles (TENANT_ROLES=on): the tenants without a role
 * (`missingRoleOrgIds`), and with `--verify` the tenants whose role's privileges are not what the
 * grants (grants.ts) make them (`grantDriftOrgIds`): a privilege missing on its schema, a table or
 * a sequence; any privilege on the bookkeeping; CREATE on the schema; or anything owned. Both make
 * `status --check` fail; `migrate:tenants` repairs the first, `migrate:tenants --verify` the second.
 */
import type { Knex } from 'knex';
import { readInChunks } from '../db/in-chunks.ts';
import { tenantRolePrefix } from '../tenants/naming.ts';
import { BOOKKEEPING_SEQUENCES, BOOKKEEPING_TABLES, TABLE_PRIVILEGES } from './grants.ts';
import { schemasWithoutRole } from './fleet-roles.ts';

export interface RoleStatus {
  missingRoleOrgIds: string[];
  /** With verify only. */
  grantDriftOrgIds?: string[];
}

/**
 * @example const { missingRoleOrgIds } = await readRoleStatus(knex, live, { verify: false });
 */
export async function readRoleStatus(knex: Knex, tenants: readonly { orgId: string; schema: string }[], { verify }: { verify: boolean }): Promise<RoleStatus> {
  const { rows } = await knex.raw<{ rows: { database: string }[] }>('select current_database() as database');
  const prefix = tenantRolePrefix(rows[0]!.database);
  const missing = await schemasWithoutRole(knex, prefix, tenants.map((tenant) => tenant.schema));
  const missingRoleOrgIds = tenants.filter((tenant) => missing.has(tenant.schema)).map((tenant) => tenant.orgId);
  if (!verify) return { missingRoleOrgIds };
  const withRole = tenants.filter((tenant) => !missing.has(tenant.schema)).map((tenant) => tenant.schema);
  const drifted = new Set(
    (await readInChunks(knex, withRole, async (trx, chunk) => (await trx.raw<{ rows: { schema: string }[] }>(GRANT_DRIFT_SQL, [[...chunk], prefix])).rows)).map((row) => row.schema),
  );
  return { missingRoleOrgIds, grantDriftOrgIds: tenants.filter((tenant) => drifted.has(tenant.schema)).map((tenant) => tenant.orgId) };
}

const tableLacks = TABLE_PRIVILEGES.map((privilege) => `not has_table_privilege(r.oid, c.oid, '${privilege}')`).join(' or ');
const bookkeeping = [...BOOKKEEPING_TABLES, ...BOOKKEEPING_SEQUENCES].map((name) => `'${name}'`).join(', ');

/** One statement per chunk of schemas: each schema whose role's privileges drifted. */
const GRANT_DRIFT_SQL = `
  select s.schema from unnest(?::text[]) as s(schema)
    join pg_catalog.pg_namespace n on n.nspname = s.schema
    join pg_catalog.pg_roles r on r.rolname = ? || s.schema
   where not has_schema_privilege(r.oid, n.oid, 'USAGE')
      or has_schema_privilege(r.oid, n.oid, 'CREATE')
      or exists (select 1 from pg_catalog.pg_class c
                  where c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
                    and case when c.relname in (${bookkeeping})
                               then case when c.relkind = 'S' then has_sequence_privilege(r.oid, c.oid, 'USAGE, SELECT, UPDATE')
                                         else has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') end
                             when c.relkind = 'S' then not has_sequence_privilege(r.oid, c.oid, 'USAGE') or not has_sequence_privilege(r.oid, c.oid, 'SELECT')
                             else ${tableLacks} end)
      or exists (select 1 from pg_catalog.pg_shdepend d where d.refclassid = 'pg_authid'::regclass and d.refobjid = r.oid and d.deptype = 'o')`;
