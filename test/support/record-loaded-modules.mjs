// Preloaded with `node --import` by test/unit/cli-startup.test.ts: appends to $LOADED_MODULES_FILE
// the URL of every module the process loads from then on — ES modules through a resolve hook (it
// runs on the loader thread, hence the file), CommonJS ones from require.cache at exit.
import fs from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const file = process.env.LOADED_MODULES_FILE;
if (!file) throw new Error('record-loaded-modules.mjs needs LOADED_MODULES_FILE');

const hook = `
import fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (!resolved.url.startsWith('node:')) fs.appendFileSync(${JSON.stringify(file)}, resolved.url + '\\n');
  return resolved;
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);

process.on('exit', () => {
  const cached = Object.keys(createRequire(import.meta.url).cache).map((path) => pathToFileURL(path).href);
  fs.appendFileSync(file, cached.map((url) => `${url}\n`).join(''));
});
