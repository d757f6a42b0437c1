/**
 * `query:tenants --sql "<select …>"`: one read-only statement in every tenant, for support and
 * reporting. Two guards: PostgreSQL's parser must see exactly one SELECT (no `SELECT … INTO`), and
 * every tenant's transaction is READ ONLY with a statement timeout — the real guard, which also
 * stops what a SELECT can hide (a function that writes, nextval(), a data-modifying WITH) — and is
 * rolled back, never committed, for the few writes READ ONLY lets through (lo_create()); the
 * session is reset after each tenant (a session advisory lock, a SET without LOCAL).
 */
import type { Knex } from 'knex';
import { parseSql } from '../db/parse-sql.ts';
import { UsageError } from '../errors.ts';
import { forEachTenant, type ForEachTenantOptions } from './for-each-tenant.ts';

/** Default `statement_timeout` per tenant (ms). */
export const QUERY_TIMEOUT_MS = 30_000;

export interface QueryTenantsResult {
  ok: boolean;
  /** Every tenant's rows, each with `org_id` first, in org id order. */
  rows: Record<string, unknown>[];
  failed: { orgId: string; error: string }[];
}

/** A statement that is not one read: refused before any tenant is touched (exit 1, nothing run). */
export class NotAReadError extends Error {
  override readonly name = 'NotAReadError';
  readonly exitCode = 1;
}

/**
 * @example
 *   const { rows } = await queryTenants(knex, 'select count(*)::int as users from org_users');
 *   // [{ org_id: 'org_2abc…', users: 12 }, …]
 * @throws NotAReadError when `sql` is not exactly one SELECT.
 */
export async function queryTenants(
  knex: Knex,
  sql: string,
  options: Omit<ForEachTenantOptions, 'readOnly' | 'onResult'> & QueryTenantsStreaming = {},
): Promise<QueryTenantsResult> {
  await refuseAllButOneRead(sql);
  const { onRows, ...forEach } = options;
  const rows: Record<string, unknown>[] = [];
  const tagged = (orgId: string, value: Record<string, unknown>[]) => value.map((row) => ({ org_id: orgId, ...withoutOrgId(row) }));
  const { ok, results } = await forEachTenant<Record<string, unknown>[]>(
    knex,
    // Sent as typed: every `?` escaped, so Knex reads no placeholder in it (see refuseAllButOneRead).
    async (trx) => (await trx.raw(sql.replace(/\?/g, '\\?'))).rows as Record<string, unknown>[],
    {
      ...forEach,
      readOnly: true,
      rollback: true,
      statementTimeoutMs: options.statementTimeoutMs ?? QUERY_TIMEOUT_MS,
      // Streamed: each tenant's rows go out in org id order as soon as they are read, and are not kept.
      ...(onRows ? { onResult: (outcome) => (outcome.ok && outcome.value.length > 0 ? onRows(tagged(outcome.orgId, outcome.value)) : undefined) } : {}),
    },
  );
  const failed: QueryTenantsResult['failed'] = [];
  for (const result of results) {
    if (!result.ok) failed.push({ orgId: result.orgId, error: result.error });
    else if (!onRows) for (const row of tagged(result.orgId, result.value)) rows.push(row);
  }
  return { ok, rows, failed };
}

export interface QueryTenantsStreaming {
  /**
   * Receives each tenant's rows (tagged with org_id) in org id order as they arrive; the result's
   * `rows` is then empty. For fleets whose rows would not fit in memory at once.
   */
  onRows?(rows: Record<string, unknown>[]): void;
}

function withoutOrgId(row: Record<string, unknown>): Record<string, unknown> {
  const { org_id: _ours, ...rest } = row;
  return rest;
}

async function refuseAllButOneRead(sql: string): Promise<void> {
  // Knex drops backslashes in front of a `?` while it looks for placeholders: such text would
  // not reach PostgreSQL as typed.
  if (/\\\?/.test(sql)) {
    throw new UsageError("query:tenants cannot send a backslash right before '?' as typed; write the string another way (e.g. concat('\\', '?')). Nothing was run.");
  }
  let statements;
  try {
    statements = await parseSql(sql);
  } catch (error) {
    throw new NotAReadError(`query:tenants: the SQL does not parse: ${(error as Error).message}. Nothing was run.`);
  }
  const kinds = statements.map(({ stmt }) => Object.keys(stmt ?? {})[0] ?? '?');
  if (kinds.length !== 1) {
    throw new NotAReadError(`query:tenants runs exactly one statement; got ${kinds.length} (${kinds.join(', ') || 'none'}). Nothing was run.`);
  }
  const select = statements[0]!.stmt?.SelectStmt;
  if (!select) throw new NotAReadError(`query:tenants runs only a read (SELECT …); got ${kinds[0]}. Nothing was run.`);
  if (select.intoClause) throw new NotAReadError('query:tenants runs only a read; SELECT … INTO creates a table. Nothing was run.');
}
