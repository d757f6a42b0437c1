#!/usr/bin/env node
// Runs the TypeScript CLI from source (no build step): tsx's loader compiles it on the fly.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exit(await main(process.argv));
