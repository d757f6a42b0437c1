/**
 * The coaching chat history, with an embedding per message for semantic search.
 *
 * `vector(n)` comes from pgvector, installed in `public` by the master tree; it resolves here
 * through the tenant's search_path (`<tenant schema>, public`), so no name is schema-qualified.
 * `import 'pgvector/knex'` registers `table.vector(name, dimensions)` on Knex's table builder.
 */
import type { Knex } from 'knex';
import 'pgvector/knex';

/** OpenAI `text-embedding-3-small` / `ada-002` size. HNSW indexes take up to 2,000 dimensions. */
export const EMBEDDING_DIMENSIONS = 1536;

// pgvector/knex adds the method at run time but ships no typing for it.
declare module 'knex' {
  namespace Knex {
    interface TableBuilder {
      vector(columnName: string, dimensions?: number | { dimensions: number }): Knex.ColumnBuilder;
    }
  }
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('chat_messages', (table) => {
    table.bigIncrements('id');
    table.bigInteger('user_id').notNullable().references('id').inTable('org_users').onDelete('CASCADE');
    table.uuid('conversation_id').notNullable();
    table.string('role', 16).notNullable().checkIn(['user', 'assistant', 'system'], 'chat_messages_role_check');
    table.text('content').notNullable();
    // Null until the message has been embedded.
    table.vector('embedding', EMBEDDING_DIMENSIONS);
    table.jsonb('metadata').notNullable().defaultTo(knex.raw(`'{}'::jsonb`));
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // A user's history, newest first; a conversation in order.
    table.index(['user_id', 'created_at']);
    table.index(['conversation_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('chat_messages');
}
