/**
 * Checksums of applied migrations (as Flyway and Atlas keep them): the sha256 of each applied file,
 * line endings normalised, once per tree and file — not per tenant — in
 * `public.tenant_migrate_checksums`. A command that runs a tree compares first: a file edited after
 * it was applied stops it (exit 2, nothing written), naming the file and both hashes;
 * `checksums:accept` records the new content as intended.
 *
 * Only files applied somewhere are recorded — in `public.knex_migrations` for the master tree, in
 * at least one tenant for the tenant tree (the registry's largest migration count; the tree applies
 * in order) — so a migration that failed everywhere can still be fixed and run again. A rollback
 * forgets the files it left applied nowhere.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { REGISTRY_LOCK_KEY } from '../db/advisory-lock.ts';
import { READ_COMMITTED } from '../db/isolation.ts';
import { relationExists } from '../db/relation-exists.ts';
import { UsageError } from '../errors.ts';
import { registrySql, type RegistryTable } from '../tenants/registry-table.ts';
import { outOfOrder } from './plan.ts';
import type { MigrationSource } from './source.ts';

export const CHECKSUMS_TABLE = { schema: 'public', table: 'tenant_migrate_checksums' } as const;
const TABLE = [CHECKSUMS_TABLE.schema, CHECKSUMS_TABLE.table] as const;

export type Tree = 'master' | 'tenant';

export interface EditedFile {
  tree: Tree;
  name: string;
  /** The sha256 recorded when the file was applied. */
  recorded: string;
  /** The sha256 of the file now. */
  current: string;
}

/** An applied migration whose file changed since: exit 2, before anything is written. */
/**
 * An applied migration whose file is gone — deleted, or renamed (`.ts` to `.js` too): Knex calls the
 * directory corrupt. Running on would apply the new name as a new migration, or roll back the wrong
 * one; exit 2, before anything is written.
 */
export class MissingMigrationError extends UsageError {
  constructor(readonly tree: Tree, readonly missing: readonly string[], directory: string) {
    super(
      `${missing.join(', ')} (${tree} tree) ${missing.length === 1 ? 'is' : 'are'} applied${tree === 'tenant' ? ' in at least one tenant' : ''} but ${missing.length === 1 ? 'has' : 'have'} no file in ${directory} any more (deleted, or renamed). ` +
        'A migration that ran must keep its file and its name: restore it (rename it back). Nothing was changed.',
    );
  }
}

/**
 * A pending file named before the newest applied one (in the most-migrated tenant, or public):
 * it would run out of order there, fail in the tenants ahead and run in those behind — a fleet on
 * mixed versions. Exit 2 before anything is written (no release, no provisioned org).
 */
export class OutOfOrderMigrationError extends UsageError {
  constructor(readonly tree: Tree, readonly early: readonly string[], newestApplied: string) {
    super(
      `${early.join(', ')} (${tree} tree) ${early.length === 1 ? 'is' : 'are'} pending but sort${early.length === 1 ? 's' : ''} before the already applied ${newestApplied} — ` +
        'a new migration must have a name (timestamp) after the last applied one: give it a newer timestamp (migrate:make:tenant and migrate:make:master name new files correctly). Nothing was changed.',
    );
  }
}

export class EditedMigrationError extends UsageError {
  constructor(readonly edited: readonly EditedFile[]) {
    super(
      `${edited.map((file) => `${file.name} (${file.tree} tree) was edited after it was applied: sha256 ${file.current}, recorded ${file.recorded}`).join('; ')}. ` +
        'Undo the edit and put the change in a new migration, or, if the edit is intended (a comment, a fix that changes nothing applied), run checksums:accept ' +
        `${edited.map((file) => file.name).join(' ')}. Nothing was changed.`,
    );
  }
}

/** sha256 of a file's text with CRLF line endings read as LF: a checkout on Windows is no edit. */
export function fileChecksum(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file, 'utf8').replace(/\r\n/g, '\n')).digest('hex');
}

function checksumsOf(source: MigrationSource): Map<string, string> {
  return new Map(source.names.map((name) => [name, fileChecksum(path.join(source.directory, name))]));
}

async function tableExists(knex: Knex): Promise<boolean> {
  return relationExists(knex, ...TABLE);
}

async function ensureTable(knex: Knex): Promise<void> {
  if (await tableExists(knex)) return;
  await knex.transaction(async (trx) => {
    // Under the registry's lock: two first runs at once must not both create it.
    await trx.raw('select pg_advisory_xact_lock(?, ?)', REGISTRY_LOCK_KEY);
    await trx.raw(`create table if not exists ??.?? (
      tree text not null check (tree in ('master', 'tenant')),
      name text not null,
      sha256 text not null,
      recorded_at timestamptz not null default now(),
      primary key (tree, name)
    )`, TABLE);
  }, READ_COMMITTED);
}

