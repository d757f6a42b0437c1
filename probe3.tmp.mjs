import pg from 'pg';
const c = new pg.Client('postgres://postgres@127.0.0.1:5432/tm_rolesprobe_x'); await c.connect();
const PREFIX = `'tm_' || left(encode(sha256(convert_to(current_database(), 'UTF8')), 'hex'), 10) || '_'`;
const full = `with r as (select p.prefix || $1 as name, p.prefix from (select ${PREFIX} as prefix) p)
     select set_config('search_path', quote_ident($1) || ', public, pg_temp', true) is not null
              and to_regnamespace(quote_ident($1)) is not null as found,
            case when to_regrole(quote_ident(r.name)) is not null then r.name end as role,
            to_regrole(quote_ident(r.name)) is null
              and exists (select 1 from pg_catalog.pg_roles where rolname >= r.prefix::name and rolname < (r.prefix || '~')::name) as "prefixUsed"
       from r`;
const noExists = full.slice(0, full.indexOf('and exists')) + ' as "prefixUsed" from r';
const authid = full.replace('pg_catalog.pg_roles', 'pg_catalog.pg_authid');
const off = `select set_config('search_path', quote_ident($1) || ', public', true) is not null and to_regnamespace(quote_ident($1)) is not null as found`;
const plan = async (q) => { await c.query('begin'); const { rows } = await c.query('explain (analyze, summary) ' + q, ['tid_0000000001']); await c.query('rollback'); return Number(/Planning Time: ([\d.]+)/.exec(rows.map((r) => r['QUERY PLAN']).join('\n'))[1]); };
for (const [name, q] of Object.entries({ off, noExists, full, authid })) {
  const ts = []; for (let i = 0; i < 300; i++) ts.push(await plan(q)); ts.sort((a, b) => a - b);
  console.log(name.padEnd(10), 'plan p50', ts[150].toFixed(3), 'p10', ts[30].toFixed(3));
}
await c.end();
