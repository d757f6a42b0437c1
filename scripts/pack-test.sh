#!/usr/bin/env bash
# The package as users get it: `pnpm pack` (prepack builds dist/), the tarball installed with npm
# into a fresh project that does not depend on tsx, then with plain node:
#   - `npx tenant-migrate` migrate:master, provision:tenant, migrate:tenants on a JavaScript tree
#     (with node_modules/tsx moved away, so loading tsx would fail the run) and on a TypeScript
#     tree (the package's own example trees, which load tsx on demand);
#   - `import { migrateTenants, withTenant } from 'tenant-migrate'` in a .mjs file, used for real;
#   - `require('tenant-migrate')` from a .cjs file (Node versions with require(esm));
#   - a .ts file using the API type-checked with moduleResolution node16 and bundler.
# The database is the package's embedded server (DATABASE_URL=embedded, PGlite with pgvector), so
# the test needs no PostgreSQL; it needs the npm registry for the package's dependencies.
# Usage: scripts/pack-test.sh   (or pnpm test:package). Exits non-zero on the first failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
say() { printf '[pack-test] %3ss %s\n' "$SECONDS" "$*"; }
fail() { printf '[pack-test] FAILED: %s\n' "$*" >&2; exit 1; }

NODE_VERSION=$(node -p process.versions.node)
# A CI leg for one Node major (.ci/run: EXPECT_NODE_MAJOR=22) must really run on it: `node` on PATH
# is what npx and the bin's shebang start.
if [ -n "${EXPECT_NODE_MAJOR:-}" ] && [ "${NODE_VERSION%%.*}" != "$EXPECT_NODE_MAJOR" ]; then
  fail "EXPECT_NODE_MAJOR=$EXPECT_NODE_MAJOR but node on PATH is $NODE_VERSION"
fi
say "Node $NODE_VERSION; pnpm pack (prepack builds dist/)"
(cd "$REPO" && pnpm pack --pack-destination "$WORK" >/dev/null)
TARBALL=$(ls "$WORK"/tenant-migrate-*.tgz)
say "$(basename "$TARBALL"): $(du -k "$TARBALL" | cut -f1) kB packed, $(tar -tzf "$TARBALL" | wc -l) files"
if tar -tzf "$TARBALL" | grep -Eq '^package/(src|test|bench)/'; then fail "the tarball ships src/, test/ or bench/"; fi

APP="$WORK/app"
mkdir -p "$APP"
cd "$APP"
cat > package.json <<'JSON'
{ "name": "pack-test-app", "private": true, "type": "module" }
JSON
say "npm install the tarball (+ typescript and @types/node for the type check)"
npm install --no-audit --no-fund --loglevel=error "$TARBALL" typescript@5.9.3 @types/node@20 >/dev/null

# Every command runs in a clean environment: no database setting of this machine leaks in.
cli() { # $1 = directory to run in; the rest: tenant-migrate arguments
  local dir=$1; shift
  (cd "$dir" && env -i PATH="$PATH" HOME="$HOME" DATABASE_URL=embedded npx --no-install tenant-migrate "$@")
}
expect_output() { # $1 = what must appear, $2 = output
  grep -qF -- "$1" <<<"$2" || fail "expected \"$1\" in:\n$2"
}

out=$(cli "$APP" --version)
[ "$out" = "$(node -p "require('$REPO/package.json').version")" ] || fail "--version printed \"$out\""

say "JavaScript tree, without tsx reachable"
mkdir -p js/migrations/master js/migrations/tenant
cat > js/migrations/master/20260101000000_plans.js <<'JS'
export async function up(knex) {
  await knex.schema.createTable('plans', (table) => { table.increments('id'); table.string('name').notNullable(); });
  // Which Node ran the CLI: use-library.mjs checks it is the one this test runs on.
  await knex.raw(`comment on table plans is 'node ${process.versions.node}'`);
}
export async function down(knex) { await knex.schema.dropTable('plans'); }
JS
cat > js/migrations/tenant/20260101000000_notes.mjs <<'JS'
export async function up(knex) {
  await knex.schema.createTable('notes', (table) => { table.increments('id'); table.text('body').notNullable(); });
}
export async function down(knex) { await knex.schema.dropTable('notes'); }
JS
cat > js/migrations/tenant/20260101000001_notes_pinned.cjs <<'JS'
exports.up = (knex) => knex.schema.alterTable('notes', (table) => { table.boolean('pinned').defaultTo(false); });
exports.down = (knex) => knex.schema.alterTable('notes', (table) => { table.dropColumn('pinned'); });
JS
mv node_modules/tsx node_modules/.tsx-moved-away
out=$(cli js migrate:master); expect_output 'applied 1 migration in public' "$out"
out=$(cli js provision:tenant org_js_1 org_js_2); expect_output '2 provisioned' "$out"
cat > js/migrations/tenant/20260101000002_notes_created_at.js <<'JS'
export async function up(knex) { await knex.schema.alterTable('notes', (table) => { table.timestamp('created_at').defaultTo(knex.fn.now()); }); }
export async function down(knex) { await knex.schema.alterTable('notes', (table) => { table.dropColumn('created_at'); }); }
JS
out=$(cli js migrate:tenants); expect_output '2 tenants — 2 migrated' "$out"
mv node_modules/.tsx-moved-away node_modules/tsx

