/**
 * Plain Knex, the reference the migration-loading matrix compares tenant-migrate with: run as its
 * own process under `node --import tsx` (tsx's ES module and CommonJS loaders, as a TypeScript Knex
 * project runs its knexfile), it runs `knex.migrate.latest()` or `.rollback(undefined, true)` for
 * each directory given, each in a schema of its own, with `loadExtensions` for all six extensions.
 *
 * Usage: node --import tsx plain-knex-migrate.ts <latest|rollback> <json: [{ directory, schema }]>
 * (DATABASE_URL in the environment). Prints one JSON line: [{ schema, ok, error? }].
 */
import knexFactory from 'knex';

interface Job {
  directory: string;
  schema: string;
}

const [action, jobsJson] = process.argv.slice(2);
const jobs = JSON.parse(jobsJson ?? '[]') as Job[];
const results: { schema: string; ok: boolean; error?: string }[] = [];
for (const job of jobs) {
  const knex = knexFactory({
    client: 'pg',
    connection: process.env.DATABASE_URL,
    searchPath: [job.schema],
    pool: { min: 0, max: 2 },
    migrations: {
      directory: job.directory,
      schemaName: job.schema,
      loadExtensions: ['.js', '.cjs', '.mjs', '.ts', '.mts', '.cts'],
    },
  });
  try {
    await knex.raw('create schema if not exists ??', [job.schema]);
    if (action === 'latest') await knex.migrate.latest();
    else await knex.migrate.rollback(undefined, true);
    results.push({ schema: job.schema, ok: true });
  } catch (error) {
    results.push({ schema: job.schema, ok: false, error: (error as Error).message });
  } finally {
    await knex.destroy();
  }
}
console.log(JSON.stringify(results));
