/** The organisation's settings: one JSON value per key (e.g. `default_focus_area`, `assistant`). */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('org_settings', (table) => {
    table.string('key', 100).primary();
    table.jsonb('value').notNullable().defaultTo(knex.raw(`'{}'::jsonb`));
    table.bigInteger('updated_by').references('id').inTable('org_users').onDelete('SET NULL');
    table.timestamps(true, true);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('org_settings');
}
