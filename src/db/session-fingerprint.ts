/**
 * What a database session carries from one transaction to the next, as one text a run reads before
 * and after a tenant: settings set for the session, temporary tables, prepared statements, holdable
 * cursors, LISTEN channels and session advisory locks. Reading the statements a migration sent
 * cannot see all of it (a function it calls, dynamic SQL in a DO block), the session itself can. A
 * connection whose text changed is closed, so no other tenant inherits the change.
 */
import type { LockKey } from './advisory-lock.ts';

/**
 * A select-list expression (aliased `fingerprint`) to fold into a statement the run sends anyway.
 * Left out: the search_path (the executor sets it for the session and puts it back), the settings
 * of the transaction the first reading is taken in (BEGIN … ISOLATION LEVEL shows as a session
 * source there), and `ownLock`, the tenant's own session lock the executor may hold between transactions.
 */
export function sessionFingerprintSql(ownLock: LockKey): string {
  // Lock keys are the executor's own numbers, inlined as pg_locks shows them (oids: unsigned).
  const [classid, objid] = ownLock.map((key) => key >>> 0);
  return `concat_ws(' | ',
      'settings: ' || coalesce((select string_agg(name || '=' || setting, ', ' order by name) from pg_catalog.pg_settings where source = 'session' and name not in ('search_path', 'transaction_isolation', 'transaction_read_only', 'transaction_deferrable')), ''),
      'temporary relations: ' || (select count(*) from pg_catalog.pg_class where relnamespace = pg_catalog.pg_my_temp_schema()),
      'prepared statements: ' || (select count(*) from pg_catalog.pg_prepared_statements where from_sql),
      'holdable cursors: ' || (select count(*) from pg_catalog.pg_cursors where is_holdable),
      'LISTEN channels: ' || (select count(*) from pg_catalog.pg_listening_channels()),
      'advisory locks: ' || (select count(*) from pg_catalog.pg_locks where locktype = 'advisory' and pid = pg_catalog.pg_backend_pid()
                                and not (classid::int8 = ${classid} and objid::int8 = ${objid} and objsubid = 2))
    ) as fingerprint`;
}
