/**
 * Whether a transaction committed, asked of the server on a connection of its own. For when the
 * connection that sent COMMIT was lost before the answer came back: then only the server knows.
 * The COMMIT may have been carried out, or never have arrived (the backend then aborts the
 * transaction when it notices its client is gone). `txid_status` answers from the commit log.
 */
import type { Knex } from 'knex';

export type TransactionOutcome = 'committed' | 'aborted' | 'unknown';

/** How long to wait for a backend to notice its client is gone (its transaction is "in progress" until then). */
const SETTLE_MS = 10_000;

export async function transactionOutcome(knex: Knex, xid: string): Promise<TransactionOutcome> {
  // A raw connection outside the pool (Knex's dialect seam): the pool may be one connection wide,
  // and the lost one is still checked out by the run that asks.
  let connection: unknown;
  try {
    connection = await knex.client.acquireRawConnection();
  } catch {
    return 'unknown';
  }
  try {
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      const { rows } = await knex.raw<{ rows: { status: string | null }[] }>('select txid_status(?::bigint) as status', [xid]).connection(connection);
      const status = rows[0]?.status;
      if (status === 'committed' || status === 'aborted') return status;
      // null: too old for the commit log to tell (not after a few seconds); "in progress": wait.
      if (status !== 'in progress' || Date.now() > deadline) return 'unknown';
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch {
    return 'unknown';
  } finally {
    await knex.client.destroyRawConnection(connection).catch(() => {});
  }
}

/** An error the server sent (it has a severity), as opposed to a connection lost or refused. */
export function isServerError(error: unknown): boolean {
  return typeof (error as { severity?: unknown } | null)?.severity === 'string';
}

/** Node's socket errors, and the pg driver's words for a connection that went away. */
const CONNECTION_LOST = /^(?:ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|ENOTCONN|EHOSTUNREACH|ENETUNREACH)$/;

/** A connection lost or refused (not an answer from the server, nor a migration's own error). */
export function isConnectionError(error: unknown): boolean {
  if (isServerError(error) || !(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return (typeof code === 'string' && CONNECTION_LOST.test(code)) || /Connection (?:terminated|ended)|timeout exceeded when trying to connect|Timeout acquiring a connection/i.test(error.message);
}
