import type { Knex } from 'knex';

/** The shared coaching focus areas. Re-runnable: upserts by slug, so renaming one here renames it everywhere. */
export async function seed(knex: Knex): Promise<void> {
  await knex('focus_areas')
    .insert([
      { slug: 'feedback', name: 'Giving and receiving feedback', sort_order: 1 },
      { slug: 'one-on-ones', name: 'Running 1:1s', sort_order: 2 },
      { slug: 'negotiation', name: 'Negotiation', sort_order: 3 },
    ])
    .onConflict('slug')
    .merge(['name', 'sort_order']);
}