async function recordedChecksums(knex: Knex, tree: Tree): Promise<Map<string, string>> {
  const rows = (await knex.raw<{ rows: { name: string; sha256: string }[] }>('select name, sha256 from ??.?? where tree = ?', [...TABLE, tree])).rows;
  return new Map(rows.map((row) => [row.name, row.sha256]));
}

function editedFiles(tree: Tree, recorded: Map<string, string>, current: Map<string, string>): EditedFile[] {
  return [...recorded]
    .filter(([name, sha256]) => current.has(name) && current.get(name) !== sha256)
    .map(([name, sha256]) => ({ tree, name, recorded: sha256, current: current.get(name)! }));
}

/** What a command that runs a tree does with checksums: compared before, brought up to date after. */
export interface TreeChecksums {
  /**
   * After the run: records the files now applied and forgets those applied nowhere. `untouched`:
   * the run opened no schema, so what is applied is what was read before it (not read again).
   */
  sync(knex: Knex, options?: { untouched?: boolean }): Promise<void>;
}

/**
 * Compares the tree with what was recorded; call before anything is written.
 * @throws EditedMigrationError (exit 2) naming every edited file.
 */
export async function checkTree(knex: Knex, tree: Tree, source: MigrationSource, applied: AppliedNames, onWarning?: (message: string) => void, direction: 'up' | 'down' = 'up'): Promise<TreeChecksums> {
  await ensureTable(knex);
  const { current, recorded, appliedBefore } = await compareTree(knex, tree, source, applied, direction);
  // A tree applied before checksums were kept: its files are recorded as they are now, said once.
  const unrecorded = recorded.size === 0 ? appliedBefore.filter((name) => current.has(name)) : [];
  return {
    // A failure here is a warning: the run's result (what each tenant did) must still be reported,
    // and what is not recorded now is recorded by the next run.
    sync: (knex, options) =>
      syncTree(knex, options?.untouched === true).catch((error: unknown) => {
        onWarning?.(`the checksums of the ${tree} tree were not brought up to date (${error instanceof Error ? error.message : String(error)}): the next run records them.`);
      }),
  };

  async function syncTree(knex: Knex, untouched: boolean): Promise<void> {
    const names = new Set(untouched ? appliedBefore : await applied(knex));
    const add = source.names.filter((name) => names.has(name) && !recorded.has(name));
    const drop = source.names.filter((name) => !names.has(name) && recorded.has(name));
    if (add.length === 0 && drop.length === 0) return;
    await knex.transaction(async (trx) => {
      if (add.length > 0) {
        await trx.raw('insert into ??.?? (tree, name, sha256) select ?, * from unnest(?::text[], ?::text[]) on conflict do nothing', [...TABLE, tree, add, add.map((name) => current.get(name)!)]);
      }
      if (drop.length > 0) await trx.raw('delete from ??.?? where tree = ? and name = any(?::text[])', [...TABLE, tree, drop]);
    }, READ_COMMITTED);
    if (unrecorded.length > 0) {
      onWarning?.(
        `recorded the checksums of ${unrecorded.length} ${tree} migration${unrecorded.length === 1 ? '' : 's'} applied before checksums were kept (${TABLE.join('.')}), as the files are now: ` +
          'from now on, an edit to an applied migration stops migrate, rollback and provision.',
      );
    }
  }
}

/**
 * The checks of `checkTree` without creating or writing anything (for `--dry-run`): the same exit 2
 * for a file that is gone or edited.
 */
export async function assertTreeUnchanged(knex: Knex, tree: Tree, source: MigrationSource, applied: AppliedNames, direction: 'up' | 'down'): Promise<void> {
  await compareTree(knex, tree, source, applied, direction);
}

async function compareTree(knex: Knex, tree: Tree, source: MigrationSource, applied: AppliedNames, direction: 'up' | 'down') {
  const current = checksumsOf(source);
  const recorded = (await tableExists(knex)) ? await recordedChecksums(knex, tree) : new Map<string, string>();
  // What the bookkeeping says is applied (not what was recorded: a reset bookkeeping forgets it).
  const appliedBefore = await applied(knex);
  const missing = appliedBefore.filter((name) => !current.has(name));
  if (missing.length > 0) throw new MissingMigrationError(tree, missing, source.directory);
  const edited = editedFiles(tree, recorded, current);
  if (edited.length > 0) throw new EditedMigrationError(edited);
  // Only a run that applies cares; a rollback may go on (it undoes what is applied).
  if (direction === 'up') {
    const { early, newestApplied } = outOfOrder(source.names, appliedBefore);
    if (early.length > 0) throw new OutOfOrderMigrationError(tree, early, newestApplied!);
  }
  return { current, recorded, appliedBefore };
}

/** Reads which files of a tree are applied somewhere, after a run. */
export type AppliedNames = (knex: Knex) => Promise<readonly string[]>;

/** The master tree's applied files: public.knex_migrations. */
export const masterApplied: AppliedNames = async (knex) => {
  if (!(await relationExists(knex, 'public', 'knex_migrations'))) return [];
  return (await knex.raw<{ rows: { name: string }[] }>('select name from public.knex_migrations')).rows.map((row) => row.name);
};

