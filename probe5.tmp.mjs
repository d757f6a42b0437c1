import pg from 'pg';
const c = new pg.Client('postgres://postgres@127.0.0.1:5432/tm_rolesprobe_x'); await c.connect();
const off = `select set_config('search_path', quote_ident($1) || ', public', true) is not null and to_regnamespace(quote_ident($1)) is not null as found`;
const tmp = off.replace("', public'", "', public, pg_temp'");
const schema = () => 'tid_' + (1 + Math.floor(Math.random() * 1000)).toString(16).padStart(10, '0');
const qs = { off, tmp };
const times = Object.fromEntries(Object.keys(qs).map((k) => [k, []]));
for (let i = 0; i < 1500; i++) for (const [k, q] of Object.entries(qs)) { const t = performance.now(); await c.query('begin'); await c.query(q, [schema()]); await c.query('select count(*) from tasks'); await c.query('commit'); times[k].push(performance.now() - t); }
for (const [k, v] of Object.entries(times)) { v.sort((a, b) => a - b); console.log(k.padEnd(10), 'p50', v[750].toFixed(3), 'p10', v[150].toFixed(3)); }
await c.end();
