/** Coaching categories, each under one focus area (shared, in `public`). */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('coaching_categories', (table) => {
    table.increments('id');
    table.integer('focus_area_id').notNullable().references('id').inTable('focus_areas').onDelete('RESTRICT');
    table.string('slug', 64).notNullable();
    table.string('name', 200).notNullable();
    table.text('description');
    table.integer('sort_order').notNullable().defaultTo(0);
    table.boolean('is_active').notNullable().defaultTo(true);
    table.timestamps(true, true);
    // A slug is unique within its focus area; this index also serves lookups by focus area.
    table.unique(['focus_area_id', 'slug']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('coaching_categories');
}
