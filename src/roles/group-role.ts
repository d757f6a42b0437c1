/**
 * For master migrations: the name of the group every tenant role belongs to, so a migration can
 * grant a shared table to it (inside `withTenant`, with TENANT_ROLES=on, the application has only
 * its tenant role's privileges — and through the group, what master migrations granted).
 */
import type { Knex } from 'knex';
import { defaultGroupRoleName } from '../tenants/naming.ts';
import { rolesOf, type RolesSettings } from './settings.ts';

/**
 * `TENANT_GROUP_ROLE`, else `tm_tenants_<hash of the database>`.
 *
 * @example
 *   // migrations/master/20260301000000_plans_for_tenants.ts
 *   export async function up(knex) {
 *     await knex.raw('grant select on public.plans to ??', [await tenantGroupRole(knex)]);
 *   }
 */
export async function tenantGroupRole(knex: Knex, options: { roles?: RolesSettings } = {}): Promise<string> {
  const configured = rolesOf(options).groupRole;
  if (configured) return configured;
  const { rows } = await knex.raw<{ rows: { database: string }[] }>('select current_database() as database');
  return defaultGroupRoleName(rows[0]!.database);
}
