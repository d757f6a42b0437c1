import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { printableOrgId, tenantSchemaName, validateOrgIds } from './naming.ts';

/**
 * Runs `fn` in a transaction whose `search_path` is the org's schema, then `public`. The path is
 * set with `set_config(…, is_local => true)` — `SET LOCAL` — so it ends with the transaction: a
 * pooled connection never carries one tenant's path into another's query. The same round trip
 * checks that the schema exists, since PostgreSQL silently skips a missing schema in the path and
 * the query would then reach `public`.
 *
 * @example
 *   const rows = await withTenant(knex, 'org_2abc123def456', (trx) => trx('chat_messages').select());
 */
export async function withTenant<T>(knex: Knex, orgId: string, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  validateOrgIds([orgId]);
  const schema = tenantSchemaName(orgId);
  return knex.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: { found: boolean }[] }>(
      `select set_config('search_path', quote_ident(?) || ', public', true) is not null
              and to_regnamespace(quote_ident(?)) is not null as found`,
      [schema, schema],
    );
    if (!rows[0]?.found) {
      throw new UsageError(
        `No schema ${schema} for org ${printableOrgId(orgId)}: provision it first (provision:tenant) — or, if \`status\` lists it under missing schemas, restore the schema from a backup.`,
      );
    }
    return fn(trx);
  });
}
