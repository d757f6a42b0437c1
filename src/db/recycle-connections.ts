/**
 * Connection recycling. A PostgreSQL backend caches catalog entries for every relation it touches
 * (relcache, catcache, plan caches) and never gives that memory back until the connection closes:
 * measured on PostgreSQL 15, 10–23 KB per tenant schema of a four-migration tree and 165 KB of a
 * 150-migration one, so one pooled connection that walks 100,000 tenants ends past 1 GB. So every path
 * that works in tenant schemas notes, on the connection it used, how many schemas it served; the
 * pool's `validate` hook (Knex passes `pool.validate` on to tarn, which destroys a connection that
 * fails it and opens a fresh one) retires a connection once it has served its share. The count is
 * kept beside the connection object (a WeakMap), never on the driver's internals.
 *
 * A connection is only ever retired when it is idle in the pool, i.e. between two tenants: a tenant's
 * run holds its connection from start to end, so it never spans two backends.
 */

/**
 * Schemas a pooled connection serves before it is closed, when nothing else is configured. Measured
 * on PostgreSQL 15 (bench/sign-up.ts, provisioning on one connection): 23 KB of backend memory per
 * schema of a four-migration tree, 165 KB of a 150-migration one; 250 keeps a backend near 45 MB
 * with the long tree (under 64 MB with room for a statement's own memory), and reconnecting every
 * 250 tenants costs well under a millisecond per tenant.
 */
export const DEFAULT_SCHEMAS_PER_CONNECTION = 250;

const served = new WeakMap<object, number>();

/**
 * Records that `connection` (a raw driver connection from `knex.client.acquireConnection()`) has
 * worked in `count` more tenant schemas.
 */
export function noteSchemasServed(connection: unknown, count = 1): void {
  if (typeof connection !== 'object' || connection === null || count <= 0) return;
  served.set(connection, (served.get(connection) ?? 0) + count);
}

/** How many tenant schemas `connection` has served so far (0 for one never noted). */
export function schemasServed(connection: unknown): number {
  return typeof connection === 'object' && connection !== null ? (served.get(connection) ?? 0) : 0;
}

export interface RetireOptions {
  /** Schemas a connection serves before it is closed; 0 = never (no recycling). */
  schemas: number;
  /**
   * Also count every hand-out of a connection from the pool as one schema served: for an
   * application pool whose queries go through `withTenant` (one tenant per transaction), which
   * tenant-migrate does not see.
   */
  countAcquisitions?: boolean;
}

/**
 * A `pool.validate` for Knex (tarn calls it each time it hands out an idle connection): false —
 * "close this one, open another" — once the connection has served `schemas` tenant schemas.
 *
 * @example
 *   // An application's own pool (withTenant): a fresh backend after 500 tenant transactions.
 *   const knex = knexFactory({ client: 'pg', connection, pool: { max: 10, validate: retireAfterSchemas({ schemas: 500, countAcquisitions: true }) } });
 */
export function retireAfterSchemas(options: RetireOptions): (connection: unknown) => boolean {
  const { schemas, countAcquisitions = false } = options;
  return (connection) => {
    if (countAcquisitions) noteSchemasServed(connection, 1);
    if (schemas <= 0) return true;
    // Knex validates every hand-out, the first one too: with countAcquisitions the one being
    // validated is counted already, so up to `schemas` hand-outs pass.
    return countAcquisitions ? schemasServed(connection) <= schemas : schemasServed(connection) < schemas;
  };
}
