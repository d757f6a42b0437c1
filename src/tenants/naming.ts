/**
 * Org ids and the schema names derived from them. An org id is data: it is validated here, bound as
 * a parameter everywhere else, and only ever reaches SQL text through its hash.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors.ts';

export const SCHEMA_PREFIX = 'tid_';
/** Matches every schema name tenant-migrate can produce; used to spot orphan schemas. */
export const TENANT_SCHEMA_PATTERN = '^tid_[0-9a-f]{10}$';
export const MAX_ORG_ID_LENGTH = 128;

export const ORG_ID_RULE =
  `an org id must be 1 to ${MAX_ORG_ID_LENGTH} characters with no whitespace and no control characters (e.g. org_2abc123def456)`;

/**
 * The schema that holds an organisation's tables: `tid_` + the first 10 hex characters of
 * sha256(orgId).
 *
 * @example tenantSchemaName('org_2abc123def456') // → 'tid_' + 10 hex characters
 */
export function tenantSchemaName(orgId: string): string {
  return SCHEMA_PREFIX + createHash('sha256').update(orgId, 'utf8').digest('hex').slice(0, 10);
}

/** Why an org id is refused, or undefined when it is acceptable. Org ids match exactly: no trimming. */
export function orgIdProblem(orgId: string): string | undefined {
  if (orgId.length === 0) return 'it is empty';
  if (orgId.length > MAX_ORG_ID_LENGTH) return `it is ${orgId.length} characters long (at most ${MAX_ORG_ID_LENGTH})`;
  // \s covers spaces, tabs, newlines and Unicode spaces; \p{Cc} covers NUL and every other control character.
  if (/\s/u.test(orgId)) return 'it contains whitespace';
  if (/\p{Cc}/u.test(orgId)) return 'it contains a control character';
  return undefined;
}

/** Shows an org id safely in a message: control characters escaped, long ids shortened. */
export function printableOrgId(orgId: string): string {
  const shown = orgId.length > 40 ? `${orgId.slice(0, 40)}…` : orgId;
  return JSON.stringify(shown);
}

/**
 * Checks every org id of a call before anything is written; one bad id refuses them all.
 * Returns the ids without repeats, in the order given.
 *
 * @throws UsageError listing each bad id and the rule.
 */
export function validateOrgIds(orgIds: readonly string[]): string[] {
  if (orgIds.length === 0) throw new UsageError('No org id given: pass at least one, e.g. org_2abc123def456.');
  const problems = orgIds
    .map((orgId) => ({ orgId, problem: orgIdProblem(orgId) }))
    .filter((entry): entry is { orgId: string; problem: string } => entry.problem !== undefined)
    .map(({ orgId, problem }) => `${printableOrgId(orgId)}: ${problem}`);
  if (problems.length > 0) {
    throw new UsageError(`Invalid org id — ${problems.join('; ')}. Rule: ${ORG_ID_RULE}. Nothing was changed.`);
  }
  const unique = [...new Set(orgIds)];
  const bySchema = new Map<string, string>();
  for (const orgId of unique) {
    const schema = tenantSchemaName(orgId);
    const other = bySchema.get(schema);
    if (other !== undefined) throw collisionError(orgId, other, schema);
    bySchema.set(schema, orgId);
  }
  return unique;
}

/** Two org ids whose hashes share the first 10 hex characters cannot both have a schema. */
export function collisionError(orgId: string, existingOrgId: string, schema: string): UsageError {
  return new UsageError(
    `Org id ${printableOrgId(orgId)} collides with ${printableOrgId(existingOrgId)}: both map to schema ${schema}. ` +
      `${printableOrgId(orgId)} is refused; the tenant of ${printableOrgId(existingOrgId)} is untouched. Nothing was changed.`,
  );
}

/**
 * Role names are cluster-wide while schemas belong to one database: every role tenant-migrate makes
 * for a database starts with this prefix — `tm_` + the first 10 hex characters of sha256(database
 * name) + `_` — so staging and production on one cluster (or a test suite's many databases) never
 * share a role, and every role of one database sorts together (one index range in pg_authid).
 *
 * @example tenantRolePrefix('app') // → 'tm_' + 10 hex characters + '_'
 */
export function tenantRolePrefix(database: string): string {
  return `tm_${createHash('sha256').update(database, 'utf8').digest('hex').slice(0, 10)}_`;
}

/** What follows the prefix in the name of the marker role (not a schema name, so never a tenant's role). */
export const ROLES_MARKER_SUFFIX = 'roles_on';

/**
 * The marker role that says "this database has tenant roles" (TENANT_ROLES=on): a NOLOGIN role with
 * no privileges and no members, made with the group before any tenant role, dropped by an explicit
 * `TENANT_ROLES=off`. `withTenant` looks it up by name (one catalog cache probe) when a tenant has no
 * role — a name, not a scan of pg_roles, so the statement it sends on every call stays cheap to plan
 * and run (issue 21's cost target).
 *
 * @example rolesMarkerName('app') // → 'tm_' + 10 hex characters + '_roles_on'
 */
export function rolesMarkerName(database: string): string {
  return tenantRolePrefix(database) + ROLES_MARKER_SUFFIX;
}

/**
 * The NOLOGIN role a tenant's schema is granted to when `TENANT_ROLES=on`: the database's prefix +
 * the schema name, 28 bytes (PostgreSQL allows 63). Computed from the database and org id alone,
 * so `withTenant` never reads the registry to find it.
 *
 * @example tenantRoleName('app', 'tid_cf4116b064') // → 'tm_<10 hex>_tid_cf4116b064'
 */
export function tenantRoleName(database: string, schema: string): string {
  return tenantRolePrefix(database) + schema;
}

/**
 * The group every tenant role of a database belongs to, unless `TENANT_GROUP_ROLE` names another:
 * `tm_tenants_<10 hex of the database>`. Deliberately outside the range of {@link tenantRolePrefix}
 * (`t` sorts after every hex digit): the group outlives turning roles off (master migrations granted
 * it shared tables), and a role in that range means "this database has tenant roles".
 */
export function defaultGroupRoleName(database: string): string {
  return `tm_tenants_${createHash('sha256').update(database, 'utf8').digest('hex').slice(0, 10)}`;
}

/**
 * The same prefix as {@link tenantRolePrefix}, computed by the server from `current_database()`:
 * `withTenant` then needs neither the database's name nor a round trip to learn it.
 */
export const TENANT_ROLE_PREFIX_SQL = `'tm_' || left(encode(sha256(convert_to(current_database(), 'UTF8')), 'hex'), 10) || '_'`;
