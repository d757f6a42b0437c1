/** Bench fixture, migration 2 of 4: tasks of a project (foreign key, jsonb, timestamps, indexes). */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tasks', (table) => {
    table.bigIncrements('id');
    table.bigInteger('project_id').notNullable().references('id').inTable('projects').onDelete('CASCADE');
    table.string('title', 300).notNullable();
    table.string('status', 20).notNullable().defaultTo('open');
    table.jsonb('payload').notNullable().defaultTo(knex.raw(`'{}'::jsonb`));
    table.timestamp('due_at', { useTz: true });
    table.timestamps(true, true);
    table.index(['project_id', 'status']);
    table.index(['due_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('tasks');
}
