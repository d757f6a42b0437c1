/** `--to <migration>`: which file a rollback stops at, checked against the tree before anything runs. */
import { UsageError } from '../errors.ts';

const EXTENSION = /\.(ts|mts|cts|js|mjs|cjs)$/;

/**
 * The file of the tree that `--to` names — exactly, or without its extension.
 *
 * @example
 *   undoTarget(['20260101000001_users.ts', '20260101000002_notes.ts'], '20260101000001_users', 'tenant');
 *   // → '20260101000001_users.ts'
 * @throws UsageError (exit 2, nothing changed) when no file of the tree has that name.
 */
export function undoTarget(names: readonly string[], migration: string, tree: 'tenant' | 'master'): string {
  const found = names.find((name) => name === migration || name.replace(EXTENSION, '') === migration);
  if (found !== undefined) return found;
  const example = names.length > 0 ? ` (e.g. ${names.at(-1)})` : '';
  throw new UsageError(
    `--to ${JSON.stringify(migration)}: no file of that name in the ${tree} migrations directory; name a migration of the tree${example}. Nothing was changed.`,
  );
}
