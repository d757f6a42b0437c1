/**
 * Where the registry lives: `TENANT_REGISTRY_TABLE`, a table name optionally qualified by its
 * schema (default `public.tenants`). A name, not SQL: it is validated here and only ever reaches
 * SQL quoted as an identifier.
 */
import { quoteIdentifier } from '../db/quote.ts';
import { UsageError } from '../errors.ts';

export interface RegistryTable {
  schema: string;
  table: string;
}

export const DEFAULT_REGISTRY: RegistryTable = { schema: 'public', table: 'tenants' };

/** The comment that marks a table as tenant-migrate's registry (see registry.ts). */
export const REGISTRY_MARK = 'tenant-migrate registry';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * Parses `table` or `schema.table` (plain identifiers: letters, digits, `_`, `$`).
 *
 * @example
 *   parseRegistryTable('tm.tenants'); // { schema: 'tm', table: 'tenants' }
 *   parseRegistryTable('org_registry'); // { schema: 'public', table: 'org_registry' }
 * @throws UsageError naming the variable and the rule.
 */
export function parseRegistryTable(raw: string, variable = 'TENANT_REGISTRY_TABLE'): RegistryTable {
  const parts = raw.trim().split('.');
  const valid = parts.length >= 1 && parts.length <= 2 && parts.every((part) => IDENTIFIER.test(part));
  if (!valid) {
    throw new UsageError(
      `${variable} must be a table name, optionally with its schema (e.g. public.tenants or tm.org_registry: letters, digits and _ only), got "${raw}".`,
    );
  }
  return parts.length === 2 ? { schema: parts[0]!, table: parts[1]! } : { schema: 'public', table: parts[0]! };
}

/** The registry as quoted SQL: `"public"."tenants"`. */
export function registrySql(registry: RegistryTable): string {
  return `${quoteIdentifier(registry.schema)}.${quoteIdentifier(registry.table)}`;
}

/** The registry as a person reads it: `public.tenants`. */
export function registryName(registry: RegistryTable): string {
  return `${registry.schema}.${registry.table}`;
}
