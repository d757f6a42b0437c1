#!/usr/bin/env node
// The installed command: the compiled CLI in dist/ (built by `pnpm build`, and by `prepack` before
// publishing), run by plain node. TypeScript migrations load tsx on demand (src/migration/typescript-loader.ts).
import module from 'node:module';

// Node 22.1+: compiled code is cached on disk (under os.tmpdir(), keyed by file and Node version),
// so every start after the first skips most of the parsing. Node 20 has no such cache.
module.enableCompileCache?.();

let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes('dist/cli/main.js')) throw error;
  process.stderr.write(
    'tenant-migrate is not built: dist/cli/main.js is missing. In a clone of the repository run `pnpm build` (or use `pnpm tenant-migrate`, which runs from source).\n',
  );
  process.exit(2);
}
// Exits once stdout has taken the whole report: process.exit() at once would drop what a slow or
// non-blocking pipe has not taken yet (a --json report of a large fleet, cut short).
cli.runAndExit(process.argv);
