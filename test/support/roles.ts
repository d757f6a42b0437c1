/**
 * Per-tenant roles in tests (issue 21): the tool runs as a NON-superuser with CREATEROLE that owns
 * the test database (CI's `postgres` superuser would hide every privilege rule), and the
 * application as a real login role that owns nothing. Role names are cluster-wide: each carries a
 * random suffix, and every role made for the file — tenant roles of the database included — is
 * dropped in afterAll (after the database, which the tool role owns).
 *
 * @example
 *   const db = useFreshDatabase();
 *   const roles = useRoleLogins(db);
 *   await provisionTenant(roles.tool(), ['org_a'], { roles: roles.settings, directory });
 *   await withTenant(roles.app(), 'org_a', (trx) => trx('notes').select());
 */
import crypto from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, inject } from 'vitest';
import { knexConfig } from '../../src/db/connection.ts';
import type { RolesSettings } from '../../src/roles/settings.ts';
import { defaultGroupRoleName, tenantRolePrefix } from '../../src/tenants/naming.ts';
import { quoteIdent, withAdminClient, type FreshDatabase } from './database.ts';

export interface RoleLogins {
  /** The tool's role (CREATEROLE, owner of the database). */
  toolRole: string;
  /** The application's login role (NOINHERIT on PostgreSQL 15 and older, as the preflight asks). */
  appRole: string;
  /** `{ enabled: true, appRole }`: what library calls take as `roles`. */
  settings: RolesSettings;
  /** A Knex connected as the tool (one per file). */
  tool(): Knex;
  /** A Knex connected as the application (one per file). */
  app(): Knex;
  /** Connection URL for a role: `url('tool')`. */
  url(who: 'tool' | 'app'): string;
  /** The environment for a CLI run as the tool with roles on. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** The server's version number (e.g. 150020). */
  version(): number;
}

/** Registers the hooks; call after `useFreshDatabase()` in the same scope. */
export function useRoleLogins(db: FreshDatabase, options: { appInherit?: boolean } = {}): RoleLogins {
  const suffix = crypto.randomBytes(4).toString('hex');
  const toolRole = `tm_test_tool_${suffix}`;
  const appRole = `tm_test_app_${suffix}`;
  const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
  const instances = new Map<'tool' | 'app', Knex>();
  let serverVersion = 0;

  const url = (who: 'tool' | 'app') => {
    const parsed = new URL(db.url);
    parsed.username = who === 'tool' ? toolRole : appRole;
    parsed.password = password;
    return parsed.toString();
  };
  const connect = (who: 'tool' | 'app') => {
    let instance = instances.get(who);
    if (!instance) {
      instance = knexFactory({ ...knexConfig({ ...db.connection, user: who === 'tool' ? toolRole : appRole, password }) });
      instances.set(who, instance);
    }
    return instance;
  };

  beforeAll(async () => {
    await withAdminClient(async (client) => {
      serverVersion = Number((await client.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v);
      // Before 16 a membership inherits by the member's attribute: the app role must be NOINHERIT.
      const inherit = options.appInherit ?? serverVersion >= 160000;
      await client.query(`create role ${quoteIdent(toolRole)} login createrole password '${password}'`);
      await client.query(`create role ${quoteIdent(appRole)} login ${inherit ? 'inherit' : 'noinherit'} password '${password}'`);
      await client.query(`alter database ${quoteIdent(db.name)} owner to ${quoteIdent(toolRole)}`);
      await client.query(`grant connect on database ${quoteIdent(db.name)} to ${quoteIdent(appRole)}`);
    });
    // Before 15, PUBLIC may create in public: the preflight refuses that, so a test would revoke it.
    if (serverVersion < 150000) await db.knex().raw('revoke create on schema public from public');
  }, 120_000);
  afterAll(async () => {
    await Promise.allSettled([...instances.values()].map((instance) => instance.destroy()));
    instances.clear();
    await db.drop();
    await withAdminClient(async (client) => {
      const prefix = tenantRolePrefix(db.name);
      const { rows } = await client.query<{ rolname: string }>(
        'select rolname from pg_roles where (rolname >= $1 and rolname < $2) or rolname = any($3)',
        [prefix, `${prefix}~`, [defaultGroupRoleName(db.name), appRole, toolRole]],
      );
      for (const { rolname } of rows) await client.query(`drop role if exists ${quoteIdent(rolname)}`).catch(() => {});
    });
  }, 180_000);

  return {
    toolRole,
    appRole,
    settings: { enabled: true, appRole },
    tool: () => connect('tool'),
    app: () => connect('app'),
    url,
    env: (extra = {}) => ({ DATABASE_URL: url('tool'), TENANT_ROLES: 'on', TENANT_APP_ROLE: appRole, ...extra }),
    version: () => serverVersion,
  };
}

/** Reads inject('adminUrl') so callers need not import vitest's inject. */
export function adminUrl(): string {
  return inject('adminUrl');
}
