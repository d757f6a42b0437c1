/**
 * The release ledger: which tenant migrations each fleet-wide change added, so that
 * `rollback:tenants` undoes "the release" — not each tenant's newest Knex batch, which for an org
 * provisioned since is its whole tree (issue 14).
 *
 * One row per change, in `tenant_migrate_releases` next to the registry:
 * - `baseline`: the tree as it stood when the ledger started (or what every registered tenant
 *   already had then). A plain rollback never undoes it, so a newly provisioned org keeps its tables;
 * - `release`: the files a later `migrate:tenants` or `provision:tenant` run found that no active
 *   row covered yet.
 *
 * A row is written and committed BEFORE any tenant is touched, under the registry's advisory lock,
 * so a run killed midway still leaves the record of what it was applying. Which release a plain
 * rollback undoes is judged from the tenants' own bookkeeping (`newestHeldRelease`); a row is marked
 * `rolled_back_at` once no tenant holds it: a failed or killed rollback is simply run again.
 */
import type { Knex } from 'knex';
import { READ_COMMITTED } from '../db/isolation.ts';
import { REGISTRY_LOCK_KEY } from '../db/advisory-lock.ts';
import { readAppliedOfSchemas } from '../migration/bookkeeping.ts';
import { quoteIdentifier } from '../db/quote.ts';
import { relationExists } from '../db/relation-exists.ts';
import { registrySql, type RegistryTable } from './registry-table.ts';

export const RELEASES_TABLE = 'tenant_migrate_releases';

export interface Release {
  id: number;
  kind: 'baseline' | 'release';
  /** Tenant migration file names, sorted. */
  migrations: string[];
}

function ledgerSql(registry: RegistryTable): string {
  return `${quoteIdentifier(registry.schema)}.${quoteIdentifier(RELEASES_TABLE)}`;
}

/** Takes the ledger's lock in `trx`, creating the table on first use. Returns the active rows, oldest first. */
async function lockLedger(trx: Knex.Transaction, registry: RegistryTable): Promise<Release[]> {
  const ledger = ledgerSql(registry);
  await trx.raw('select pg_advisory_xact_lock(?, ?)', REGISTRY_LOCK_KEY);
  if (!(await ledgerExists(trx, registry))) {
    await trx.raw(`
      create table ${ledger} (
        id bigserial primary key,
        kind text not null check (kind in ('baseline', 'release')),
        migrations text[] not null,
        created_at timestamptz not null default now(),
        rolled_back_at timestamptz
      )`);
  }
  const { rows } = await trx.raw<{ rows: Release[] }>(
    `select id, kind, migrations from ${ledger} where rolled_back_at is null order by id`,
  );
  return rows;
}

async function ledgerExists(knex: Knex, registry: RegistryTable): Promise<boolean> {
  return relationExists(knex, registry.schema, RELEASES_TABLE);
}

/**
 * Records the files of the tree that no active release covers yet, before a run applies them.
 * The first time (no active row), what every registered tenant already has — the files up to the
 * oldest version in the registry, or the whole tree when no tenant has any — becomes the baseline,
 * and only the rest a release.
 *
 * @example
 *   await recordRelease(knex, { schema: 'public', table: 'tenants' }, source.names);
 *   // → { id: 2, kind: 'release', migrations: ['20260201000005_invoices.ts'] }
 */
export async function recordRelease(knex: Knex, registry: RegistryTable, names: readonly string[]): Promise<Release | undefined> {
  return knex.transaction(async (trx) => {
    const active = await lockLedger(trx, registry);
    const covered = new Set(active.flatMap((release) => release.migrations));
    const fresh = names.filter((name) => !covered.has(name));
    if (fresh.length === 0) return undefined;
    let baseline: string[] = [];
    let added = fresh;
    if (active.length === 0) {
      const { rows } = await trx.raw<{ rows: { oldest: string | null }[] }>(
        `select min(migration_version) as oldest from ${registrySql(registry)}`,
      );
      const oldest = rows[0]?.oldest ?? null;
      baseline = oldest === null ? fresh : fresh.filter((name) => name <= oldest);
      added = oldest === null ? [] : fresh.filter((name) => name > oldest);
    }
    const ledger = [registry.schema, RELEASES_TABLE];
    if (baseline.length > 0) await trx.raw("insert into ??.?? (kind, migrations) values ('baseline', ?)", [...ledger, baseline]);
    if (added.length === 0) return undefined;
    const { rows } = await trx.raw<{ rows: Release[] }>(
      "insert into ??.?? (kind, migrations) values ('release', ?) returning id, kind, migrations",
      [...ledger, added],
    );
    return rows[0];
  }, READ_COMMITTED);
}

