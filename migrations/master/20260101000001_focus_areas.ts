/** The coaching focus areas every organisation chooses from (shared, in `public`). */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('focus_areas', (table) => {
    table.increments('id');
    table.string('slug', 64).notNullable().unique();
    table.string('name', 200).notNullable();
    table.text('description');
    table.integer('sort_order').notNullable().defaultTo(0);
    table.boolean('is_active').notNullable().defaultTo(true);
    table.timestamps(true, true);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('focus_areas');
}
