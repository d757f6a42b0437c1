/**
 * Per-tenant roles for a fleet command (provision, migrate, rollback): read once before any tenant
 * is touched, then used tenant by tenant.
 *
 * - Roles on: the preflight (preflight.ts) runs first — exit 2 before anything is written — then
 *   the group is made sure of. Each tenant's role is created (when missing) in a short transaction
 *   just before the tenant's own, and every tenant transaction carries the role's grants.
 *   A tenant whose role is missing (roles just turned on for an existing fleet, a role dropped by
 *   hand) is opened even when up to date, so it gets its role and grants in this run.
 * - Roles off: `migrate:tenants` drops every tenant role of the database that is left (reported
 *   per tenant); the group stays, with whatever master migrations granted it.
 */
import type { Knex } from 'knex';
import { quoteIdentifier } from '../db/quote.ts';
import { ROLES_MARKER_SUFFIX, TENANT_SCHEMA_PATTERN, tenantRolePrefix } from '../tenants/naming.ts';
import { tenantGrants, type TenantGrants } from './grants.ts';
import { preflightRoles, type RoleContext } from './preflight.ts';
import { rolesOf, type RolesSettings } from './settings.ts';
import { dropTenantRole, ensureGroupRole, ensureTenantRole, roleOf } from './tenant-role.ts';

/** What a tenant's result says about its role, when this run changed it. */
export type RoleChange = 'created' | 'dropped';

export interface FleetRoles {
  /** Undefined when roles are off. */
  ctx: RoleContext | undefined;
  /** Schemas (of the tenants given) whose role does not exist yet. */
  missing: ReadonlySet<string>;
  /** The grants to send in a tenant's transactions, or undefined when roles are off. */
  grantsOf(schema: string): TenantGrants | undefined;
  /** Before a tenant's transaction: creates its role when missing; `created` when it did. */
  ensure(schema: string): Promise<RoleChange | undefined>;
}

/**
 * Reads the settings (option, else environment), runs the preflight and finds the tenants without
 * a role. Throws UsageError (exit 2, nothing written) when the preflight refuses.
 *
 * @example const roles = await fleetRoles(knex, options, tenants.map((t) => t.schema));
 */
export async function fleetRoles(knex: Knex, options: { roles?: RolesSettings }, schemas: readonly string[]): Promise<FleetRoles> {
  const settings = rolesOf(options);
  if (!settings.enabled) return { ctx: undefined, missing: new Set(), grantsOf: () => undefined, ensure: async () => undefined };
  const ctx = await preflightRoles(knex, settings);
  // The group and the marker first, even when every tenant has its role: withTenant tells "roles on,
  // this tenant has none" by the marker.
  await ensureGroupRole(knex, ctx);
  const missing = await schemasWithoutRole(knex, ctx.prefix, schemas);
  return {
    ctx,
    missing,
    grantsOf: (schema) => tenantGrants(schema, roleOf(ctx, schema), { named: ctx.namedGrants }),
    async ensure(schema) {
      return (await ensureTenantRole(knex, ctx, schema)) ? 'created' : undefined;
    },
  };
}

/** The schemas among `schemas` whose tenant role does not exist. One query. */
export async function schemasWithoutRole(knex: Knex, prefix: string, schemas: readonly string[]): Promise<Set<string>> {
  if (schemas.length === 0) return new Set();
  const { rows } = await knex.raw<{ rows: { schema: string }[] }>(
    `select s.schema from unnest(?::text[]) as s(schema)
      where not exists (select 1 from pg_catalog.pg_roles where rolname = ? || s.schema)`,
    [[...schemas], prefix],
  );
  return new Set(rows.map((row) => row.schema));
}

/**
 * The tenant roles this database has (every role named `<prefix>tid_…`), by schema: a registered
 * tenant's, or a leftover of one deprovisioned without roles on. One index range on pg_authid.
 */
export async function existingTenantRoles(knex: Knex): Promise<{ prefix: string; schemas: string[] }> {
  const { rows } = await knex.raw<{ rows: [{ database: string }] }>('select current_database() as database');
  const prefix = tenantRolePrefix(rows[0].database);
  const { rows: roles } = await knex.raw<{ rows: { rolname: string }[] }>(
    `select rolname from pg_catalog.pg_roles where rolname >= ?::name and rolname < ?::name order by rolname`,
    [prefix, `${prefix}~`],
  );
  const pattern = new RegExp(TENANT_SCHEMA_PATTERN);
  return { prefix, schemas: roles.map((role) => role.rolname.slice(prefix.length)).filter((schema) => pattern.test(schema)) };
}

/**
 * Roles explicitly off (`TENANT_ROLES=off`, or `roles: { enabled: false, off: true }`): drops every
 * tenant role of the database, each in a transaction of its own (what it still owns goes to the
 * tool, its privileges are revoked). Returns the schemas whose role was dropped. Unset: nothing.
 *
 * @example const dropped = await dropTenantRoles(knex); // Set { 'tid_cf4116b064', … }
 */
export async function dropTenantRoles(knex: Knex, options: { roles?: RolesSettings }): Promise<Set<string>> {
  const settings = rolesOf(options);
  if (settings.enabled || !settings.off) return new Set();
  const { prefix, schemas } = await existingTenantRoles(knex);
  const dropped = new Set<string>();
  for (const schema of schemas) {
    if (await knex.transaction((trx) => dropTenantRole(trx, { prefix }, schema))) dropped.add(schema);
  }
  // The marker last: until it goes, withTenant on a tenant whose role is gone is an error.
  await knex.raw(`drop role if exists ${quoteIdentifier(prefix + ROLES_MARKER_SUFFIX)}`);
  return dropped;
}
