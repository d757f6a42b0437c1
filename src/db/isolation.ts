/**
 * The isolation every transaction of tenant-migrate states instead of assuming. Lock-then-read needs
 * each statement to see what committed before it started (READ COMMITTED): on a database or role
 * whose `default_transaction_isolation` is repeatable read or serializable, a read after the lock
 * would otherwise use a snapshot older than the lock — two runs could both apply a migration, or
 * fail each other with serialization errors.
 *
 * @example
 *   await knex.transaction(async (trx) => { … }, READ_COMMITTED);
 */
import type { Knex } from 'knex';

export const READ_COMMITTED: Knex.TransactionConfig = { isolationLevel: 'read committed' };
