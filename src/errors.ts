/**
 * The error classes every layer throws. The CLI boundary (src/cli/handle-error.ts) maps them to
 * exit codes, so nothing below it ever calls `process.exit`.
 */

/** Bad usage, bad input or bad configuration. Exit code 2, and nothing was changed. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = 2;
}

/** The database could not be reached or refused us. Exit code 1. Never carries a password. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  readonly exitCode = 1;
}

/** A migration (master or tenant) failed. Exit code 1; the message names what failed and why. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  readonly exitCode = 1;
}

/** Exit code an error maps to at the CLI boundary: 2 for usage errors, 1 for everything else. */
export function exitCodeOf(error: unknown): 1 | 2 {
  return error instanceof UsageError ? 2 : 1;
}
