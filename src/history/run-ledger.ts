/**
 * The run history: one row per command that changes the database, in `public.tenant_migrate_runs`
 * — written when the command starts (outcome `running`) and completed when it ends (`ok` or
 * `failed`, with the summary and the failed tenants). A row still `running` whose process is gone
 * is reported `interrupted` (the process was killed, or the machine went away).
 *
 * The ledger must never fail or slow a migration: one row per run (never per tenant), created on
 * first use, and every ledger error becomes a warning.
 */
import os from 'node:os';
import type { Knex } from 'knex';
import { READ_COMMITTED } from '../db/isolation.ts';
import { relationExists } from '../db/relation-exists.ts';
import type { Actor } from './actor.ts';
import { tenantTimes, type TenantTimes } from './tenant-times.ts';

export const RUNS_TABLE = { schema: 'public', table: 'tenant_migrate_runs' } as const;
/** Advisory lock key that serialises creating the table (two first runs at once). */
const CREATE_LOCK: readonly [number, number] = [0x746d6967 | 0, 2];

export type Outcome = 'running' | 'ok' | 'failed' | 'interrupted';

export interface RunFailure {
  orgId?: string;
  schema?: string;
  error: string;
}

export interface RunRecord {
  id: number;
  command: string;
  args: string[];
  actor: Actor;
  startedAt: string;
  finishedAt: string | null;
  outcome: Outcome;
  summary: unknown;
  failures: RunFailure[];
  /** The run's per-tenant times as a fixed-bucket histogram; null for runs without tenants, or recorded before it was kept. */
  tenantTimes: TenantTimes | null;
}

/** Runs whose start created the table: discarding such a run removes the table again (nothing changed). */
const createdTableFor = new Set<number>();

/** Creates the table when it is absent; says whether this call created it. */
async function ensureRunsTable(knex: Knex): Promise<boolean> {
  if (await relationExists(knex, RUNS_TABLE.schema, RUNS_TABLE.table)) return false;
  return knex.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?, ?)', [...CREATE_LOCK]);
    // Another first run may have created it while this one waited for the lock.
    if (await relationExists(trx, RUNS_TABLE.schema, RUNS_TABLE.table)) return false;
    await trx.raw(
      `create table ??.?? (
         id bigserial primary key,
         command text not null,
         args jsonb not null default '[]',
         actor jsonb not null,
         started_at timestamptz not null default now(),
         finished_at timestamptz,
         outcome text not null default 'running' check (outcome in ('running', 'ok', 'failed')),
         summary jsonb,
         failures jsonb not null default '[]',
         tenant_ms_histogram jsonb
       )`,
      [RUNS_TABLE.schema, RUNS_TABLE.table],
    );
    await trx.raw("comment on table ??.?? is 'tenant-migrate: one row per command that changed the database (history)'", [RUNS_TABLE.schema, RUNS_TABLE.table]);
    return true;
  }, READ_COMMITTED);
}

/** Writes the `running` row; returns its id. */
export async function startRun(knex: Knex, run: { command: string; args: readonly string[]; actor: Actor }): Promise<number> {
  const created = await ensureRunsTable(knex);
  const { rows } = await knex.raw<{ rows: { id: string }[] }>(
    `insert into ??.?? (command, args, actor) values (?, ?::jsonb, jsonb_set(?::jsonb, '{databaseUser}', to_jsonb(current_user::text))) returning id`,
    [RUNS_TABLE.schema, RUNS_TABLE.table, run.command, JSON.stringify(run.args), JSON.stringify(run.actor)],
  );
  const id = Number(rows[0]!.id);
  if (created) createdTableFor.add(id);
  return id;
}

export async function finishRun(
  knex: Knex,
  id: number,
  end: { outcome: 'ok' | 'failed'; summary?: unknown; failures?: readonly RunFailure[]; tenantTimes?: TenantTimes },
): Promise<void> {
  const table = [RUNS_TABLE.schema, RUNS_TABLE.table];
  const values = [end.outcome, JSON.stringify(end.summary ?? null), JSON.stringify(end.failures ?? [])];
  if (!end.tenantTimes) {
    await knex.raw(`update ??.?? set finished_at = now(), outcome = ?, summary = ?::jsonb, failures = ?::jsonb where id = ?`, [...table, ...values, id]);
    return;
  }
  const update = () =>
    knex.raw(`update ??.?? set finished_at = now(), outcome = ?, summary = ?::jsonb, failures = ?::jsonb, tenant_ms_histogram = ?::jsonb where id = ?`, [
      ...table,
      ...values,
      JSON.stringify(end.tenantTimes),
      id,
    ]);
  try {
    await update();
  } catch (error) {
    // A table made by an older tenant-migrate has no histogram column yet: added here, once, when
    // a run first has one to store (never on every run: ADD COLUMN takes an exclusive lock).
    if ((error as { code?: string }).code !== '42703') throw error;
    await knex.raw('alter table ??.?? add column if not exists tenant_ms_histogram jsonb', table);
    await update();
  }
}

