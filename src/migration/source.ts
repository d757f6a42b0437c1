/**
 * Where migrations come from: a directory of Knex-format modules (`up`, `down`, optional
 * `config.transaction`). Names are listed once per directory and modules imported once per process,
 * and only when a migration actually has to run — a run with nothing pending imports nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { exportedMember, loadModuleLikeKnex } from './load-module.ts';

export interface MigrationModule {
  up(knex: Knex): Promise<unknown>;
  down?(knex: Knex): Promise<unknown>;
  /** `{ transaction: false }` runs the migration alone, outside the tenant's transaction. */
  config?: { transaction?: boolean };
}

export interface MigrationSource {
  directory: string;
  /** File names (with extension), sorted: the order migrations apply in. */
  names: readonly string[];
  load(name: string): Promise<MigrationModule>;
  /**
   * Migrations that, run up once in this process, sent nothing but plain DDL (replayable.ts), by
   * name, with that SQL: the executor replays it for the next tenants instead of running the
   * module again (replay-script.ts).
   */
  replays: Map<string, readonly string[]>;
}

const MIGRATION_FILE = /\.(ts|mts|cts|js|mjs|cjs)$/;

/** Lists a migrations directory. Declaration files and dotfiles are not migrations. */
export function listMigrationNames(directory: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(directory, { withFileTypes: true });
  } catch {
    throw new UsageError(`The migrations directory ${directory} does not exist or cannot be read.`);
  }
  return entries
    .filter((entry) => entry.isFile() && MIGRATION_FILE.test(entry.name) && !/\.d\.[mc]?ts$/.test(entry.name) && !entry.name.startsWith('.'))
    .map((entry) => entry.name)
    .sort();
}

/**
 * A migration source over a directory.
 *
 * @example
 *   const source = directorySource('migrations/tenant');
 *   source.names; // ['20260101000000_org_users.ts', …]
 *   const migration = await source.load(source.names[0]);
 */
export function directorySource(directory: string): MigrationSource {
  const names = listMigrationNames(directory);
  const loaded = new Map<string, Promise<MigrationModule>>();
  return {
    directory,
    names,
    replays: new Map(),
    load(name) {
      let module = loaded.get(name);
      if (!module) {
        module = importMigration(path.join(directory, name));
        loaded.set(name, module);
      }
      return module;
    },
  };
}

async function importMigration(file: string): Promise<MigrationModule> {
  // Each function where Knex finds it (CommonJS required, ES modules imported), else on `default`.
  const exports = await loadModuleLikeKnex(file);
  const [up, down, config] = ['up', 'down', 'config'].map((name) => exportedMember(exports, name));
  if (typeof up !== 'function') {
    throw new UsageError(`${path.basename(file)} is not a migration: it must export an async function up(knex) (and down).`);
  }
  return {
    up: up as MigrationModule['up'],
    ...(typeof down === 'function' ? { down: down as MigrationModule['down'] } : {}),
    ...(config !== null && typeof config === 'object' ? { config: config as MigrationModule['config'] } : {}),
  };
}

/** Whether a migration runs inside the tenant's transaction (the default) or alone. */
export function isTransactional(migration: MigrationModule): boolean {
  return migration.config?.transaction !== false;
}
