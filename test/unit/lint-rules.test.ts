/**
 * Each lint rule fires on a minimal migration's SQL and stays quiet on its safe rewrite — judged on
 * PostgreSQL's parse tree (libpg-query), as `lint` does with the SQL it captures.
 */
import { describe, expect, it } from 'vitest';
import { judgeStatements, UNKNOWN_IGNORE } from '../../src/lint/lint-trees.ts';
import { RULES } from '../../src/lint/rules.ts';

type Case = { rule: string; tree: 'master' | 'tenant'; unsafe: string[]; safe: string[]; transactional?: boolean };

const LOCK = "set local lock_timeout = '5s'";
const CASES: Case[] = [
  { rule: 'not-null-without-default', tree: 'tenant', unsafe: ['alter table "org_users" add column "plan" text not null'], safe: ['alter table "org_users" add column "plan" text not null default \'free\'', 'create table "t" ("id" int not null)'] },
  { rule: 'volatile-default', tree: 'tenant', unsafe: ['alter table "org_users" add column "token" uuid default gen_random_uuid()'], safe: ['alter table "org_users" add column "seen_at" timestamptz default now()', 'alter table "org_users" add column "token" uuid'] },
  { rule: 'volatile-default', tree: 'tenant', unsafe: ['alter table "org_users" add column "seq" bigserial'], safe: ['create table "t" ("id" bigserial primary key)'] },
  { rule: 'column-type-change', tree: 'tenant', unsafe: ['alter table "org_users" alter column "email" type varchar(100)'], safe: ['alter table "org_users" add column "email_v2" varchar(100)'] },
  { rule: 'rename-or-drop', tree: 'tenant', unsafe: ['alter table "org_users" drop column "email"'], safe: ['alter table "org_users" add column "email2" text'] },
  { rule: 'rename-or-drop', tree: 'tenant', unsafe: ['alter table "org_users" rename column "email" to "mail"'], safe: ['create table "t" ("a" int)', 'alter table "t" rename column "a" to "b"'] },
  { rule: 'rename-or-drop', tree: 'tenant', unsafe: ['drop table "notes"'], safe: ['create table "scratch" ("a" int)', 'drop table "scratch"'] },
  { rule: 'index-not-concurrent', tree: 'master', unsafe: [LOCK, 'create index "plans_name_index" on "plans" ("name")'], safe: ['create index concurrently "plans_name_index" on "plans" ("name")'], transactional: false },
  { rule: 'concurrently-in-transaction', tree: 'tenant', unsafe: ['create index concurrently "i" on "org_users" ("email")'], safe: ['create index "i" on "org_users" ("email")'] },
  { rule: 'constraint-not-valid', tree: 'tenant', unsafe: ['alter table "notes" add constraint "notes_user_fk" foreign key ("user_id") references "org_users" ("id")'], safe: ['alter table "notes" add constraint "notes_user_fk" foreign key ("user_id") references "org_users" ("id") not valid', 'alter table "notes" validate constraint "notes_user_fk"'] },
  { rule: 'constraint-not-valid', tree: 'tenant', unsafe: ['alter table "notes" add constraint "c" check (length(body) < 10000)'], safe: ['alter table "notes" add constraint "c" check (length(body) < 10000) not valid'] },
  { rule: 'missing-lock-timeout', tree: 'master', unsafe: ['alter table "plans" add column "tier" text'], safe: [LOCK, 'alter table "plans" add column "tier" text'] },
  { rule: 'missing-lock-timeout', tree: 'master', unsafe: ['alter table "plans" add column "tier" text'], safe: ["select set_config('lock_timeout', '5s', true)", 'alter table "plans" add column "tier" text'] },
  { rule: 'tenant-schema-qualified', tree: 'tenant', unsafe: ['create table "other_tenant"."projects" ("id" int)'], safe: ['create table "projects" ("id" int, "plan_id" int references "public"."plans" ("id"))'] },
  { rule: 'tenant-create-extension', tree: 'tenant', unsafe: ['create extension if not exists "vector"'], safe: ['create table "t" ("embedding" vector(3))'] },
  { rule: 'view-with-owner-rights', tree: 'tenant', unsafe: ['create view "open_notes" as select * from "notes"'], safe: ['create view "open_notes" with (security_invoker = true) as select * from "notes"'] },
  { rule: 'view-with-owner-rights', tree: 'master', unsafe: ['create or replace view "v" with (security_invoker = off) as select 1'], safe: ['create or replace view "v" with (security_invoker) as select 1'] },
  { rule: 'security-definer-function', tree: 'tenant', unsafe: ["create function f() returns int language sql security definer as 'select 1'"], safe: ["create function f() returns int language sql security invoker as 'select 1'"] },
];

