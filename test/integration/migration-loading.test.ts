/**
 * Migration modules are loaded as Knex loads them: every way of exporting `up`, `down` and `config`
 * (CommonJS `exports.x`, `module.exports = {…}`, `module.exports.down` added later, ES module named
 * exports, `export default {…}`), in every file kind (`.js` under "type": "module" and "commonjs",
 * `.cjs`, `.mjs`, `.ts`, `.mts`, `.cts`), run up and down through tenant-migrate beside plain Knex
 * (test/support/plain-knex-migrate.ts, with tsx for TypeScript), comparing what each leaves in the
 * database. Every migration creates a table and an index on it; with `config = { transaction: false }`
 * the index is built CONCURRENTLY, which PostgreSQL refuses inside a transaction — so the case also
 * proves the config was found and honoured.
 *
 * Where plain Knex refuses a shape, the expected result says so and tenant-migrate keeps accepting
 * it: Knex does not unwrap `export default { up, down }` ("must have both an up and down function").
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantSchemaName } from '../../src/tenants/naming.ts';
import { cliEnv, repoRoot, runCli } from '../support/cli.ts';
import { useFreshDatabase } from '../support/database.ts';
import { dropAllTenants } from '../support/fleet.ts';
import { fixture, treeEnv } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_loading' });

type PackageType = 'module' | 'commonjs';
type Shape = 'exports' | 'module_exports' | 'then_down' | 'esm_named' | 'esm_default';

const COMMONJS_SHAPES: Shape[] = ['exports', 'module_exports', 'then_down'];
const ESM_SHAPES: Shape[] = ['esm_named', 'esm_default'];

/** The file kinds of each package type, with the export shapes their syntax allows. */
const KINDS: Record<PackageType, { ext: string; shapes: Shape[] }[]> = {
  module: [
    { ext: 'js', shapes: ESM_SHAPES },
    { ext: 'mjs', shapes: ESM_SHAPES },
    { ext: 'cjs', shapes: COMMONJS_SHAPES },
    { ext: 'ts', shapes: ESM_SHAPES },
    { ext: 'mts', shapes: ESM_SHAPES },
    { ext: 'cts', shapes: [...COMMONJS_SHAPES, ...ESM_SHAPES] },
  ],
  commonjs: [
    { ext: 'js', shapes: COMMONJS_SHAPES },
    { ext: 'cjs', shapes: COMMONJS_SHAPES },
    { ext: 'mjs', shapes: ESM_SHAPES },
    { ext: 'ts', shapes: [...COMMONJS_SHAPES, ...ESM_SHAPES] },
    { ext: 'mts', shapes: ESM_SHAPES },
    { ext: 'cts', shapes: [...COMMONJS_SHAPES, ...ESM_SHAPES] },
  ],
};

interface Case {
  /** e.g. `commonjs_js_module_exports_nontx`: also the name of the table it creates (`t_<id>`). */
  id: string;
  file: string;
  shape: Shape;
  nonTransactional: boolean;
}

/** The module's source: a table and an index (built CONCURRENTLY when it runs outside a transaction). */
function migrationSource(table: string, shape: Shape, nonTransactional: boolean): string {
  const up = `async (knex) => {\n  await knex.schema.createTable('${table}', (t) => { t.increments('id'); });\n  await knex.raw('create index ${nonTransactional ? 'concurrently ' : ''}${table}_ix on ${table} (id)');\n}`;
  const down = `async (knex) => {\n  await knex.schema.dropTable('${table}');\n}`;
  const config = '{ transaction: false }';
  switch (shape) {
    case 'exports':
      return `exports.up = ${up};\nexports.down = ${down};\n${nonTransactional ? `exports.config = ${config};\n` : ''}`;
    case 'module_exports':
      return `module.exports = {\n  up: ${up},\n  down: ${down},\n${nonTransactional ? `  config: ${config},\n` : ''}};\n`;
    case 'then_down':
      return `module.exports = { up: ${up} };\nmodule.exports.down = ${down};\n${nonTransactional ? `module.exports.config = ${config};\n` : ''}`;
    case 'esm_named':
      return `export const up = ${up};\nexport const down = ${down};\n${nonTransactional ? `export const config = ${config};\n` : ''}`;
    case 'esm_default':
      return `export default {\n  up: ${up},\n  down: ${down},\n${nonTransactional ? `  config: ${config},\n` : ''}};\n`;
  }
}

/**
 * Writes, under `root/<package type>/`: a package.json with that type, `all/` (every case, the tree
 * tenant-migrate runs) and `one/<id>/` (each case alone, for plain Knex, which validates every
 * pending migration before running any).
 */
function generateTree(root: string, type: PackageType): Case[] {
  const base = path.join(root, type);
  fs.mkdirSync(path.join(base, 'all'), { recursive: true });
  fs.writeFileSync(path.join(base, 'package.json'), JSON.stringify({ type }));
  const cases: Case[] = [];
  // `config` exported each shape's way, once per shape (a non-transactional run is slow to set up).
  const withConfig = new Set<Shape>();
  for (const { ext, shapes } of KINDS[type]) {
    for (const shape of shapes) {
      const variants = withConfig.has(shape) ? [false] : [false, true];
      withConfig.add(shape);
      for (const nonTransactional of variants) {
        const id = `${type}_${ext}_${shape}${nonTransactional ? '_nontx' : ''}`;
        const file = `2026010100${String(cases.length).padStart(4, '0')}_${id}.${ext}`;
        const source = migrationSource(`t_${id}`, shape, nonTransactional);
        fs.writeFileSync(path.join(base, 'all', file), source);
        fs.mkdirSync(path.join(base, 'one', id), { recursive: true });
        fs.writeFileSync(path.join(base, 'one', id, file), source);
        cases.push({ id, file, shape, nonTransactional });
      }
    }
  }
  return cases;
}

