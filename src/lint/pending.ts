/** Which migrations of a tree some schema has still to apply: what migrate:* lints before it runs. */
import type { Knex } from 'knex';
import { relationExists } from '../db/relation-exists.ts';
import type { Tree } from '../migration/checksums.ts';
import { inspectRegistry } from '../tenants/registry.ts';
import { registrySql, type RegistryTable } from '../tenants/registry-table.ts';

/**
 * Master: the files not in public.knex_migrations. Tenant: the files past the smallest migration
 * count in the registry (the tree applies in order); none when there are no tenants.
 */
export async function pendingSomewhere(knex: Knex, tree: Tree, names: readonly string[], registry: RegistryTable): Promise<Set<string>> {
  if (tree === 'master') {
    const applied = (await relationExists(knex, 'public', 'knex_migrations')) ? ((await knex('knex_migrations').withSchema('public').pluck('name')) as string[]) : [];
    const done = new Set(applied);
    return new Set(names.filter((name) => !done.has(name)));
  }
  const shape = await inspectRegistry(knex, registry);
  if (!shape.exists || !shape.columns.includes('migration_count')) return new Set();
  const { rows } = await knex.raw<{ rows: { least: number | null }[] }>(`select min(migration_count) as least from ${registrySql(registry)}`);
  if (rows[0]?.least === null || rows[0]?.least === undefined) return new Set();
  return new Set(names.slice(Number(rows[0].least)));
}