say "TypeScript tree (the package's example trees: pgvector, HNSW index)"
mkdir -p ts
cp -r node_modules/tenant-migrate/migrations ts/migrations
out=$(cli ts migrate:master); expect_output 'applied 3 migrations in public' "$out"
out=$(cli ts provision:tenant org_ts_1); expect_output '1 provisioned' "$out"
cat > ts/migrations/tenant/20270101000000_org_users_nickname.ts <<'TS'
import type { Knex } from 'knex';
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('org_users', (table) => { table.string('nickname', 100); });
}
export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('org_users', (table) => { table.dropColumn('nickname'); });
}
TS
out=$(cli ts migrate:tenants); expect_output '1 tenant — 1 migrated' "$out"

say "library from a .mjs file"
cat > js/use-library.mjs <<'JS'
import assert from 'node:assert/strict';
import { loadConfig, migrateTenants, openDatabase, withTenant } from 'tenant-migrate';

const db = await openDatabase(loadConfig());
try {
  const { rows: [comment] } = await db.knex.raw("select obj_description('public.plans'::regclass) as node");
  assert.equal(comment.node, `node ${process.versions.node}`, 'the CLI ran on another Node than the library');
  const result = await migrateTenants(db.knex, { directory: 'migrations/tenant' });
  assert.equal(result.ok, true);
  assert.equal(result.tenants.length, 2);
  await withTenant(db.knex, 'org_js_1', (trx) => trx('notes').insert({ body: 'hello' }));
  const rows = await withTenant(db.knex, 'org_js_1', (trx) => trx('notes').select('body', 'pinned'));
  assert.deepEqual(rows, [{ body: 'hello', pinned: false }]);
  const other = await withTenant(db.knex, 'org_js_2', (trx) => trx('notes').count({ n: '*' }));
  assert.equal(Number(other[0].n), 0);
} finally {
  await db.close();
}
console.log('library ok');
JS
out=$(cd js && env -i PATH="$PATH" HOME="$HOME" DATABASE_URL=embedded node use-library.mjs); expect_output 'library ok' "$out"

if node -e 'process.exit(process.features.require_module ? 0 : 1)'; then
  say "require() from CommonJS (require(esm), Node $(node --version))"
  cat > use-require.cjs <<'JS'
const { migrateTenants, withTenant, tenantSchemaName } = require('tenant-migrate');
if (typeof migrateTenants !== 'function' || typeof withTenant !== 'function') throw new Error('missing exports');
if (tenantSchemaName('org_2abc123def456') !== 'tid_3833a8de58') throw new Error('wrong schema name');
console.log('require ok');
JS
  out=$(node --no-warnings use-require.cjs); expect_output 'require ok' "$out"
else
  say "require() from CommonJS: skipped, Node $(node --version) has no require(esm)"
fi

say "type check with moduleResolution node16 and bundler"
cat > use-types.ts <<'TS'
import type { Knex } from 'knex';
import { migrateTenants, withTenant, type FleetResult } from 'tenant-migrate';

export async function release(knex: Knex): Promise<number> {
  const result: FleetResult = await migrateTenants(knex, { directory: 'migrations/tenant', concurrency: 4 });
  const rows = await withTenant(knex, 'org_js_1', (trx) => trx('notes').select<{ body: string }[]>('body'));
  const first: string | undefined = rows[0]?.body;
  return result.tenants.length + (first ? 1 : 0);
}
// @ts-expect-error withTenant needs an org id
void withTenant(({} as Knex), async () => 1);
TS
cat > tsconfig.node16.json <<'JSON'
{ "compilerOptions": { "module": "node16", "moduleResolution": "node16", "target": "es2022", "strict": true, "noEmit": true, "types": ["node"] }, "files": ["use-types.ts"] }
JSON
cat > tsconfig.bundler.json <<'JSON'
{ "compilerOptions": { "module": "esnext", "moduleResolution": "bundler", "target": "es2022", "strict": true, "noEmit": true, "types": ["node"] }, "files": ["use-types.ts"] }
JSON
npx --no-install tsc -p tsconfig.node16.json || fail "type check (node16)"
npx --no-install tsc -p tsconfig.bundler.json || fail "type check (bundler)"

say "all passed"
