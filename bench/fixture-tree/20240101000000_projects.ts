/**
 * Bench fixture, migration 1 of 4: a tenant's projects. Unqualified names: it runs with
 * search_path = <tenant schema>, public.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('projects', (table) => {
    table.bigIncrements('id');
    table.string('name', 200).notNullable();
    table.string('slug', 100).notNullable().unique();
    table.jsonb('settings').notNullable().defaultTo(knex.raw(`'{}'::jsonb`));
    table.timestamp('archived_at', { useTz: true });
    table.timestamps(true, true);
    table.index(['created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('projects');
}
