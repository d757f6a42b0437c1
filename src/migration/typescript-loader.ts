/**
 * Migrations written in TypeScript, run by the compiled CLI under plain `node`: tsx's loaders are
 * registered the first time a `.ts`/`.mts`/`.cts` migration is loaded, and never otherwise — a
 * JavaScript-only project (or a run with nothing pending) does not load tsx at all. Both of them:
 * the ES module loader for the files Knex would `import()`, the CommonJS one for the files it
 * would `require()` (load-module.ts), as `node --import tsx` registers both.
 */
import path from 'node:path';

const TYPESCRIPT_FILE = /\.(ts|mts|cts)$/;

let registered: Promise<void> | undefined;

/** Whether `file` needs a TypeScript loader to be imported. */
export function isTypeScriptFile(file: string): boolean {
  return TYPESCRIPT_FILE.test(path.basename(file));
}

/**
 * Registers tsx's ES module and CommonJS loaders in this process, once. Harmless when the process
 * already runs under tsx (`tsx src/cli/main.ts`, `node --import tsx`): the second registration
 * compiles the same way.
 *
 * @example
 *   if (isTypeScriptFile(file)) await ensureTypeScriptLoader();
 *   await import(pathToFileURL(file).href);
 */
export function ensureTypeScriptLoader(): Promise<void> {
  registered ??= Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]).then(([esm, cjs]) => {
    esm.register();
    cjs.register();
  });
  return registered;
}
