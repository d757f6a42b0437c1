import pg from 'pg';
const base = 'postgres://%u@127.0.0.1:5432/tm_rolesprobe_x';
const owner = new pg.Client(base.replace('%u', 'postgres')); const app = new pg.Client(base.replace('%u', 'tm_probe_app:pw'));
await owner.connect(); await app.connect();
const PREFIX = `'tm_' || left(encode(sha256(convert_to(current_database(), 'UTF8')), 'hex'), 10) || '_'`;
const off = `select set_config('search_path', quote_ident($1) || ', public', true) is not null and to_regnamespace(quote_ident($1)) is not null as found`;
const enter = `with r as (select p.prefix || $1 as name, p.prefix from (select ${PREFIX} as prefix) p)
     select set_config('search_path', quote_ident($1) || ', public, pg_temp', true) is not null
              and to_regnamespace(quote_ident($1)) is not null as found,
            case when to_regrole(quote_ident(r.name)) is not null then set_config('role', r.name, true) end as role,
            to_regrole(quote_ident(r.name)) is null
              and exists (select 1 from pg_catalog.pg_roles where rolname >= r.prefix::name and rolname < (r.prefix || '~')::name) as "prefixUsed"
       from r`;
const enterNoRole = enter.replace("set_config('role', r.name, true)", "r.name");
const offRole = `select set_config('search_path', quote_ident($1) || ', public, pg_temp', true) is not null and to_regnamespace(quote_ident($1)) is not null as found, set_config('role', $2, true)`;
const { rows: [{ p }] } = await owner.query(`select ${PREFIX} as p`);
const schema = () => 'tid_' + (1 + Math.floor(Math.random() * 1000)).toString(16).padStart(10, '0');
const variants = {
  offOwner: [owner, async (c, s) => c.query(off, [s])],
  enterOwnerNoSetRole: [owner, async (c, s) => c.query(enterNoRole, [s])],
  enterApp: [app, async (c, s) => c.query(enter, [s])],
  offPlusRoleApp: [app, async (c, s) => c.query(offRole, [s, p + s])],
  offOwnerQueryAsApp: [app, async (c, s) => { await c.query(off, [s]); await c.query(`set local role "${p + s}"`); }],
};
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let i = 0; i < 1200; i++) {
  for (const [k, [c, f]] of Object.entries(variants)) {
    const s = schema();
    const t = performance.now();
    await c.query('begin'); await f(c, s); await c.query('select count(*) from tasks'); await c.query('commit');
    if (i >= 200) times[k].push(performance.now() - t);
  }
}
for (const [k, v] of Object.entries(times)) { v.sort((a, b) => a - b); console.log(k.padEnd(22), 'p50', v[v.length >> 1].toFixed(3), 'p90', v[Math.floor(v.length * 0.9)].toFixed(3)); }
await owner.end(); await app.end();
