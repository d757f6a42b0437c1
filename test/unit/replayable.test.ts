import { describe, expect, it } from 'vitest';
import { replayableSql, sessionChange } from '../../src/migration/replayable.ts';

const sent = (sql: string, bindings: unknown[] = [], options: Record<string, unknown> = {}) => ({ sql, bindings, options });

describe('replayableSql: only plain DDL, by PostgreSQL\'s parser, is replayed', () => {
  it.each([
    'create table "t" ("id" serial primary key, "name" text default \'x\')',
    'alter table "t" add column "c" int not null default 0',
    'create index "t_name_index" on "t" ("name")',
    'comment on table t is \'a; b -- c\'',
    'create type mood as enum (\'sad\', \'ok\')',
    "create function f() returns trigger language plpgsql as $$ begin new.x := 1; return new; end; $$",
    'create trigger t_f before insert on t for each row execute function f()',
    "do $$ begin if current_schema() = 'x' then raise exception 'no'; end if; end $$",
    "do $$ begin update settings set value = 1; alter table t alter column c set default 0; end $$",
    'create table a (id int); create table b (id int) -- trailing note',
    'set local lock_timeout = \'5s\'',
    '/* leading */ drop table if exists old_t',
  ])('replays %s', async (sql) => {
    expect(await replayableSql([sent(sql)])).toEqual([sql]);
  });

  it.each([
    ['a read', 'select count(*) from t'],
    ['a read after DDL in the same call', 'create table a (id int); select 1'],
    ['a write (its row count can be read)', "insert into t (name) values ('x')"],
    ['create table as select (it reports a row count)', 'create table c as select * from t'],
    ['a savepoint', 'SAVEPOINT trx2'],
    ['a session-wide set', 'set lock_timeout = 5'],
    ['a comment alone', '-- nothing'],
    ['what the parser cannot read', 'create tabel t (id int)'],
  ])('does not replay %s', async (_what, sql) => {
    expect(await replayableSql([sent(sql)])).toBeUndefined();
  });

  it('does not replay a statement with bound values or query options, nor a migration with one such statement', async () => {
    expect(await replayableSql([sent('create table t (id int default ?)', [1])])).toBeUndefined();
    expect(await replayableSql([sent('create table t (id int)', [], { rowMode: 'array' })])).toBeUndefined();
    expect(await replayableSql([sent('create table t (id int)'), sent('select 1')])).toBeUndefined();
  });
});

describe('sessionChange: what outlives the transaction in the session, DO blocks included', () => {
  it.each([
    ["do $$ begin perform set_config('app.seen', current_schema(), false); end $$", 'set_config()'],
    ['do $$ begin create temp table tt (id int); end $$', 'a temporary table'],
    ["do $$ begin if true then set search_path = public; end if; end $$", 'a SET or RESET without LOCAL'],
    ["do $$ begin execute 'listen x'; end $$", 'LISTEN, DISCARD or PREPARE'],
    ['do $$ begin perform pg_advisory_lock(1); end $$', 'a session advisory lock'],
  ])('%s: %s, and it is not replayed', async (sql, effect) => {
    expect(await sessionChange([sent(sql)])).toBe(`a DO block that may change the session (${effect})`);
    expect(await replayableSql([sent(sql)])).toBeUndefined();
  });

  it('a DO block of plain DDL (SET LOCAL, UPDATE … SET, ALTER … SET DEFAULT) changes nothing beyond its transaction', async () => {
    for (const sql of [
      "do $$ begin set local lock_timeout = '5s'; alter table t alter column c set default 0; end $$",
      'do $$ begin update t set c = 1; end $$',
    ]) expect(await sessionChange([sent(sql)]), sql).toBeUndefined();
  });
});
