import pg from 'pg';
const c = new pg.Client('postgres://postgres@127.0.0.1:5432/tm_rolesprobe_x'); await c.connect();
const PREFIX = `'tm_' || left(encode(sha256(convert_to(current_database(), 'UTF8')), 'hex'), 10) || '_'`;
const q = `with r as (select p.prefix || $1 as name, p.prefix from (select ${PREFIX} as prefix) p)
     select set_config('search_path', quote_ident($1) || ', public, pg_temp', true) is not null
              and to_regnamespace(quote_ident($1)) is not null as found,
            case when to_regrole(quote_ident(r.name)) is not null then r.name end as role,
            to_regrole(quote_ident(r.name)) is null
              and exists (select 1 from pg_catalog.pg_roles where rolname >= r.prefix::name and rolname < (r.prefix || '~')::name) as "prefixUsed"
       from r`;
await c.query('begin');
const { rows } = await c.query('explain (analyze, buffers, summary) ' + q, ['tid_0000000001']);
console.log(rows.map((r) => r['QUERY PLAN']).join('\n'));
await c.query('rollback');
for (const v of ["select to_regrole('x')", "select to_regrole(quote_ident('tm_x_tid_0000000001'))", `select ${PREFIX}`, "select to_regnamespace('tid_0000000001')"]) {
  const t = performance.now(); for (let i = 0; i < 200; i++) await c.query(v); console.log(v.slice(0, 60), ((performance.now() - t) / 200).toFixed(3));
}
await c.end();
