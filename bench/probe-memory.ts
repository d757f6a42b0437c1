/**
 * Peak server-backend memory of one CLI command (RssAnon of the tool's backends, sampled every
 * 100 ms), e.g.: DATABASE_URL=… pnpm exec tsx bench/probe-memory.ts status --verify --json
 */
import { runCli } from './cli-process.ts';
import { FIXTURE_DIR } from './fixture.ts';
import { sampleServerMemory } from './scale.ts';

const url = process.env.DATABASE_URL!;
const sampler = await sampleServerMemory(url);
const run = await runCli(process.argv.slice(2), { DATABASE_URL: url, TENANT_MIGRATIONS_DIR: process.env.TENANT_MIGRATIONS_DIR ?? FIXTURE_DIR });
await sampler.stop();
console.log(`exit ${run.exitCode}, ${(run.ms / 1000).toFixed(2)} s, client ${((run.peakRssKb ?? 0) / 1024).toFixed(0)} MB, server backend peak ${sampler.peakMb()?.toFixed(1)} MB`);
