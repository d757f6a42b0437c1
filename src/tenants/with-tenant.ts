import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { enterTenant } from '../roles/enter-tenant.ts';
import { printableOrgId, tenantSchemaName, validateOrgIds } from './naming.ts';

/**
 * Runs `fn` in a transaction whose `search_path` is the org's schema, then `public` (then
 * `pg_temp`, so a temporary table left on a pooled connection cannot shadow a tenant table). The path is
 * set with `set_config(…, is_local => true)` — `SET LOCAL` — so it ends with the transaction: a
 * pooled connection never carries one tenant's path into another's query. The same round trip
 * checks that the schema exists, since PostgreSQL silently skips a missing schema in the path and
 * the query would then reach `public`.
 *
 * When the database has per-tenant roles (`TENANT_ROLES=on`, src/roles/), the same round trip runs
 * `SET LOCAL ROLE` to the tenant's role, so PostgreSQL itself refuses every other tenant's tables,
 * the registry and the tool's tables inside `fn`. A tenant without its role is an error then, never
 * a run as the login role.
 *
 * @example
 *   const rows = await withTenant(knex, 'org_2abc123def456', (trx) => trx('chat_messages').select());
 */
export async function withTenant<T>(knex: Knex, orgId: string, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  validateOrgIds([orgId]);
  const schema = tenantSchemaName(orgId);
  return knex.transaction(async (trx) => {
    const entered = await enterTenant(trx, schema);
    if (!entered.found) {
      throw new UsageError(
        `No schema ${schema} for org ${printableOrgId(orgId)}: provision it first (provision:tenant) — or, if \`status\` lists it under missing schemas, restore the schema from a backup.`,
      );
    }
    if (entered.missingRole) throw missingRoleError(orgId, schema);
    return fn(trx);
  });
}

/** Roles are on for the database, but this tenant has none: refused, never run as the login role. */
export function missingRoleError(orgId: string, schema: string): UsageError {
  return new UsageError(
    `Org ${printableOrgId(orgId)} (${schema}) has no tenant role, but this database has tenant roles (TENANT_ROLES=on): ` +
      'run migrate:tenants (it gives every tenant its role), or provision:tenant for a new org. Nothing was run.',
  );
}
