/**
 * How long each tenant of a run took, as a histogram with fixed buckets — kept in the run's history
 * row (`tenant_ms_histogram`) so a page can show a run's time distribution without a row per
 * tenant. The buckets never change, so histograms of different runs compare bucket by bucket.
 */

/** Upper bounds (ms, inclusive) of every bucket but the last, which takes everything slower. */
export const TENANT_MS_BOUNDS: readonly number[] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];

export interface TenantTimes {
  /** The bucket bounds in ms: bucket i holds times ≤ boundsMs[i] (and > boundsMs[i-1]); the last bucket the rest. */
  boundsMs: number[];
  /** Tenants per bucket: one more entry than `boundsMs`. */
  counts: number[];
  /** How many tenants the histogram holds (the sum of `counts`). */
  tenants: number;
}

/**
 * The histogram of the tenants a run worked on: every tenant but those skipped, and but those
 * found up to date without being opened (they took no time of their own).
 *
 * @example
 *   tenantTimes([{ status: 'migrated', ms: 7 }, { status: 'failed', ms: 300 }]).counts // [1, 0, 0, 0, 0, 1, 0, …]
 *   tenantTimes([{ status: 'up-to-date', ms: 0 }]) // undefined: nothing was worked on
 */
export function tenantTimes(tenants: readonly { status: string; ms: number }[]): TenantTimes | undefined {
  const worked = tenants.filter((tenant) => tenant.status !== 'skipped' && !(tenant.status === 'up-to-date' && tenant.ms === 0));
  if (worked.length === 0) return undefined;
  const counts = new Array<number>(TENANT_MS_BOUNDS.length + 1).fill(0);
  for (const { ms } of worked) {
    const index = TENANT_MS_BOUNDS.findIndex((bound) => ms <= bound);
    counts[index === -1 ? TENANT_MS_BOUNDS.length : index]! += 1;
  }
  return { boundsMs: [...TENANT_MS_BOUNDS], counts, tenants: worked.length };
}

/** A bucket's label: `≤ 10 ms`, `10–25 ms`, `> 30 s`. */
export function bucketLabel(boundsMs: readonly number[], index: number): string {
  const show = (ms: number) => (ms >= 1_000 ? `${ms / 1_000} s` : `${ms} ms`);
  if (index === 0) return `≤ ${show(boundsMs[0]!)}`;
  if (index >= boundsMs.length) return `> ${show(boundsMs.at(-1)!)}`;
  return `${show(boundsMs[index - 1]!)}–${show(boundsMs[index]!)}`;
}