/**
 * What plain Knex does with a case: it runs it, or refuses it — it reads `up` and `down` off what
 * `require()` or `import()` returns and never looks at `default`. So it refuses `export default`,
 * and a `.cts` file under "type": "module", which it imports (only `.cjs` is required there): the
 * namespace shows the names Node's CommonJS export detection finds, and for
 * `module.exports = { up: async …, down: … }` that is `up` alone.
 */
function knexExpectation(type: PackageType, testCase: Case): 'applied' | 'refused' {
  if (testCase.shape === 'esm_default') return 'refused';
  if (type === 'module' && testCase.file.endsWith('.cts') && testCase.shape === 'module_exports') return 'refused';
  return 'applied';
}

/** Runs test/support/plain-knex-migrate.ts in its own process: each case in schema `k_<index>`. */
function plainKnex(action: 'latest' | 'rollback', root: string, type: PackageType, cases: Case[]): { schema: string; ok: boolean; error?: string }[] {
  const jobs = cases.map((testCase, index) => ({ directory: path.join(root, type, 'one', testCase.id), schema: `k_${type}_${index}` }));
  const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/support/plain-knex-migrate.ts'), action, JSON.stringify(jobs)], {
    cwd: repoRoot,
    env: cliEnv({ DATABASE_URL: db.url }),
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { schema: string; ok: boolean; error?: string }[];
}

/** Whether `schema` holds the case's table and its index (the end state of a migration run up). */
async function hasCase(schema: string, testCase: Case): Promise<boolean> {
  const rows = await db.knex().raw<{ rows: { tables: number; indexes: number }[] }>(
    `select (select count(*) from pg_tables where schemaname = ? and tablename = ?)::int as tables,
            (select count(*) from pg_indexes where schemaname = ? and indexname = ?)::int as indexes`,
    [schema, `t_${testCase.id}`, schema, `t_${testCase.id}_ix`],
  );
  const { tables, indexes } = rows.rows[0]!;
  if (tables !== indexes) throw new Error(`${schema}: t_${testCase.id} without its index (or the other way round)`);
  return tables === 1;
}

let root: string;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-loading-'));
  const master = await runCli(['migrate:master'], { env: treeEnv(db.url, { master: fixture('master-basic') }) });
  expect(master.code, master.stderr).toBe(0);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe.each<PackageType>(['module', 'commonjs'])('a tree under "type": "%s"', (type) => {
  it('every export shape and file kind runs up and down through tenant-migrate as through plain Knex', { timeout: 400_000 }, async () => {
    await dropAllTenants(db.knex());
    const cases = generateTree(root, type);
    const orgId = `org_loading_${type}`;
    const schema = tenantSchemaName(orgId);
    const env = treeEnv(db.url, { master: fixture('master-basic'), tenant: path.join(root, type, 'all') });

    // Up: tenant-migrate runs every case; plain Knex every case it accepts.
    const provisioned = await runCli(['provision:tenant', orgId], { env, timeoutMs: 150_000 });
    expect(provisioned.code, provisioned.stdout + provisioned.stderr).toBe(0);
    const knexUp = plainKnex('latest', root, type, cases);
    const upState: Record<string, { tenantMigrate: string; knex: string }> = {};
    const expectedUp: typeof upState = {};
    for (const [index, testCase] of cases.entries()) {
      const knexResult = knexUp[index]!;
      upState[testCase.id] = {
        tenantMigrate: (await hasCase(schema, testCase)) ? 'applied' : 'missing',
        knex: knexResult.ok ? ((await hasCase(`k_${type}_${index}`, testCase)) ? 'applied' : 'missing') : `refused: ${knexResult.error}`,
      };
      const knex = knexExpectation(type, testCase);
      expectedUp[testCase.id] = { tenantMigrate: 'applied', knex: knex === 'applied' ? 'applied' : expect.stringMatching(/^refused: .*must have both an up and down function/) };
    }
    expect(upState).toEqual(expectedUp);

    // Down: everything undone, by tenant-migrate (down found wherever Knex finds it) and by Knex.
    const rolledBack = await runCli(['rollback:tenants', '--all', '--tenant', orgId], { env, timeoutMs: 150_000 });
    expect(rolledBack.code, rolledBack.stdout + rolledBack.stderr).toBe(0);
    const accepted = cases.filter((testCase) => knexExpectation(type, testCase) === 'applied');
    const knexDown = plainKnex('rollback', root, type, cases);
    const downState: Record<string, { tenantMigrate: string; knex: string }> = {};
    const expectedDown: typeof downState = {};
    for (const [index, testCase] of cases.entries()) {
      if (!accepted.includes(testCase)) continue;
      downState[testCase.id] = {
        tenantMigrate: (await hasCase(schema, testCase)) ? 'still there' : 'undone',
        knex: !knexDown[index]!.ok ? `failed: ${knexDown[index]!.error}` : (await hasCase(`k_${type}_${index}`, testCase)) ? 'still there' : 'undone',
      };
      expectedDown[testCase.id] = { tenantMigrate: 'undone', knex: 'undone' };
    }
    expect(downState).toEqual(expectedDown);
    for (const testCase of cases) expect(await hasCase(schema, testCase), testCase.id).toBe(false);
  });
});
