/**
 * The "superadmin" path: run a function in every tenant (or the named ones), each in its own
 * `withTenant`-style transaction, and collect per-tenant results and errors — for support
 * queries, reports and one-off backfills. A tenant's failure never stops the others.
 */
import type { Knex } from 'knex';
import { noteSchemasServed } from '../db/recycle-connections.ts';
import pLimit from 'p-limit';
import { describeError } from '../migration/describe-error.ts';
import { enterTenant } from '../roles/enter-tenant.ts';
import { printableOrgId } from './naming.ts';
import { missingRoleError } from './with-tenant.ts';
import { collectWarnings, fleetConcurrency, registryOf, type TenantCommandOptions } from './options.ts';
import { inspectRegistry, refuseForeignTable } from './registry.ts';
import { selectTenants } from './select-tenants.ts';

export interface ForEachTenantOptions<T = unknown> extends Pick<TenantCommandOptions, 'concurrency' | 'tenants' | 'registry' | 'onWarning'> {
  /** Each tenant's transaction is READ ONLY: PostgreSQL refuses any write, DDL or nextval() in it. */
  readOnly?: boolean;
  /** `statement_timeout` for every statement of a tenant's transaction (ms). */
  statementTimeoutMs?: number;
  /**
   * Roll each tenant's transaction back instead of committing it, whatever `fn` did: for reads,
   * so that nothing READ ONLY lets through (`lo_create()`, say) can last.
   */
  rollback?: boolean;
  /**
   * Called with each tenant's outcome as soon as it and every tenant before it (org id order) are
   * done, so a caller can stream them; `results` then holds the outcomes without their values (a
   * value handed over is not kept: 100,000 tenants' rows need not be in memory at once).
   */
  onResult?(outcome: TenantOutcome<T>): void;
}

/** Carries fn's value out of a transaction that is rolled back on purpose. */
class RolledBack<T> {
  constructor(readonly value: T) {}
}

export type TenantOutcome<T> =
  | { orgId: string; schema: string; ok: true; value: T }
  | { orgId: string; schema: string; ok: false; error: string };

export interface ForEachTenantResult<T> {
  /** True when `fn` succeeded in every tenant. */
  ok: boolean;
  /** One per tenant, in org id order. */
  results: TenantOutcome<T>[];
}

/**
 * @example
 *   const { results } = await forEachTenant(knex, (trx) => trx('org_users').count('* as users').first());
 *   for (const r of results) if (r.ok) console.log(r.orgId, r.value?.users);
 * @throws UsageError (nothing run) when a named org is not registered.
 */
export async function forEachTenant<T>(
  knex: Knex,
  fn: (trx: Knex.Transaction, tenant: { orgId: string; schema: string }) => Promise<T>,
  options: ForEachTenantOptions<T> = {},
): Promise<ForEachTenantResult<T>> {
  const registry = registryOf(options);
  const shape = await inspectRegistry(knex, registry);
  refuseForeignTable(shape, registry);
  // No registry yet: no tenants (and nothing created: this path only reads).
  const tenants = shape.exists ? await selectTenants(knex, options.tenants, registry) : [];
  const limit = pLimit(fleetConcurrency(knex, options, collectWarnings(options).warn));
  const inOrder = options.onResult ? orderedDelivery(tenants.length, options.onResult) : undefined;
  const results = await Promise.all(
    tenants.map(({ orgId, schema }, index) =>
      limit(async (): Promise<TenantOutcome<T>> => (inOrder ? inOrder(index, await runTenant(orgId, schema)) : runTenant(orgId, schema))),
    ),
  );
  return { ok: results.every((result) => result.ok), results };

  async function runTenant(orgId: string, schema: string): Promise<TenantOutcome<T>> {
    // A connection of our own for the tenant, reset after it (DISCARD ALL): whatever `fn` left
    // in the session — a SET, a session advisory lock, LISTEN — never reaches another tenant.
    const connection: unknown = await knex.client.acquireConnection();
    try {
      const value = await knex
        .transaction(
          async (trx) => {
            // Local to the transaction, like the path.
            const entered = await enterTenant(trx, schema, { statement_timeout: String(options.statementTimeoutMs ?? 0) });
            if (!entered.found) throw new Error(`no schema ${schema} (registered, but missing: see \`status\`)`);
            if (entered.missingRole) throw missingRoleError(orgId, schema);
            const value = await fn(trx, { orgId, schema });
            if (options.rollback) throw new RolledBack(value);
            return value;
          },
          { isolationLevel: 'read committed', readOnly: options.readOnly ?? false, connection },
        )
        .catch((error: unknown) => {
          if (error instanceof RolledBack) return error.value as T;
          throw error;
        });
      return { orgId, schema, ok: true, value };
    } catch (error) {
      return { orgId, schema, ok: false, error: `${printableOrgId(orgId)} (${schema}): ${describeError(error)}` };
    } finally {
      await knex.raw('discard all').connection(connection).catch(() => {});
      noteSchemasServed(connection); // recycled between tenants once it has served its share
      await knex.client.releaseConnection(connection);
    }
  }
}

/**
 * Hands outcomes to `deliver` in index order as they become available (an outcome that finishes
 * early waits for those before it); returns what is kept in `results`: the outcome without its value.
 */
function orderedDelivery<T>(count: number, deliver: (outcome: TenantOutcome<T>) => void) {
  const waiting = new Map<number, TenantOutcome<T>>();
  let next = 0;
  return (index: number, outcome: TenantOutcome<T>): TenantOutcome<T> => {
    waiting.set(index, outcome);
    while (next < count && waiting.has(next)) {
      deliver(waiting.get(next)!);
      waiting.delete(next);
      next += 1;
    }
    return outcome.ok ? { ...outcome, value: undefined as T } : outcome;
  };
}
