/**
 * Before a command with `TENANT_ROLES=on` writes anything: one query reads what the tool's role,
 * the application's role and the server allow, and every rule that would make the roles a false
 * promise stops the run with exit 2 and the reason (nothing changed). What it returns — the names
 * and the server's generation — is all the rest of src/roles/ needs.
 */
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { defaultGroupRoleName, TENANT_SCHEMA_PATTERN, tenantRolePrefix } from '../tenants/naming.ts';
import type { RolesSettings } from './settings.ts';

/** What the roles of one database are called, and how the server grants them. */
export interface RoleContext {
  database: string;
  /** `tm_<db hash>_`: every tenant role of this database starts with it. */
  prefix: string;
  /** The group every tenant role belongs to (`TENANT_GROUP_ROLE`, or `tm_tenants_<db hash>`). */
  group: string;
  /** The application's login role. */
  app: string;
  /** The role tenant-migrate runs as (it owns the tenant schemas). */
  tool: string;
  /** PostgreSQL 16 or later: memberships carry INHERIT and SET options. */
  grantOptions: boolean;
  /** Grants name each table and sequence (a DO block, grants.ts); false where plpgsql is not the tool's to use. */
  namedGrants: boolean;
}

/** What the preflight reads from the server (one query), the input of {@link preflightProblems}. */
export interface PreflightFacts {
  database: string;
  tool: string;
  version: number;
  toolSuper: boolean;
  toolCreateRole: boolean;
  groupExists: boolean;
  groupAdmin: boolean | null;
  appExists: boolean;
  appSuper: boolean | null;
  appBypassRls: boolean | null;
  appInherit: boolean | null;
  appOwnsSchemas: string | null;
  appMemberOfTool: boolean | null;
  publicCreate: boolean;
  citus: boolean;
  /** The tool may run DO blocks (plpgsql USAGE: a DBA can revoke it from PUBLIC). */
  plpgsql: boolean;
}

/**
 * Checks the rules of issue #21 and returns the roles' names. Exit 2 (UsageError) with the reason
 * when: the tool's role cannot create roles (CREATEROLE) or lacks ADMIN on an existing group; the
 * application's role is missing, a superuser, has BYPASSRLS, owns tenant schemas or is a member of
 * their owner; on PostgreSQL 15 or older it is not NOINHERIT; on PostgreSQL 14 or older PUBLIC may
 * still CREATE in `public`; the database is a Citus cluster.
 *
 * @example
 *   const roles = await preflightRoles(knex, { enabled: true, appRole: 'app' });
 *   roles.group; // 'tm_tenants_<hash>'
 */
export async function preflightRoles(knex: Knex, settings: RolesSettings): Promise<RoleContext> {
  if (!settings.appRole) throw new UsageError('TENANT_ROLES=on needs TENANT_APP_ROLE (the login role your application connects as). Nothing was changed.');
  const { rows } = await knex.raw<{ rows: [{ database: string }] }>('select current_database() as database');
  const database = rows[0].database;
  const group = settings.groupRole ?? defaultGroupRoleName(database);
  const facts = await readFacts(knex, group, settings.appRole);
  const problems = preflightProblems(facts, group, settings.appRole);
  if (problems.length > 0) {
    throw new UsageError(`TENANT_ROLES=on cannot be honoured: ${problems.join('; ')}. Nothing was changed.`);
  }
  return {
    database,
    prefix: tenantRolePrefix(database),
    group,
    app: settings.appRole,
    tool: facts.tool,
    grantOptions: facts.version >= 160000,
    namedGrants: facts.plpgsql,
  };
}

