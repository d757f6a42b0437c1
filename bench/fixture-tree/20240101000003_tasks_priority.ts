/** Bench fixture, migration 4 of 4: a new column on an existing table, and an index on it. */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.integer('priority').notNullable().defaultTo(0);
    table.index(['project_id', 'priority']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.dropIndex(['project_id', 'priority']);
    table.dropColumn('priority');
  });
}
