/**
 * pgvector in `public`, where every tenant schema finds it through its search_path
 * (`<tenant schema>, public`): tenant tables declare `vector(n)` columns without a schema prefix.
 *
 * Needs the extension's files on the server (Debian/Ubuntu `postgresql-<major>-pgvector`, Homebrew
 * `pgvector`, the `pgvector/pgvector` image, or the managed service's allow-list); without them this
 * fails with `extension "vector" is not available` and tenant-migrate says how to install it.
 * A server where an administrator already created the extension is fine: IF NOT EXISTS.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public');
}

export async function down(knex: Knex): Promise<void> {
  // No CASCADE: while any tenant still has a vector column, PostgreSQL refuses, naming the column.
  await knex.raw('DROP EXTENSION IF EXISTS vector');
}