async function readFacts(knex: Knex, group: string, app: string): Promise<PreflightFacts> {
  const { rows } = await knex.raw<{ rows: PreflightFacts[] }>(
    `with me as (select oid, rolsuper, rolcreaterole from pg_roles where rolname = current_user),
          g as (select oid from pg_roles where rolname = ?),
          a as (select oid, rolsuper, rolbypassrls, rolinherit from pg_roles where rolname = ?)
     select current_database() as database, current_user as tool,
            current_setting('server_version_num')::int as version,
            (select rolsuper from me) as "toolSuper", (select rolcreaterole from me) as "toolCreateRole",
            exists (select 1 from g) as "groupExists",
            (select pg_has_role((select oid from me), g.oid, 'MEMBER WITH ADMIN OPTION') from g) as "groupAdmin",
            exists (select 1 from a) as "appExists",
            (select rolsuper from a) as "appSuper", (select rolbypassrls from a) as "appBypassRls", (select rolinherit from a) as "appInherit",
            (select string_agg(n.nspname, ', ' order by n.nspname) from pg_namespace n, a
              where n.nspname ~ ? and pg_has_role(a.oid, n.nspowner, 'MEMBER')) as "appOwnsSchemas",
            (select pg_has_role(a.oid, (select oid from me), 'MEMBER') from a) as "appMemberOfTool",
            has_schema_privilege('public', 'public', 'CREATE') as "publicCreate",
            exists (select 1 from pg_extension where extname = 'citus') as citus,
            coalesce((select has_language_privilege(l.oid, 'USAGE') from pg_language l where l.lanname = 'plpgsql'), false) as plpgsql`,
    [group, app, TENANT_SCHEMA_PATTERN],
  );
  return rows[0]!;
}

/**
 * The decision, apart from the query: every reason the facts refuse roles for (empty: go on).
 * The server's version is an input, so the rules of versions no test server runs (PostgreSQL 14
 * and older) are checked too.
 *
 * @example preflightProblems({ ...facts, version: 140011, publicCreate: true }, 'grp', 'app') // ['PUBLIC may CREATE …']
 */
export function preflightProblems(facts: PreflightFacts, group: string, app: string): string[] {
  const problems: string[] = [];
  const quoted = JSON.stringify;
  if (facts.citus) {
    // citus/citus#7719: after SET ROLE to a NOLOGIN role, the coordinator's connections to the
    // workers log in as that role and are refused.
    problems.push('the database has the citus extension, and Citus opens its worker connections as the current role: a NOLOGIN tenant role is refused there (citusdata/citus#7719). Per-tenant roles are not supported on Citus; set TENANT_ROLES=off');
  }
  if (!facts.toolSuper && !facts.toolCreateRole) {
    problems.push(`the role tenant-migrate connects as (${quoted(facts.tool)}) cannot create roles: ALTER ROLE ${facts.tool} CREATEROLE (as a superuser)`);
  } else if (!facts.toolSuper && facts.groupExists && facts.version >= 160000 && !facts.groupAdmin) {
    problems.push(`${quoted(facts.tool)} has no ADMIN option on the group role ${quoted(group)}, so it cannot add tenant roles to it: GRANT ${group} TO ${facts.tool} WITH ADMIN OPTION`);
  }
  if (!facts.appExists) {
    problems.push(`TENANT_APP_ROLE ${quoted(app)} does not exist: create the application's login role first (CREATE ROLE … LOGIN${facts.version < 160000 ? ' NOINHERIT' : ''})`);
    return problems;
  }
  if (app === facts.tool) problems.push(`TENANT_APP_ROLE ${quoted(app)} is the role tenant-migrate runs as: the application needs a login role of its own, which owns nothing`);
  else if (facts.appMemberOfTool) problems.push(`TENANT_APP_ROLE ${quoted(app)} is a member of ${quoted(facts.tool)}, which owns the tenant schemas: it would hold every tenant's privileges`);
  if (facts.appSuper) problems.push(`TENANT_APP_ROLE ${quoted(app)} is a superuser, which no privilege stops`);
  if (facts.appBypassRls) problems.push(`TENANT_APP_ROLE ${quoted(app)} has BYPASSRLS: ALTER ROLE ${app} NOBYPASSRLS`);
  if (facts.appOwnsSchemas) problems.push(`TENANT_APP_ROLE ${quoted(app)} owns (or is a member of the owner of) tenant schemas ${facts.appOwnsSchemas}`);
  if (facts.version < 160000 && facts.appInherit) {
    // Before 16 a membership has no INHERIT option of its own: the member's attribute decides, and
    // an inheriting app role would hold every tenant's privileges without SET ROLE. The tool never
    // alters the application's role.
    problems.push(`on PostgreSQL ${Math.floor(facts.version / 10000)} TENANT_APP_ROLE ${quoted(app)} must be NOINHERIT, or it would hold every tenant's privileges at once: ALTER ROLE ${app} NOINHERIT (tenant-migrate does not change your role)`);
  }
  if (facts.version < 150000 && facts.publicCreate) {
    problems.push('PUBLIC may CREATE in schema public (the default before PostgreSQL 15): a tenant role could plant a table or function there that other tenants resolve — REVOKE CREATE ON SCHEMA public FROM PUBLIC');
  }
  return problems;
}
