/** Options shared by the fleet commands (library and CLI alike). */
import type { Knex } from 'knex';
import type { CitusSetting } from '../citus/detect.ts';
import { DEFAULT_CONCURRENCY } from '../config/load-config.ts';
import { poolSizeOf } from '../db/connection.ts';
import type { TenantResult } from '../report/results.ts';
import type { FleetOptions } from '../fleet/run-fleet.ts';
import { liveSettingsOf, type LiveOptions } from '../db/lock-settings.ts';
import { DEFAULT_REGISTRY, type RegistryTable } from './registry-table.ts';
import type { RolesSettings } from '../roles/settings.ts';

export interface TenantCommandOptions extends LiveOptions, Pick<FleetOptions, 'onHeldUp' | 'onRetry' | 'signal'> {
  /** The tenant migrations directory. Defaults to `migrations/tenant` under the working directory. */
  directory?: string;
  /** Tenants worked on at once. Default 4. */
  concurrency?: number;
  /** Keep starting tenants after one fails (default: fail fast). */
  continueOnError?: boolean;
  /** Only these org ids (each must be registered). Named tenants are always opened: see `verify`. */
  tenants?: readonly string[];
  /**
   * Open every tenant and read its own `knex_migrations` under its lock, instead of trusting the
   * registry's record of it (after a restore, or a schema changed by hand); the registry is
   * corrected as each tenant is done.
   */
  verify?: boolean;
  /** The registry table. Default public.tenants. */
  registry?: RegistryTable;
  onTenantDone?(result: TenantResult): void;
  onWarning?(message: string): void;
  /** Called once the fleet to work on is known, before any tenant starts (progress bars). */
  onStart?(total: number): void;
  /**
   * `false` runs every migration module for every tenant, statement by statement, as plain Knex
   * would: no replay of learned DDL. Default: on, unless `TENANT_MIGRATE_FAST_PATH=off`.
   */
  fastPath?: boolean;
  /**
   * Citus (src/citus/detect.ts): `auto` makes new tenant schemas distributed schemas when the
   * database has the citus extension, `on` insists on it, `off` never. Default: `auto`, unless
   * `TENANT_MIGRATE_CITUS` says otherwise.
   */
  citus?: CitusSetting;
  /**
   * Per-tenant roles (src/roles/): default from `TENANT_ROLES`, `TENANT_APP_ROLE` and
   * `TENANT_GROUP_ROLE` of the process.
   */
  roles?: RolesSettings;
}

/**
 * Whether the executor may replay learned DDL (src/migration/replay-script.ts): the option, else
 * `TENANT_MIGRATE_FAST_PATH` of the process (the CLI passes the validated setting, `.env` included).
 */
export function fastPathOf(options: Pick<TenantCommandOptions, 'fastPath'>): boolean {
  return options.fastPath ?? process.env.TENANT_MIGRATE_FAST_PATH?.trim().toLowerCase() !== 'off';
}

export function concurrencyOf(options: Pick<TenantCommandOptions, 'concurrency'>): number {
  return options.concurrency ?? DEFAULT_CONCURRENCY;
}

/**
 * The concurrency a fleet run uses: the one asked for, capped at the pool's size. Each tenant holds
 * one connection for its whole run, so a tenant beyond the pool's size would only wait for one —
 * and a wait longer than Knex's acquire timeout (behind slow migrations) would fail that tenant and,
 * fail-fast, skip the rest of the fleet. Says so once, through `warn`.
 *
 * @example
 *   const concurrency = fleetConcurrency(knex, { concurrency: 8 }, console.warn); // 1 on a pool of one
 */
export function fleetConcurrency(knex: Knex, options: Pick<TenantCommandOptions, 'concurrency'>, warn: (message: string) => void): number {
  const wanted = concurrencyOf(options);
  const pool = poolSizeOf(knex);
  if (wanted <= pool) return wanted;
  warn(
    `concurrency ${wanted} is more than the ${pool} connection${pool === 1 ? '' : 's'} of the pool (DB_POOL_MAX; the embedded server has one): ` +
      `working on ${pool} tenant${pool === 1 ? '' : 's'} at once.`,
  );
  return pool;
}

/**
 * What a fleet run needs for live traffic (issue #20): the lock settings (validated here, before
 * anything is written: exit 2 for a bad one), the database for the blocker monitor, and the
 * progress and abort hooks.
 */
export function fleetLiveOf(knex: Knex, options: TenantCommandOptions): Pick<FleetOptions, 'live' | 'knex' | 'onHeldUp' | 'onRetry' | 'signal'> {
  return { live: liveSettingsOf(options), knex, onHeldUp: options.onHeldUp, onRetry: options.onRetry, signal: options.signal };
}

export function registryOf(options: Pick<TenantCommandOptions, 'registry'>): RegistryTable {
  return options.registry ?? DEFAULT_REGISTRY;
}

export function tenantDirectoryOf(options: Pick<TenantCommandOptions, 'directory'>): string {
  return options.directory ?? 'migrations/tenant';
}

/** Collects warnings for the result while passing each one on as it happens. */
export function collectWarnings(options: Pick<TenantCommandOptions, 'onWarning'>): { warnings: string[]; warn(message: string): void } {
  const warnings: string[] = [];
  return {
    warnings,
    warn(message) {
      warnings.push(message);
      options.onWarning?.(message);
    },
  };
}
