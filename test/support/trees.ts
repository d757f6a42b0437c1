/**
 * Migration trees for tests: the fixture folders (named after their scenario) and temporary copies
 * that a test can add files to or remove files from. `tenant-basic` is a whole tree; the other
 * tenant scenarios hold only what they add on top of its first migration.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { repoRoot } from './cli.ts';

export const fixturesDir = path.join(repoRoot, 'test/fixtures');

/** The path of a fixture tree, e.g. `fixture('tenant-basic')`. */
export function fixture(name: string): string {
  return path.join(fixturesDir, name);
}

const made: string[] = [];
afterAll(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A temporary copy of a fixture tree (optionally only its first `count` files), removed after the
 * test file. Add a file later with {@link addFromFixture}.
 */
export function copyTree(name: string, count?: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tm-tree-${name.replace(/\//g, '-')}-`));
  made.push(dir);
  const files = fs.readdirSync(fixture(name)).sort();
  for (const file of files.slice(0, count ?? files.length)) fs.copyFileSync(path.join(fixture(name), file), path.join(dir, file));
  return dir;
}

/** Copies one more file of a fixture tree into a temporary tree (a "new release"). */
export function addFromFixture(dir: string, name: string, file: string): void {
  fs.copyFileSync(path.join(fixture(name), file), path.join(dir, file));
}

/** Writes a migration into a tree: `up`'s body as given (it gets `knex`), and `down`'s (empty by default). */
export function writeMigration(dir: string, name: string, upBody: string, downBody = ''): void {
  fs.writeFileSync(path.join(dir, name), `export async function up(knex) {\n${upBody}\n}\nexport async function down(knex) {\n${downBody}\n}\n`);
}

/** The environment a CLI run needs for a database and two trees. */
export function treeEnv(databaseUrl: string, trees: { master?: string; tenant?: string }): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    MASTER_MIGRATIONS_DIR: trees.master ?? fixture('master-basic'),
    TENANT_MIGRATIONS_DIR: trees.tenant ?? fixture('tenant-basic'),
  };
}
