import path from 'node:path';
import type { Knex } from 'knex';
import { runFleet } from '../fleet/run-fleet.ts';
import { runSchema } from '../migration/run-schema.ts';
import { directorySource } from '../migration/source.ts';
import type { FleetResult } from '../report/results.ts';
import { fleetResult } from './migrate-tenants.ts';
import { collectWarnings, concurrencyOf, tenantDirectoryOf, type TenantCommandOptions } from './options.ts';
import { recordTenantState } from './registry.ts';
import { selectTenants } from './select-tenants.ts';

export interface RollbackOptions extends TenantCommandOptions {
  /** Undo every batch, not only the newest. */
  all?: boolean;
}

/**
 * Undoes each tenant's newest batch (or all batches), one transaction per tenant.
 *
 * @example
 *   await rollbackTenants(knex, { tenants: ['org_2abc123def456'] });
 */
export async function rollbackTenants(knex: Knex, options: RollbackOptions = {}): Promise<FleetResult> {
  const started = performance.now();
  const source = directorySource(path.resolve(tenantDirectoryOf(options)));
  const tenants = await selectTenants(knex, options.tenants);
  const { warnings, warn } = collectWarnings(options);
  options.onStart?.(tenants.length);
  const results = await runFleet(
    tenants,
    async (tenant) => {
      const { plan } = await runSchema(knex, {
        schema: tenant.schema,
        source,
        direction: 'down',
        undo: options.all ? { kind: 'all' } : { kind: 'newest-batch' },
        hasBookkeeping: true, // provisioning created it
        recorded: tenant,
        finish: recordTenantState(tenant.schema),
        onWarning: warn,
      });
      return { status: plan.steps.length > 0 ? 'rolled-back' : 'up-to-date', migrations: plan.steps };
    },
    { concurrency: concurrencyOf(options), continueOnError: options.continueOnError, onTenantDone: options.onTenantDone },
  );
  return fleetResult('rollback:tenants', tenants, results, started, warnings);
}
