/** Bench fixture, migration 3 of 4: comments on a task (foreign keys, jsonb, an index). */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('comments', (table) => {
    table.bigIncrements('id');
    table.bigInteger('task_id').notNullable().references('id').inTable('tasks').onDelete('CASCADE');
    table.bigInteger('reply_to').references('id').inTable('comments').onDelete('SET NULL');
    table.string('author_id', 64).notNullable();
    table.text('body').notNullable();
    table.jsonb('metadata').notNullable().defaultTo(knex.raw(`'{}'::jsonb`));
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    table.index(['task_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('comments');
}
