/**
 * Advisory lock keys. Locks are taken per schema (never one global key that would serialise the
 * fleet) and always as transaction- or session-scoped advisory locks, which PostgreSQL releases when
 * the transaction or connection ends — a killed run cannot leave a lock behind (unlike Knex's lock
 * row: knex issues #1217, #2502, #3538).
 */
import { createHash } from 'node:crypto';

/** First half of every key: tenant-migrate's namespace in the advisory lock space ("tmig"). */
const LOCK_CLASS = 0x746d6967 | 0;

export type LockKey = readonly [number, number];

/** The lock that guards one schema's migrations (tenant or public). */
export function schemaLockKey(schema: string): LockKey {
  return [LOCK_CLASS, createHash('sha256').update(`schema:${schema}`).digest().readInt32BE(0)];
}

/** The lock that guards creating or upgrading the registry table itself. */
export const REGISTRY_LOCK_KEY: LockKey = [LOCK_CLASS, 0];
