/**
 * Quoting for the few places where SQL text is assembled by hand (a script sent in one round
 * trip cannot carry bound parameters). Only identifiers and values tenant-migrate generates itself
 * (schema names, migration file names, digests) go through here — never an org id.
 */

/** `name` as a quoted identifier: `tid_x` → `"tid_x"`. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `value` as a string literal (standard_conforming_strings, PostgreSQL's default since 9.1). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * The search_path of a schema's migrations: the schema (quoted), then `public`, so extension types
 * installed there (pgvector's `vector`) resolve.
 */
export function searchPathFor(schema: string): string {
  return schema === 'public' ? 'public' : `${quoteIdentifier(schema)}, public`;
}
