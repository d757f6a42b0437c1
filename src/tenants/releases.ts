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
 * so a run killed midway still leaves the record of what it was applying. A rollback marks it
 * `rolled_back_at` only when every tenant succeeded: a failed or killed rollback is simply run again.
 */
import type { Knex } from 'knex';
import { READ_COMMITTED } from '../db/isolation.ts';
import { REGISTRY_LOCK_KEY } from '../db/advisory-lock.ts';
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

/** The newest release not rolled back (never the baseline), or undefined when there is none. */
export async function newestRelease(knex: Knex, registry: RegistryTable): Promise<Release | undefined> {
  if (!(await ledgerExists(knex, registry))) return undefined;
  const { rows } = await knex.raw<{ rows: Release[] }>(
    `select id, kind, migrations from ${ledgerSql(registry)}
      where rolled_back_at is null and kind = 'release' order by id desc limit 1`,
  );
  return rows[0];
}

/**
 * After a rollback that succeeded in every tenant, makes the ledger say so: the rolled-back release
 * (`release`), everything after `to` (`to`; rows left empty are marked), or every row (`all`).
 */
export async function settleRollback(
  knex: Knex,
  registry: RegistryTable,
  undone: { release: Release } | { to: string } | { all: true },
): Promise<void> {
  await knex.transaction(async (trx) => {
    const active = await lockLedger(trx, registry);
    const ledger = [registry.schema, RELEASES_TABLE];
    for (const row of active) {
      let keep: string[];
      if ('release' in undone) keep = row.id === undone.release.id ? [] : row.migrations;
      else if ('to' in undone) keep = row.migrations.filter((name) => name <= undone.to);
      else keep = [];
      if (keep.length === row.migrations.length) continue;
      if (keep.length === 0) await trx.raw('update ??.?? set rolled_back_at = now() where id = ?', [...ledger, row.id]);
      else await trx.raw('update ??.?? set migrations = ? where id = ?', [...ledger, keep, row.id]);
    }
  }, READ_COMMITTED);
}
