/**
 * A tenant's role: created (with its memberships) in a short transaction of its own, before the
 * tenant's, and dropped in the transaction that drops the tenant.
 *
 * Why its own transaction: granting membership in a role locks that role until commit (on
 * PostgreSQL 16+ the grant updates the group's pg_auth_members rows), so granting the group inside
 * each tenant's long provisioning transaction would serialise every provisioning of the fleet.
 */
import type { Knex } from 'knex';
import { quoteIdentifier } from '../db/quote.ts';
import { ROLES_MARKER_SUFFIX, tenantRolePrefix } from '../tenants/naming.ts';
import type { RoleContext } from './preflight.ts';

/** SQLSTATE duplicate_object / unique_violation: a concurrent run created the role first. */
const ALREADY_THERE = new Set(['42710', '23505']);

/**
 * The role's name for a schema of this database (naming.ts: prefix + schema).
 *
 * @example roleOf(ctx, 'tid_cf4116b064') // 'tm_<hash>_tid_cf4116b064'
 */
export function roleOf(ctx: RoleContext, schema: string): string {
  return ctx.prefix + schema;
}

/**
 * Makes sure the group and the database's marker role (naming.ts, rolesMarkerName) exist, each
 * created NOLOGIN when it does not. Once per run, before any tenant.
 */
export async function ensureGroupRole(knex: Knex, ctx: RoleContext): Promise<void> {
  for (const name of [ctx.group, ctx.prefix + ROLES_MARKER_SUFFIX]) {
    const { rows } = await knex.raw<{ rows: { exists: boolean }[] }>('select exists (select 1 from pg_roles where rolname = ?) as exists', [name]);
    if (rows[0]?.exists) continue;
    await knex.raw(`create role ${quoteIdentifier(name)} nologin`).catch((error: { code?: string }) => {
      if (!ALREADY_THERE.has(error.code ?? '')) throw error;
    });
  }
}

/**
 * Creates a tenant's role when missing (a leftover one, from a provisioning that failed after this
 * step, is adopted) and (re)grants its memberships: the role in the group (it INHERITs the group's
 * privileges: shared tables granted in master migrations); the application's login role in the role
 * — on 16+ `WITH INHERIT FALSE, SET TRUE`, so the application holds nothing of it until `SET ROLE`;
 * and the tool's own role in it (on 16+ `WITH SET TRUE`), so that the tool can act as it (DROP OWNED
 * at deprovisioning). Idempotent. Returns whether the role was created.
 *
 * @example const created = await ensureTenantRole(knex, ctx, 'tid_cf4116b064');
 */
export async function ensureTenantRole(knex: Knex, ctx: RoleContext, schema: string): Promise<boolean> {
  const role = roleOf(ctx, schema);
  for (let attempt = 0; ; attempt++) {
    try {
      return await knex.transaction(async (trx) => {
        const { rows } = await trx.raw<{ rows: { exists: boolean }[] }>('select exists (select 1 from pg_roles where rolname = ?) as exists', [role]);
        const created = !rows[0]?.exists;
        // Names are ours (prefix + schema) or validated settings, always quoted: nothing is bound in DDL.
        await trx.raw([...(created ? [`create role ${quoteIdentifier(role)} nologin inherit`] : []), ...membershipSql(ctx, role)].join(';\n'));
        return created;
      });
    } catch (error) {
      // Two runs provisioning one org: the second waits for the first's CREATE ROLE, then fails on
      // the name; the next attempt finds the role and only grants.
      if (attempt > 0 || !ALREADY_THERE.has((error as { code?: string }).code ?? '')) throw error;
    }
  }
}

function membershipSql(ctx: RoleContext, role: string): string[] {
  const r = quoteIdentifier(role);
  return [
    `grant ${quoteIdentifier(ctx.group)} to ${r}`,
    ctx.grantOptions ? `grant ${r} to ${quoteIdentifier(ctx.app)} with inherit false, set true` : `grant ${r} to ${quoteIdentifier(ctx.app)}`,
    ctx.grantOptions ? `grant ${r} to current_user with set true` : `grant ${r} to current_user`,
  ];
}

/**
 * The statements that drop a tenant's role, for the transaction that drops its schema (after the
 * schema is gone): whatever it still owns goes to the tool, whatever was granted to it anywhere in
 * this database is revoked, then the role itself is dropped. Nothing when the role does not exist.
 */
export async function dropTenantRole(trx: Knex.Transaction | Knex, ctx: Pick<RoleContext, 'prefix'>, schema: string): Promise<boolean> {
  const role = ctx.prefix + schema;
  const { rows } = await trx.raw<{ rows: { exists: boolean }[] }>('select exists (select 1 from pg_roles where rolname = ?) as exists', [role]);
  if (!rows[0]?.exists) return false;
  const r = quoteIdentifier(role);
  await trx.raw([`reassign owned by ${r} to current_user`, `drop owned by ${r}`, `drop role ${r}`].join(';\n'));
  return true;
}

/**
 * Deprovisioning's step, in the transaction that drops the schema (after the drop): the tenant's
 * role goes too, whatever TENANT_ROLES says now — a role left behind would let a new org with the
 * same schema name inherit its memberships. Nothing when the database never had one.
 */
export async function dropRoleOfSchema(trx: Knex.Transaction, schema: string): Promise<boolean> {
  const { rows } = await trx.raw<{ rows: { database: string }[] }>('select current_database() as database');
  return dropTenantRole(trx, { prefix: tenantRolePrefix(rows[0]!.database) }, schema);
}