/**
 * Removes a run's row: the command stopped on bad input (exit 2), which changes nothing — not even
 * the history. When that run's start created the table and no other run has written to it since,
 * the table goes too (checked under an exclusive lock, so a concurrent run's row is never lost).
 */
export async function discardRun(knex: Knex, id: number): Promise<void> {
  const table = [RUNS_TABLE.schema, RUNS_TABLE.table];
  if (!createdTableFor.delete(id)) {
    await knex.raw('delete from ??.?? where id = ?', [...table, id]);
    return;
  }
  await knex.transaction(async (trx) => {
    await trx.raw('lock table ??.?? in access exclusive mode', table);
    await trx.raw('delete from ??.?? where id = ?', [...table, id]);
    const { rows } = await trx.raw<{ rows: { empty: boolean }[] }>('select not exists (select from ??.??) as empty', table);
    if (rows[0]?.empty) await trx.raw('drop table ??.??', table);
  }, READ_COMMITTED);
}

/**
 * The newest runs first (or the one with `id`). No table yet: no runs.
 * A `running` row whose process is gone — on this host, checked by its pid — is `interrupted`.
 */
export async function listRuns(knex: Knex, options: { limit?: number; id?: number } = {}): Promise<RunRecord[]> {
  if (!(await relationExists(knex, RUNS_TABLE.schema, RUNS_TABLE.table))) return [];
  // to_jsonb(run) reads the histogram whether or not the column exists (a table made by an older
  // tenant-migrate gets it only when a run first stores one).
  const query = knex
    .from(knex.raw('??.?? as run', [RUNS_TABLE.schema, RUNS_TABLE.table]))
    .select('id', 'command', 'args', 'actor', 'started_at', 'finished_at', 'outcome', 'summary', 'failures', knex.raw("to_jsonb(run) -> 'tenant_ms_histogram' as tenant_ms_histogram"))
    .orderBy('id', 'desc');
  if (options.id !== undefined) query.where('id', options.id);
  else query.limit(options.limit ?? 20);
  type Row = {
    id: string;
    command: string;
    args: string[];
    actor: Actor;
    started_at: Date;
    finished_at: Date | null;
    outcome: Outcome;
    summary: unknown;
    failures: RunFailure[];
    tenant_ms_histogram: TenantTimes | null;
  };
  return ((await query) as Row[]).map((row) => ({
    id: Number(row.id),
    command: row.command,
    args: row.args,
    actor: row.actor,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    outcome: row.outcome === 'running' && processGone(row.actor) ? 'interrupted' : row.outcome,
    summary: row.summary,
    failures: row.failures,
    tenantTimes: row.tenant_ms_histogram ?? null,
  }));
}

/** True when the actor's process ran on this host and no longer exists. */
function processGone(actor: Actor): boolean {
  if (actor.host !== os.hostname() || !Number.isInteger(actor.pid)) return false;
  try {
    process.kill(actor.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** What a command's result says for the ledger: its summary, its failed tenants, and its tenants' times. */
export function ledgerEntryOf(result: unknown): { summary?: unknown; failures: RunFailure[]; tenantTimes?: TenantTimes } {
  if (!result || typeof result !== 'object') return { failures: [] };
  const value = result as { summary?: unknown; tenants?: { orgId: string; schema: string; status: string; error?: string; ms?: number }[]; error?: string; ok?: boolean };
  const failures: RunFailure[] = (value.tenants ?? [])
    .filter((tenant) => tenant.status === 'failed')
    .map((tenant) => ({ orgId: tenant.orgId, schema: tenant.schema, error: tenant.error ?? 'failed' }));
  if (value.error && failures.length === 0) failures.push({ error: value.error });
  // A fleet result's summary, or the whole (small) result of a master/move/sync command without tenants.
  const { tenants: _tenants, ...rest } = value as Record<string, unknown>;
  const times = Array.isArray(value.tenants) ? tenantTimes(value.tenants.map((tenant) => ({ status: tenant.status, ms: tenant.ms ?? 0 }))) : undefined;
  return { summary: value.summary ?? rest, failures, ...(times ? { tenantTimes: times } : {}) };
}
