import type { Knex } from 'knex';

// The release of the README's tour: one nullable column on every tenant's org_users.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('org_users', (table) => {
    table.string('nickname', 100);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('org_users', (table) => {
    table.dropColumn('nickname');
  });
}