/**
 * The tenant tree's files applied in at least one tenant: the bookkeeping of the tenant that applied
 * the most (tenants apply the tree in order, so its list holds every other's) — read by name, never
 * guessed from a count: a file added in the middle of the tree is not applied anywhere.
 */
export function tenantApplied(registry: RegistryTable): AppliedNames {
  return async (knex) => {
    if (!(await relationExists(knex, registry.schema, registry.table))) return [];
    // The most-migrated tenants first, then whether their schema is there: a top-N sort of the
    // registry, not a join of every row with pg_namespace (0.15 s instead of 0.56 s at 100,000
    // tenants). Only when none of the first 20 has its schema is the whole registry joined.
    const most = (limit: string) =>
      `select schema_name from (
         select schema_name, migration_count, org_id from ${registrySql(registry)} where migration_count > 0 order by migration_count desc, org_id ${limit}
       ) r where exists (select from pg_catalog.pg_namespace n where n.nspname = r.schema_name)
       order by migration_count desc, org_id limit 1`;
    let { rows } = await knex.raw<{ rows: { schema_name: string }[] }>(most('limit 20'));
    if (rows.length === 0) ({ rows } = await knex.raw<{ rows: { schema_name: string }[] }>(most('')));
    const schema = rows[0]?.schema_name;
    if (schema === undefined || !(await relationExists(knex, schema, 'knex_migrations'))) return [];
    return (await knex.raw<{ rows: { name: string }[] }>('select name from ??.knex_migrations', [schema])).rows.map((row) => row.name);
  };
}

/** For `status`: the edited files of both trees (none when nothing was recorded yet). Reads only. */
export async function findEditedFiles(knex: Knex, trees: readonly { tree: Tree; source: MigrationSource }[]): Promise<EditedFile[]> {
  if (!(await tableExists(knex))) return [];
  const edited: EditedFile[] = [];
  for (const { tree, source } of trees) edited.push(...editedFiles(tree, await recordedChecksums(knex, tree), checksumsOf(source)));
  return edited;
}

/** A path names a tree's file only when it points into that tree's directory (links resolved). */
function samePath(a: string, b: string): boolean {
  const real = (dir: string) => {
    try {
      return fs.realpathSync(dir);
    } catch {
      return path.resolve(dir);
    }
  };
  return real(a) === real(b);
}

export interface AcceptedFile extends EditedFile {
  /** False when the recorded checksum already matched (nothing to accept). */
  changed: boolean;
}

/**
 * `checksums:accept`: records the current content of applied files as intended. Each name must be
 * a migration of the master or the tenant tree: a bare file name means it in either tree, a path
 * only the tree whose directory it is in.
 * @throws UsageError (exit 2, nothing changed) for a file of neither tree, or one never applied.
 */
export async function acceptChecksums(knex: Knex, files: readonly string[], trees: readonly { tree: Tree; source: MigrationSource }[]): Promise<AcceptedFile[]> {
  const wanted = files.map((file) => {
    const name = path.basename(file);
    const found = trees.filter(({ source }) => source.names.includes(name) && (name === file || samePath(path.dirname(file), source.directory)));
    if (found.length === 0) {
      const where = name === file ? 'is not a migration of' : fs.existsSync(file) ? 'is not in' : 'does not exist; give a migration of';
      throw new UsageError(`${file} ${where} the master tree (${trees[0]?.source.directory}) or the tenant tree (${trees[1]?.source.directory}). Nothing was changed.`);
    }
    return found.map(({ tree, source }) => ({ tree, name, current: fileChecksum(path.join(source.directory, name)) }));
  });
  // Nothing recorded yet: every name is refused below, and bad input creates no table.
  if (!(await tableExists(knex))) throw new UsageError(`${wanted[0]?.[0]?.name ?? 'that file'} has no recorded checksum: it is not applied anywhere yet, so there is nothing to accept. Nothing was changed.`);
  return knex.transaction(async (trx) => {
    const accepted: AcceptedFile[] = [];
    for (const candidates of wanted) {
      for (const file of candidates) {
        const row = (await trx.raw<{ rows: { sha256: string }[] }>('select sha256 from ??.?? where tree = ? and name = ? for update', [...TABLE, file.tree, file.name])).rows[0];
        if (!row) continue;
        await trx.raw('update ??.?? set sha256 = ?, recorded_at = now() where tree = ? and name = ?', [...TABLE, file.current, file.tree, file.name]);
        accepted.push({ ...file, recorded: row.sha256, changed: row.sha256 !== file.current });
      }
      if (!accepted.some((file) => file.name === candidates[0]!.name)) {
        throw new UsageError(`${candidates[0]!.name} has no recorded checksum: it is not applied anywhere yet, so there is nothing to accept. Nothing was changed.`);
      }
    }
    return accepted;
  }, READ_COMMITTED);
}