/** What a review found the rules got wrong (a false positive, or a statement they missed): each case fails without its fix. */
const REVIEWED: (Case & { name: string })[] = [
  {
    name: "tenant-schema-qualified: quiet on catalog reads (knex's hasTable, hasColumn)",
    rule: 'tenant-schema-qualified',
    tree: 'tenant',
    unsafe: ['select * from "other_tenant"."users"'],
    safe: [
      "select * from information_schema.tables where table_name = 'users' and table_schema = current_schema()",
      "select * from information_schema.columns where table_name = 'users' and column_name = 'email' and table_schema = current_schema()",
      "select 1 from pg_catalog.pg_class where relname = 'users'",
    ],
  },
  {
    name: 'volatile-default: fires on an identity column added to an existing table (generated always)',
    rule: 'volatile-default',
    tree: 'tenant',
    unsafe: ['alter table "org_users" add column "a9" bigint generated always as identity'],
    safe: ['alter table "org_users" add column "a9" bigint', 'create table "t" ("id" bigint generated always as identity primary key)'],
  },
  {
    name: 'volatile-default: fires on an identity column added to an existing table (generated by default)',
    rule: 'volatile-default',
    tree: 'master',
    unsafe: [LOCK, 'alter table "plans" add column "a9" bigint generated by default as identity'],
    safe: [LOCK, 'alter table "plans" add column "a9" bigint'],
  },
  {
    name: 'missing-lock-timeout: fires on LOCK TABLE of a shared table (from SHARE mode up)',
    rule: 'missing-lock-timeout',
    tree: 'master',
    unsafe: ['lock table "plans" in access exclusive mode'],
    safe: ['lock table "plans" in access share mode', 'create table "t" ("a" int)', 'lock table "t" in access exclusive mode', LOCK, 'lock table "plans" in share mode'],
  },
  {
    name: 'missing-lock-timeout: fires on TRUNCATE of a shared table',
    rule: 'missing-lock-timeout',
    tree: 'master',
    unsafe: ['truncate "plans" restart identity'],
    safe: ['create table "t" ("a" int)', 'truncate "t"', LOCK, 'truncate "plans" restart identity'],
  },
  {
    name: 'index-not-concurrent: fires on ADD CONSTRAINT … UNIQUE on a shared table (knex t.unique)',
    rule: 'index-not-concurrent',
    tree: 'master',
    unsafe: [LOCK, 'alter table "plans" add constraint "plans_name_unique" unique ("name")'],
    safe: ['create unique index concurrently "plans_name_unique" on "plans" ("name")', LOCK, 'alter table "plans" add constraint "plans_name_unique" unique using index "plans_name_unique"'],
    transactional: false,
  },
  {
    name: 'index-not-concurrent: fires on ADD PRIMARY KEY (and a new UNIQUE column) on a shared table, quiet on a table created here',
    rule: 'index-not-concurrent',
    tree: 'master',
    unsafe: [LOCK, 'alter table "plans" add primary key ("id")', 'alter table "plans" add column "code" text unique'],
    safe: ['create table "t" ("id" int, "code" text)', 'alter table "t" add primary key ("id")', 'alter table "t" add constraint "t_code_unique" unique ("code")'],
  },
];

