/**
 * Loads a migration or seed file the way Knex does (knex lib/migrations/util/import-file.js): a
 * file Node treats as an ES module (`.mjs`, or any other non-`.cjs` file under `"type": "module"`)
 * through `import()`, every other file through `require()` — TypeScript through tsx's loader in
 * both cases. `require()` matters: imported instead, a CommonJS file shows only the names Node's
 * export detection guesses (`module.exports = { up, down: … }` shows `up` but not `down`), while
 * `require()` returns `module.exports` whole, as Knex sees it.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureTypeScriptLoader, isTypeScriptFile } from './typescript-loader.ts';

const requireFile = createRequire(import.meta.url);

/** The `"type"` of the package.json nearest to each directory, read once per directory. */
const packageTypes = new Map<string, string | undefined>();

function packageTypeOf(directory: string): string | undefined {
  if (packageTypes.has(directory)) return packageTypes.get(directory);
  let type: string | undefined;
  const manifest = path.join(directory, 'package.json');
  if (fs.existsSync(manifest)) {
    try {
      type = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { type?: unknown }).type === 'module' ? 'module' : 'commonjs';
    } catch {
      type = 'commonjs'; // an unreadable package.json: Node itself would fail; Knex's reader says commonjs
    }
  } else {
    const parent = path.dirname(directory);
    type = parent === directory ? undefined : packageTypeOf(parent);
  }
  packageTypes.set(directory, type);
  return type;
}

/** Whether Knex would `import()` this file (else it `require()`s it): knex lib/migrations/util/is-module-type.js. */
export function knexImports(file: string): boolean {
  return file.endsWith('.mjs') || (!file.endsWith('.cjs') && packageTypeOf(path.dirname(path.resolve(file))) === 'module');
}

/**
 * The file's exports as Knex would see them: an ES module's namespace, or a CommonJS module's
 * `module.exports`. A file that `require()` cannot load in this Node version (an ES module reached
 * through require, on Node without require(esm)) is imported instead, as tenant-migrate always did.
 *
 * @example
 *   const exports = await loadModuleLikeKnex('/app/migrations/tenant/20260101_users.cjs');
 *   typeof exports.down; // 'function', also for `module.exports = { up, down: async () => … }`
 */
export async function loadModuleLikeKnex(file: string): Promise<Record<string, unknown>> {
  if (isTypeScriptFile(file)) await ensureTypeScriptLoader();
  if (!knexImports(file)) {
    try {
      return requireFile(file) as Record<string, unknown>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM' && (error as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ASYNC_MODULE') throw error;
    }
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/**
 * An exported member wherever Knex finds it (the module's own export), else on `default` — Knex
 * does not unwrap `export default { up, down }`, tenant-migrate always has. A function stays bound
 * to the object it was found on, as when Knex calls `migration.up(knex)`.
 *
 * @example
 *   const up = exportedMember(exports, 'up');
 */
export function exportedMember(exports: Record<string, unknown>, name: string): unknown {
  const fallback = exports.default;
  const holder = exports[name] === undefined && fallback !== null && typeof fallback === 'object' ? (fallback as Record<string, unknown>) : exports;
  const value = holder[name];
  return typeof value === 'function' ? value.bind(holder) : value;
}
