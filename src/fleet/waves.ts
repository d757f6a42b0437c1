/**
 * Canary waves: a fleet run cut into waves, each a cumulative target of the fleet — `1,10%,100%`
 * means one tenant first, then enough to reach 10 % of the fleet, then the rest (as Atlas and Argo
 * Rollouts count steps). The next wave starts only when every tenant of the one before succeeded.
 * Tenants are taken in schema-name order, so a re-run picks the same canaries.
 */
import { UsageError } from '../errors.ts';

/** A wave's cumulative target: a number of tenants, or a percentage of the fleet (rounded up). */
export type WaveSpec = { count: number } | { percent: number };

/**
 * Parses `--waves 1,10%,100%` (or `--canary 5` / `--canary 10%`, one item).
 * @throws UsageError (exit 2) for anything but positive integers and percentages in (0, 100],
 *   or targets that shrink.
 */
export function parseWaves(text: string, flag = '--waves'): WaveSpec[] {
  const items = text.split(',').map((item) => item.trim());
  const specs = items.map((item): WaveSpec => {
    const percent = /^(\d+(?:\.\d+)?)%$/.exec(item);
    if (percent) {
      const value = Number(percent[1]);
      if (value > 0 && value <= 100) return { percent: value };
    } else if (/^\d+$/.test(item) && Number(item) > 0) {
      return { count: Number(item) };
    }
    throw new UsageError(`${flag} ${text}: "${item}" is not a wave size — use a number of tenants (5) or a percentage of the fleet (10%), e.g. ${flag} 1,10%,100%. Nothing was changed.`);
  });
  if (flag === '--canary' && specs.length > 1) {
    throw new UsageError(`--canary ${text}: one size (5 or 10%); for several waves use --waves ${text}. Nothing was changed.`);
  }
  for (let i = 1; i < specs.length; i++) {
    const [before, after] = [specs[i - 1]!, specs[i]!];
    if ('percent' in before && before.percent === 100) {
      throw new UsageError(`${flag} ${text}: 100% is the whole fleet, so no wave can come after it. Nothing was changed.`);
    }
    const shrinks = 'count' in before && 'count' in after ? after.count <= before.count : 'percent' in before && 'percent' in after ? after.percent <= before.percent : false;
    if (shrinks) throw new UsageError(`${flag} ${text}: each wave's size is a running total of the fleet, so it must grow (${items[i - 1]} then ${items[i]}). Nothing was changed.`);
  }
  return specs;
}

/**
 * Cuts `tenants` (already in schema-name order) into waves. With `first` (the org ids of
 * `--canary-tenants`), wave 1 is exactly those. Targets past the fleet's size are capped, a wave
 * left empty by rounding is dropped, and a last wave always takes whatever remains.
 */
export function splitIntoWaves<T extends { orgId: string }>(tenants: readonly T[], specs: readonly WaveSpec[], first?: readonly string[]): T[][] {
  const waves: T[][] = [];
  let rest = [...tenants];
  if (first && first.length > 0) {
    const named = new Set(first);
    waves.push(rest.filter((tenant) => named.has(tenant.orgId)));
    rest = rest.filter((tenant) => !named.has(tenant.orgId));
  }
  let done = waves[0]?.length ?? 0;
  for (const spec of specs) {
    const target = Math.min(tenants.length, 'count' in spec ? spec.count : Math.ceil((spec.percent * tenants.length) / 100));
    if (target <= done) continue;
    waves.push(rest.splice(0, target - done));
    done = target;
  }
  if (rest.length > 0) waves.push(rest);
  return waves;
}
