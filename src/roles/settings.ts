/**
 * The per-tenant roles settings (`TENANT_ROLES`, `TENANT_APP_ROLE`, `TENANT_GROUP_ROLE`), read and
 * validated once — by loadConfig for the CLI, by {@link rolesOf} for a library caller that passes
 * none — so a bad value stops the run with exit 2 before anything is written.
 */
import { UsageError } from '../errors.ts';

export interface RolesSettings {
  /** `TENANT_ROLES=on`: every tenant gets a NOLOGIN role of its own, assumed by `withTenant`. */
  enabled: boolean;
  /**
   * `TENANT_ROLES=off` said explicitly: `migrate:tenants` then drops the tenant roles left from when
   * it was on. Unset leaves them alone — a job that merely lacks the variable must not strip the
   * fleet's isolation.
   */
  off?: boolean;
  /** `TENANT_APP_ROLE`: the application's login role, made a member of every tenant role (never inheriting). */
  appRole?: string;
  /** `TENANT_GROUP_ROLE`: the group every tenant role belongs to; default `tm_tenants_<db hash>`. */
  groupRole?: string;
}

/** PostgreSQL truncates longer identifiers (NAMEDATALEN - 1): two names could then meet. */
const MAX_ROLE_BYTES = 63;

/**
 * Reads the three settings from an environment.
 *
 * @example readRolesSettings({ TENANT_ROLES: 'on', TENANT_APP_ROLE: 'app' }) // { enabled: true, appRole: 'app' }
 * @throws UsageError naming the variable that is wrong.
 */
export function readRolesSettings(env: NodeJS.ProcessEnv): RolesSettings {
  const raw = env.TENANT_ROLES?.trim().toLowerCase();
  if (raw && raw !== 'on' && raw !== 'off') throw new UsageError(`TENANT_ROLES must be "on" or "off" (got ${JSON.stringify(env.TENANT_ROLES)}).`);
  const appRole = readRoleName(env, 'TENANT_APP_ROLE');
  const groupRole = readRoleName(env, 'TENANT_GROUP_ROLE');
  const enabled = raw === 'on';
  if (enabled && !appRole) {
    throw new UsageError(
      'TENANT_ROLES=on needs TENANT_APP_ROLE: the login role your application connects as (not the one tenant-migrate runs as), e.g. TENANT_APP_ROLE=app.',
    );
  }
  if (appRole !== undefined && appRole === groupRole) throw new UsageError('TENANT_APP_ROLE and TENANT_GROUP_ROLE must be two different roles.');
  return { enabled, ...(raw === 'off' ? { off: true } : {}), ...(appRole ? { appRole } : {}), ...(groupRole ? { groupRole } : {}) };
}

function readRoleName(env: NodeJS.ProcessEnv, variable: string): string | undefined {
  const name = env[variable]?.trim();
  if (!name) return undefined;
  const problem = roleNameProblem(name);
  if (problem) throw new UsageError(`${variable}: ${JSON.stringify(name)} ${problem}.`);
  return name;
}

/** Why a role name is refused, or undefined. Names are used as typed (quoted), case included. */
export function roleNameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name, 'utf8') > MAX_ROLE_BYTES) return `is longer than ${MAX_ROLE_BYTES} bytes (PostgreSQL would cut it short)`;
  if (/^pg_/i.test(name)) return 'starts with pg_, which PostgreSQL reserves for its own roles';
  if (/\p{Cc}/u.test(name)) return 'contains a control character';
  if (['public', 'none', 'current_user', 'session_user', 'current_role'].includes(name.toLowerCase())) return 'is a reserved role name';
  return undefined;
}

/**
 * The settings the CLI loaded for this process (environment and `.env`), when it runs a command.
 * Kept on globalThis: a migration file may load this package a second time (as CommonJS, or from
 * its own node_modules), and that copy must see them too.
 */
const PROCESS_SETTINGS = Symbol.for('tenant-migrate.roles-settings');
const processScope = globalThis as { [PROCESS_SETTINGS]?: RolesSettings };

/**
 * The CLI's configuration (which reads `.env` too, without writing process.env) becomes what every
 * later {@link rolesOf} without an option returns — so a master migration's
 * `tenantGroupRole(knex)` names the group the run created (TENANT_GROUP_ROLE from `.env`), not the
 * default.
 *
 * @example useProcessRolesSettings(config.roles);
 */
export function useProcessRolesSettings(settings: RolesSettings): void {
  processScope[PROCESS_SETTINGS] = settings;
}

/**
 * The settings a library call uses: the option, else what the CLI loaded, else the process's
 * environment (as `fastPathOf` does), validated alike.
 */
export function rolesOf(options: { roles?: RolesSettings }): RolesSettings {
  return options.roles ?? processScope[PROCESS_SETTINGS] ?? readRolesSettings(process.env);
}
