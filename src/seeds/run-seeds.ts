/**
 * `seed:master` and `seed:tenants`: the seed files of a tree, in name order, in one transaction —
 * the master's in `public`, each tenant's with `search_path` = tenant, public, under the tenant's
 * advisory lock (a seed never runs beside a migration of the same tenant). A seed must be
 * re-runnable (upsert, `on conflict do nothing`): seeding again is how a new default reaches
 * existing tenants.
 */
import path from 'node:path';
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { READ_COMMITTED } from '../db/isolation.ts';
import { searchPathFor } from '../db/quote.ts';
import { runFleet } from '../fleet/run-fleet.ts';
import { describeError } from '../migration/describe-error.ts';
import type { FleetResult } from '../report/results.ts';
import { fleetResult } from '../tenants/migrate-tenants.ts';
import { collectWarnings, fleetConcurrency, fleetLiveOf, registryOf, type TenantCommandOptions } from '../tenants/options.ts';
import { currentAttempt, liveSettingsOf, timeoutsSql, type LiveOptions } from '../db/lock-settings.ts';
import { selectTenants } from '../tenants/select-tenants.ts';
import { loadSeeds, type Seed } from './seed-source.ts';

export interface SeedMasterResult {
  command: 'seed:master';
  ok: boolean;
  seeds: string[];
  error?: string;
  ms: number;
}

/** Runs the master seeds in one transaction (all or nothing). */
export async function seedMaster(knex: Knex, options: { directory?: string } & LiveOptions = {}): Promise<SeedMasterResult> {
  const started = performance.now();
  const seeds = await loadSeeds(path.resolve(options.directory ?? 'seeds/master'));
  const names = seeds.map((seed) => seed.name);
  try {
    await knex.transaction(async (trx) => {
      await trx.raw("select pg_advisory_xact_lock(?, ?), set_config('search_path', 'public', true)", [...schemaLockKey('public')]);
      await trx.raw(timeoutsSql(liveSettingsOf(options)));
      await runEach(trx, seeds);
    }, READ_COMMITTED);
    return { command: 'seed:master', ok: true, seeds: names, ms: elapsed(started) };
  } catch (error) {
    return { command: 'seed:master', ok: false, seeds: [], error: describeError(error), ms: elapsed(started) };
  }
}

/** Runs the tenant seeds in every tenant (or the named ones), one transaction each. */
export async function seedTenants(knex: Knex, options: TenantCommandOptions & { seedsDirectory?: string } = {}): Promise<FleetResult> {
  const started = performance.now();
  const seeds = await loadSeeds(path.resolve(options.seedsDirectory ?? 'seeds/tenant'));
  const live = fleetLiveOf(knex, options);
  const registry = registryOf(options);
  const tenants = await selectTenants(knex, options.tenants, registry);
  const { warnings, warn } = collectWarnings(options);
  const concurrency = fleetConcurrency(knex, options, warn);
  options.onStart?.(tenants.length);
  const results = await runFleet(
    tenants,
    async (tenant) => {
      await knex.transaction(async (trx) => seedTenantSchema(trx, tenant.schema, seeds), READ_COMMITTED);
      return { status: 'seeded', migrations: seeds.map((seed) => seed.name) };
    },
    { ...live, concurrency, continueOnError: options.continueOnError, onTenantDone: options.onTenantDone },
  );
  return fleetResult('seed:tenants', tenants, results, started, warnings);
}

/**
 * Runs `seeds` in a tenant's schema inside `trx`: under the tenant's lock, with its search_path for
 * the transaction. Also what `provision:tenant --seed` runs in the provisioning transaction.
 */
export async function seedTenantSchema(trx: Knex.Transaction, schema: string, seeds: readonly Seed[]): Promise<void> {
  await trx.raw("select pg_advisory_xact_lock(?, ?), set_config('search_path', ?, true)", [...schemaLockKey(schema), searchPathFor(schema)]);
  // After the tool's own lock: the seeds' table locks wait at most the lock timeout.
  await trx.raw(timeoutsSql(currentAttempt().settings));
  await runEach(trx, seeds);
}

async function runEach(trx: Knex.Transaction, seeds: readonly Seed[]): Promise<void> {
  for (const seed of seeds) {
    try {
      await seed.module.seed(trx);
    } catch (error) {
      throw new Error(`seed ${seed.name} failed: ${describeError(error)}`, { cause: error });
    }
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
