/**
 * Nearest-neighbour search over message embeddings by cosine distance
 * (`ORDER BY embedding <=> $1 LIMIT k`). The table is new in the same run, so a plain CREATE INDEX
 * inside the tenant's transaction is right; on a large existing table use `CONCURRENTLY` with
 * `export const config = { transaction: false }` instead.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Unqualified: the index goes into the tenant's schema, next to its table; `vector_cosine_ops`
  // resolves from public through the search_path.
  await knex.raw('CREATE INDEX chat_messages_embedding_hnsw ON chat_messages USING hnsw (embedding vector_cosine_ops)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS chat_messages_embedding_hnsw');
}
