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
const off = `select set_config('search_path', quote_ident($1) || ', public', true) is not null and to_regnamespace(quote_ident($1)) is not null as found`;
const sha = `select set_config('search_path', quote_ident($1) || ', public', true) is not null and to_regnamespace(quote_ident($1)) is not null as found, ${PREFIX} as p`;
const regrole = `select set_config('search_path', quote_ident($1) || ', public', true) is not null and to_regnamespace(quote_ident($1)) is not null as found, to_regrole('tm_x'||$1)`;
const qs = { off, sha, regrole, noExists, full };
const times = Object.fromEntries(Object.keys(qs).map((k) => [k, []]));
for (let i = 0; i < 1500; i++) for (const [k, q] of Object.entries(qs)) { const t = performance.now(); await c.query(q, ['tid_0000000001']); times[k].push(performance.now() - t); }
for (const [k, v] of Object.entries(times)) { v.sort((a, b) => a - b); console.log(k.padEnd(10), 'p50', v[750].toFixed(3), 'p10', v[150].toFixed(3)); }
await c.end();
