/**
 * The sessions that held a tenant up, as the report shows them: the shape (JSON `blockedBy`) and
 * the "held up by …" sentence. Pure, so the CLI's output can name blockers without loading the
 * monitor (db/blocker-monitor.ts) or the SQL parser it redacts queries with.
 */
export interface Blocker {
  pid: number;
  user: string | null;
  applicationName: string | null;
  state: string | null;
  /** How long its transaction has been open (ms), when visible. */
  transactionMs: number | null;
  /** Its current (or last) statement, literals replaced; null when hidden or none. */
  query: string | null;
}

export const HIDDEN_NOTE = 'state, transaction age and query hidden: the tool\'s role is not that user and lacks pg_read_all_stats';

/**
 * "held up by pid 4242 (app, psql, idle in transaction, transaction open 12.0 s): select …" — the
 * words of the progress line and of a tenant's error.
 */
export function describeBlockers(blockers: readonly Blocker[]): string {
  if (blockers.length === 0) return '';
  const one = (b: Blocker) => {
    if (b.pid === 0) return 'a prepared transaction (pid 0: see pg_prepared_xacts; COMMIT PREPARED or ROLLBACK PREPARED ends it)';
    const hidden = b.state === null && b.query === null && b.transactionMs === null;
    const facts = [b.user, b.applicationName ? b.applicationName : undefined, b.state ?? undefined, b.transactionMs !== null ? `transaction open ${(b.transactionMs / 1000).toFixed(1)} s` : undefined]
      .filter((fact) => fact !== undefined && fact !== null && fact !== '')
      .join(', ');
    return `pid ${b.pid} (${facts}${hidden ? `; ${HIDDEN_NOTE}` : ''})${b.query ? `: ${b.query}` : ''}`;
  };
  return `held up by ${blockers.map(one).join('; and ')}`;
}
