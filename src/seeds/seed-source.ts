/**
 * Seed files: Knex-format modules (`export async function seed(knex)`) in a directory, run in name
 * order. Loaded as Knex loads them, like migrations (load-module.ts; tsx only for a .ts seed).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { exportedMember, loadModuleLikeKnex } from '../migration/load-module.ts';

export interface SeedModule {
  seed(knex: Knex): Promise<unknown>;
}

export interface Seed {
  name: string;
  module: SeedModule;
}

const SEED_FILE = /\.(ts|mts|cts|js|mjs|cjs)$/;

/**
 * Every seed of a directory, imported, in name order.
 * @throws UsageError when the directory is missing or a file exports no `seed` function.
 */
export async function loadSeeds(directory: string): Promise<Seed[]> {
  let names: string[];
  try {
    names = fs
      .readdirSync(directory, { withFileTypes: true })
      .filter((entry) => entry.isFile() && SEED_FILE.test(entry.name) && !/\.d\.[mc]?ts$/.test(entry.name) && !entry.name.startsWith('.'))
      .map((entry) => entry.name)
      .sort();
  } catch {
    throw new UsageError(`The seeds directory ${directory} does not exist or cannot be read (MASTER_SEEDS_DIR / TENANT_SEEDS_DIR). Nothing was changed.`);
  }
  const seeds: Seed[] = [];
  for (const name of names) {
    const file = path.join(directory, name);
    const seed = exportedMember(await loadModuleLikeKnex(file), 'seed');
    if (typeof seed !== 'function') {
      throw new UsageError(`${file} is not a seed: it must export an async function seed(knex). Nothing was changed.`);
    }
    seeds.push({ name, module: { seed: seed as SeedModule['seed'] } });
  }
  return seeds;
}