/**
 * The release a plain `rollback:tenants` undoes in `schemas` (the tenants the run works on): the
 * newest release that one of them still holds, judged from their own `knex_migrations` — not from
 * the ledger's "not rolled back yet" mark alone, which a rollback of some tenants (`--tenant`), a
 * failed tenant or a restored backup leaves behind the facts. Undefined: none of them holds a
 * release, only the baseline they were provisioned with (issue 20, item 5).
 *
 * Read without the tenants' locks: each tenant's own plan is made again under its lock
 * (plan.ts `planDown`), which refuses to undo the release beneath a newer migration that a run
 * applied meanwhile.
 *
 * @example
 *   await newestHeldRelease(knex, registry, ['tid_cf4116b064']);
 *   // → { id: 3, kind: 'release', migrations: ['20260301000005_invoices.ts'] }
 */
export async function newestHeldRelease(knex: Knex, registry: RegistryTable, schemas: readonly string[]): Promise<Release | undefined> {
  if (!(await ledgerExists(knex, registry))) return undefined;
  const rows = await everyRow(knex, registry);
  return newestReleaseHolding(rows, await heldNames(knex, schemas));
}

/**
 * Pure: of the ledger's rows (oldest first, retired ones too), the newest release owning a migration
 * in `held`. A migration belongs to the newest row that lists it (a release rolled back and applied
 * again is listed twice; a baseline recorded after `--all` owns what it lists), so the release
 * returned keeps only the migrations it owns. Retired rows count: a tenant restored from a backup,
 * or migrated by a run that started before the release was retired, still holds it.
 *
 * @example
 *   newestReleaseHolding([{ id: 1, kind: 'baseline', migrations: ['a'] }, { id: 2, kind: 'release', migrations: ['b'] }], new Set(['a']));
 *   // → undefined (only the baseline is held)
 */
export function newestReleaseHolding(rows: readonly Release[], held: ReadonlySet<string>): Release | undefined {
  const owner = new Map<string, Release>();
  for (const row of [...rows].sort((a, b) => a.id - b.id)) for (const name of row.migrations) owner.set(name, row);
  let newest: Release | undefined;
  for (const name of held) {
    const row = owner.get(name);
    if (row?.kind === 'release' && (newest === undefined || row.id > newest.id)) newest = row;
  }
  if (newest === undefined) return undefined;
  return { ...newest, migrations: newest.migrations.filter((name) => owner.get(name) === newest) };
}

/**
 * After a plain rollback: marks `release` rolled back when no registered tenant holds any of its
 * migrations any more — also after a `--tenant` rollback that undid it in the last tenants holding
 * it — so the next `migrate:tenants` that applies those files records them as a new release. A
 * tenant that still holds it (a failure, one outside `--tenant`) keeps it active.
 */
export async function retireReleaseIfUndone(knex: Knex, registry: RegistryTable, release: Release): Promise<boolean> {
  const schemas = await knex.withSchema(registry.schema).from(registry.table).pluck('schema_name');
  const held = await heldNames(knex, schemas as string[]);
  if (release.migrations.some((name) => held.has(name))) return false;
  await knex.raw('update ??.?? set rolled_back_at = now() where id = ? and rolled_back_at is null', [registry.schema, RELEASES_TABLE, release.id]);
  return true;
}

async function everyRow(knex: Knex, registry: RegistryTable): Promise<Release[]> {
  const { rows } = await knex.raw<{ rows: Release[] }>(`select id, kind, migrations from ${ledgerSql(registry)} order by id`);
  return rows.map((row) => ({ ...row, id: Number(row.id) }));
}

/** Every migration name applied in at least one of `schemas` (read a chunk of schemas per statement). */
async function heldNames(knex: Knex, schemas: readonly string[]): Promise<Set<string>> {
  const applied = await readAppliedOfSchemas(knex, schemas);
  const held = new Set<string>();
  for (const rows of applied.values()) for (const row of rows ?? []) held.add(row.name);
  return held;
}

/**
 * After a `--to` or `--all` rollback that succeeded in every tenant, makes the ledger say so:
 * everything after `to` is dropped from its rows (rows left empty are marked), or every row is
 * marked (`all`). A plain rollback settles with `retireReleaseIfUndone`.
 */
export async function settleRollback(knex: Knex, registry: RegistryTable, undone: { to: string } | { all: true }): Promise<void> {
  await knex.transaction(async (trx) => {
    const active = await lockLedger(trx, registry);
    const ledger = [registry.schema, RELEASES_TABLE];
    for (const row of active) {
      let keep: string[];
      if ('to' in undone) keep = row.migrations.filter((name) => name <= undone.to);
      else keep = [];
      if (keep.length === row.migrations.length) continue;
      if (keep.length === 0) await trx.raw('update ??.?? set rolled_back_at = now() where id = ?', [...ledger, row.id]);
      else await trx.raw('update ??.?? set migrations = ? where id = ?', [...ledger, keep, row.id]);
    }
  }, READ_COMMITTED);
}
