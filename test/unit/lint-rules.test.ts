/**
 * Each lint rule fires on a minimal migration's SQL and stays quiet on its safe rewrite — judged on
 * PostgreSQL's parse tree (libpg-query), as `lint` does with the SQL it captures.
 */
import { describe, expect, it } from 'vitest';
import { judgeStatements } from '../../src/lint/lint-trees.ts';
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
];

describe('lint rules', () => {
  it.each(CASES)('$rule: fires on the unsafe migration, quiet on its safe rewrite', async ({ rule, tree, unsafe, safe, transactional }) => {
    const fired = await judgeStatements(tree, unsafe, { transactional: transactional ?? true });
    expect(fired.map((verdict) => verdict.rule)).toContain(rule);
    const quiet = await judgeStatements(tree, safe, { transactional: transactional ?? true });
    expect(quiet.map((verdict) => verdict.rule)).not.toContain(rule);
  });

  it('every rule has a case, an id, a reason and a fix', () => {
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
