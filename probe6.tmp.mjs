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
const schema = () => 'tid_' + (1 + Math.floor(Math.random() * 1000)).toString(16).padStart(10, '0');
const marker = full.replace(/exists \(select 1 from pg_catalog.pg_roles[^\n]*\) as "prefixUsed"/, `to_regrole(quote_ident(r.prefix || 'roles_on')) is not null as "prefixUsed"`);
if (marker === full) throw new Error('no replace');
const qs = { off, noExists, full, marker };
const times = Object.fromEntries(Object.keys(qs).map((k) => [k, [[], [], [], []]]));
for (let i = 0; i < 1000; i++) for (const [k, q] of Object.entries(qs)) {
  const s = schema();
  const steps = ['begin', [q, [s]], 'select count(*) from tasks', 'commit'];
  for (let j = 0; j < 4; j++) { const t = performance.now(); const st = steps[j]; await (Array.isArray(st) ? c.query(st[0], st[1]) : c.query(st)); times[k][j].push(performance.now() - t); }
}
for (const [k, v] of Object.entries(times)) console.log(k.padEnd(10), v.map((a) => { a.sort((x, y) => x - y); return a[500].toFixed(3); }).join('  '));
await c.end();
