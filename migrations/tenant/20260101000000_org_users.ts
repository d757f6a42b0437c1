/**
 * The organisation's members, keyed by their Clerk user id.
 *
 * Tenant migrations run with search_path = `<tenant schema>, public`: every name here is
 * unqualified, so the same file builds the table in each tenant's schema.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('org_users', (table) => {
    table.bigIncrements('id');
    table.string('clerk_user_id', 64).notNullable().unique();
    table.string('email', 320).notNullable();
    table.string('display_name', 200);
    // Clerk organisation roles: `org:admin`, `org:member`, or a custom `org:<key>`.
    table.string('role', 64).notNullable().defaultTo('org:member');
    table.timestamps(true, true);
    table.index(['email']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('org_users');
}
