/** `migrate:make:*`: a new timestamped TypeScript migration from a typed template. */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';

const TEMPLATE = `import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // e.g. await knex.schema.createTable('things', (table) => { table.increments('id'); });
}

export async function down(knex: Knex): Promise<void> {
  // undo exactly what up() did, e.g. await knex.schema.dropTable('things');
}
`;

/** YYYYMMDDHHMMSS in UTC, Knex's migration name prefix. */
export function timestamp(date = new Date()): string {
  return date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * Writes `<directory>/<timestamp>_<name>.ts` and returns its path. The name must be letters,
 * digits, `_` or `-` (no path separators, no spaces). The timestamp is bumped past the newest
 * existing file so the new migration always sorts last.
 *
 * @example makeMigration('migrations/tenant', 'add_nickname') // → migrations/tenant/20260201120000_add_nickname.ts
 */
export function makeMigration(directory: string, name: string, now = new Date()): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,120}$/.test(name)) {
    throw new UsageError(
      `Invalid migration name ${JSON.stringify(name)}: use letters, digits, "_" and "-" only (no spaces or path separators), e.g. add_nickname.`,
    );
  }
  if (!fs.existsSync(directory)) throw new UsageError(`The migrations directory ${directory} does not exist.`);
  const newest = fs.readdirSync(directory).filter((file) => /^\d{14}_/.test(file)).sort().at(-1)?.slice(0, 14);
  let stamp = timestamp(now);
  if (newest && stamp <= newest) stamp = String(Number(newest) + 1);
  const file = path.join(directory, `${stamp}_${name}.ts`);
  fs.writeFileSync(file, TEMPLATE, { flag: 'wx' });
  return file;
}

const SEED_TEMPLATE = `import type { Knex } from 'knex';

/**
 * Runs in name order with the other seeds, in one transaction (per tenant, for tenant seeds: the
 * search_path is the tenant's schema, then public). It must be re-runnable: upsert, or insert …
 * on conflict do nothing — seeding again is how new defaults reach existing tenants.
 */
export async function seed(knex: Knex): Promise<void> {
  // e.g. await knex('org_settings').insert({ key: 'locale', value: { default: 'en' } }).onConflict('key').ignore();
}
`;

/**
 * Writes `<directory>/<timestamp>_<name>.ts`, a typed seed, creating the directory when needed;
 * returns its path. Names as for migrations; the timestamp keeps seeds in the order they were made.
 *
 * @example makeSeed('seeds/tenant', 'default_settings') // → seeds/tenant/20260201120000_default_settings.ts
 */
export function makeSeed(directory: string, name: string, now = new Date()): string {
  fs.mkdirSync(directory, { recursive: true });
  const file = makeMigration(directory, name, now);
  fs.writeFileSync(file, SEED_TEMPLATE);
  return file;
}
