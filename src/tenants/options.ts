/** Options shared by the fleet commands (library and CLI alike). */
import { DEFAULT_CONCURRENCY } from '../config/load-config.ts';
import type { TenantResult } from '../report/results.ts';

export interface TenantCommandOptions {
  /** The tenant migrations directory. Defaults to `migrations/tenant` under the working directory. */
  directory?: string;
  /** Tenants worked on at once. Default 4. */
  concurrency?: number;
  /** Keep starting tenants after one fails (default: fail fast). */
  continueOnError?: boolean;
  /** Only these org ids (each must be registered). */
  tenants?: readonly string[];
  onTenantDone?(result: TenantResult): void;
  onWarning?(message: string): void;
  /** Called once the fleet to work on is known, before any tenant starts (progress bars). */
  onStart?(total: number): void;
  /**
   * `false` runs every migration module for every tenant, statement by statement, as plain Knex
   * would: no replay of learned DDL. Default: on, unless `TENANT_MIGRATE_FAST_PATH=off`.
   */
  fastPath?: boolean;
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