// The tool's own lock timeout off: what the migration sets is all there is.
const rulesOf = async (tree: Case['tree'], statements: string[], transactional = true) => (await judgeStatements(tree, statements, { transactional, toolLockTimeoutMs: 0 })).map((verdict) => verdict.rule);

describe('lint rules', () => {
  it.each(CASES)('$rule: fires on the unsafe migration, quiet on its safe rewrite', async ({ rule, tree, unsafe, safe, transactional }) => {
    expect(await rulesOf(tree, unsafe, transactional)).toContain(rule);
    expect(await rulesOf(tree, safe, transactional)).not.toContain(rule);
  });

  // A loop rather than it.each('$name'): it.each cuts a $name title at 40 characters.
  for (const { name, rule, tree, unsafe, safe, transactional } of REVIEWED) {
    it(name, async () => {
      expect(await rulesOf(tree, unsafe, transactional)).toContain(rule);
      expect(await rulesOf(tree, safe, transactional)).not.toContain(rule);
    });
  }

  it('an identity column fills every row: not-null-without-default stays quiet on it', async () => {
    expect(await rulesOf('tenant', ['alter table "org_users" add column "a9" bigint not null generated always as identity'])).not.toContain('not-null-without-default');
  });

  // 0 disables the timeout; DEFAULT / RESET go back to the server's (0 unless configured).
  it.each([
    'set local lock_timeout = 0',
    "set local lock_timeout = '0'",
    'set lock_timeout to 0',
    "set lock_timeout = '0ms'",
    "select set_config('lock_timeout', '0', true)",
    'set local lock_timeout to default',
    'reset lock_timeout',
  ])('missing-lock-timeout: %s does not count as a lock_timeout, even after one was set', async (disable) => {
    const alter = 'alter table "plans" add column "tier" text';
    expect(await rulesOf('master', [disable, alter])).toContain('missing-lock-timeout');
    expect(await rulesOf('master', [LOCK, disable, alter])).toContain('missing-lock-timeout');
    expect(await rulesOf('master', [disable, LOCK, alter])).not.toContain('missing-lock-timeout');
  });

  it.each(['set local lock_timeout = 5000', "set lock_timeout to '0.5s'", "select set_config('lock_timeout', '2s', true)"])('missing-lock-timeout: %s counts as a lock_timeout', async (enable) => {
    expect(await rulesOf('master', [enable, 'alter table "plans" add column "tier" text'])).not.toContain('missing-lock-timeout');
  });

  it("missing-lock-timeout knows the tool's own lock timeout: on (the default), a migration starts with one; a migration that turns it off is flagged", async () => {
    const alter = 'alter table "plans" add column "tier" text';
    expect((await judgeStatements('master', [alter], { toolLockTimeoutMs: 1000 })).map((verdict) => verdict.rule)).toEqual([]);
    expect((await judgeStatements('master', ['set local lock_timeout = 0', alter], { toolLockTimeoutMs: 1000 })).map((verdict) => verdict.rule)).toEqual(['missing-lock-timeout']);
    expect((await judgeStatements('master', [alter], { toolLockTimeoutMs: 0 })).map((verdict) => verdict.rule)).toEqual(['missing-lock-timeout']);
  });

  it('every rule has a case, an id, a reason and a fix', () => {
    expect(RULES.map((rule) => rule.id)).not.toContain(UNKNOWN_IGNORE); // nothing can silence a typo report
    for (const rule of RULES) {
      expect(CASES.map((testCase) => testCase.rule)).toContain(rule.id);
      expect(rule.reason.length).toBeGreaterThan(20);
      expect(rule.fix.length).toBeGreaterThan(10);
    }
  });

  it('a rule named in the ignore list is silent; the tree decides which rules apply', async () => {
    const drop = ['alter table "org_users" drop column "email"'];
    expect(await judgeStatements('tenant', drop, { ignored: new Set(['rename-or-drop']) })).toEqual([]);
    expect((await judgeStatements('master', ['create extension if not exists "vector"'])).map((verdict) => verdict.rule)).toEqual([]);
  });
});
