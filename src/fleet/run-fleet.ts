/**
 * Runs one job per tenant with bounded concurrency. Fail-fast by default: after the first failure
 * no new tenant starts (those in flight finish) and the rest are reported `skipped`. A tenant's
 * failure never changes what happens to another tenant that runs.
 */
import pLimit from 'p-limit';
import { describeError } from '../migration/describe-error.ts';
import type { TenantResult } from '../report/results.ts';
import type { TenantRecord } from '../tenants/registry.ts';

export interface FleetOptions {
  concurrency: number;
  continueOnError?: boolean;
  /** Called as each tenant finishes (also for skipped ones), for progress output. */
  onTenantDone?(result: TenantResult): void;
}

export type TenantJob = (tenant: TenantRecord) => Promise<Pick<TenantResult, 'status' | 'migrations'>>;

/** Runs `job` for every tenant; results keep the tenants' order. Never throws for a tenant's failure. */
export async function runFleet(tenants: readonly TenantRecord[], job: TenantJob, options: FleetOptions): Promise<TenantResult[]> {
  const limit = pLimit(options.concurrency);
  let stopped = false;
  const finish = (result: TenantResult): TenantResult => {
    options.onTenantDone?.(result);
    return result;
  };
  return Promise.all(
    tenants.map((tenant) =>
      limit(async (): Promise<TenantResult> => {
        const base = { orgId: tenant.orgId, schema: tenant.schema };
        if (stopped) return finish({ ...base, status: 'skipped', migrations: [], ms: 0 });
        const started = performance.now();
        try {
          const outcome = await job(tenant);
          return finish({ ...base, ...outcome, ms: elapsed(started) });
        } catch (error) {
          if (!options.continueOnError) stopped = true;
          return finish({ ...base, status: 'failed', migrations: [], error: tenantErrorMessage(tenant, error), ms: elapsed(started) });
        }
      }),
    ),
  );
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

/** "org_a (tid_…): 2026…_notes.ts (up) failed: <PostgreSQL's message, detail, hint>". */
export function tenantErrorMessage(tenant: Pick<TenantRecord, 'orgId' | 'schema'>, error: unknown): string {
  const where = `${tenant.orgId} (${tenant.schema})`;
  const err = error as { migration?: string; direction?: string; cause?: unknown };
  if (error instanceof Error && err.migration) {
    return `${where}: migration ${err.migration} (${err.direction}) failed: ${describeError(err.cause)}`;
  }
  return `${where}: ${describeError(error)}`;
}
