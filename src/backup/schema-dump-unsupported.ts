/**
 * What the catalog dumper (schema-dump.ts) does not write, found before anything is written: a
 * schema holding any of it is dumped with pg_dump instead (the manifest says why) — never a silent,
 * lossy dump. Every query starts from the schema's own objects (pg_depend's index on the referenced
 * namespace, then each catalog's index on the relation/type), never a scan of every relation.
 *
 * Not written by the catalog dumper (pg_dump takes over):
 * - partitioned tables and partitions, table inheritance, typed tables (OF type);
 * - materialized views, foreign tables, rules other than a view's own;
 * - range, base and shell types; aggregates; operators, operator classes and families, collations,
 *   conversions, text-search objects, extended statistics, default privileges (ALTER DEFAULT
 *   PRIVILEGES … IN SCHEMA) — anything in the schema that is not a table, view, sequence, index,
 *   enum, domain, composite type, function or procedure;
 * - objects that belong to an extension, security labels, publication membership;
 * - functions with an SQL-standard body (BEGIN ATOMIC) or whose signature names a table's or view's
 *   row type of the schema; domain checks calling a function of the schema; table columns of a
 *   table's row type; column defaults on views;
 * - tables in another tablespace or with another access method than heap, REPLICA IDENTITY USING
 *   INDEX, column compression settings, TOAST storage parameters; virtual generated columns.
 */
import type pg from 'pg';

export interface SchemaObjects {
  namespace: number;
  /** Tables (r), views (v) and sequences (S), by oid. */
  relations: { oid: number; relkind: string }[];
  /** Enums, domains and composite types. */
  types: number[];
  functions: number[];
}

type Row = Record<string, unknown>;

async function rows<T = Row>(client: pg.ClientBase, sql: string, params: unknown[]): Promise<T[]> {
  return (await client.query(sql, params)).rows as T[];
}

/**
 * The schema's objects, or why the catalog dumper cannot write them (one reason per kind found).
 * Runs inside the dump's transaction, so what it saw is what is dumped.
 */
export async function inspectSchema(client: pg.ClientBase, schema: string): Promise<{ objects: SchemaObjects; unsupported: string[] }> {
  const [ns] = await rows<{ oid: number; version: number }>(client, "select oid::int8::float8 as oid, current_setting('server_version_num')::int as version from pg_namespace where nspname = $1", [schema]);
  if (!ns) throw new Error(`the schema ${schema} does not exist`);
  const namespace = ns.oid;
  const unsupported: string[] = [];
  const members = await rows<{ catalog: string; oid: number; extension: boolean }>(
    client,
    `select d.classid::regclass::text as catalog, d.objid::int8::float8 as oid,
            exists (select 1 from pg_depend e where e.classid = d.classid and e.objid = d.objid and e.deptype = 'e') as extension
       from pg_depend d
      where d.refclassid = 'pg_namespace'::regclass and d.refobjid = $1 and d.objsubid = 0 and d.deptype in ('n', 'a')`,
    [namespace],
  );
  const extensionMembers = members.filter((m) => m.extension).length;
  if (extensionMembers > 0) unsupported.push(`${extensionMembers} object(s) belonging to an extension`);
  const others = [...new Set(members.filter((m) => !['pg_class', 'pg_type', 'pg_proc'].includes(m.catalog)).map((m) => m.catalog))];
  if (others.length > 0) unsupported.push(`objects the catalog dumper does not write (${others.join(', ')})`);
  const oidsOf = (catalog: string) => members.filter((m) => m.catalog === catalog && !m.extension).map((m) => m.oid);

  const relations = await rows<{ oid: number; relkind: string; relname: string; problem: string | null }>(
    client,
    `select c.oid::int8::float8 as oid, c.relkind, c.relname,
            case when c.relkind not in ('r', 'v', 'S', 'c') then 'relkind ' || c.relkind::text
                 when c.relispartition then 'a partition'
                 when c.reloftype <> 0 then 'a typed table'
                 when c.reltablespace <> 0 then 'a table in another tablespace'
                 when c.relkind = 'r' and c.relam <> (select oid from pg_am where amname = 'heap') then 'a table access method other than heap'
                 when c.relreplident = 'i' then 'REPLICA IDENTITY USING INDEX'
                 when t.reloptions is not null then 'TOAST storage parameters'
            end as problem
       from pg_class c left join pg_class t on t.oid = c.reltoastrelid
      where c.oid = any($1::oid[])`,
    [oidsOf('pg_class')],
  );
  const kinds: Record<string, string> = { p: 'a partitioned table', m: 'a materialized view', f: 'a foreign table' };
  for (const r of relations) if (r.problem) unsupported.push(`${r.relname}: ${kinds[r.problem.slice(8)] ?? r.problem}`);
  const rels = relations.filter((r) => ['r', 'v', 'S'].includes(r.relkind)).map((r) => r.oid);
  const relOids = relations.map((r) => r.oid);

  const [checks] = await rows<Record<string, number>>(
    client,
    `select (select count(*) from pg_inherits where inhrelid = any($1::oid[]) or inhparent = any($1::oid[]))::int as inheritance,
            (select count(*) from pg_rewrite r join pg_class c on c.oid = r.ev_class
              where r.ev_class = any($1::oid[]) and not (r.rulename = '_RETURN' and c.relkind = 'v'))::int as rules,
            (select count(*) from pg_attrdef where adrelid = any($3::oid[]))::int as "viewDefaults",
            (select count(*) from pg_attribute a where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
                and (${ns.version >= 140000 ? "a.attcompression <> ''" : 'false'} or ${ns.version >= 180000 ? "a.attgenerated = 'v'" : 'false'}
                     or exists (select 1 from pg_type t join pg_class rc on rc.oid = t.typrelid
                                 where t.oid in (a.atttypid, (select typelem from pg_type e where e.oid = a.atttypid and e.typcategory = 'A')) and rc.relkind <> 'c')))::int as columns,
            (select count(*) from pg_publication_rel where prrelid = any($1::oid[]))::int as publications,
            (select count(*) from pg_seclabel where objoid = any($2::oid[]))::int as labels`,
    [relOids, [namespace, ...relOids, ...oidsOf('pg_type'), ...oidsOf('pg_proc')], relations.filter((r) => r.relkind === 'v').map((r) => r.oid)],
  );
  const messages: Record<string, string> = {
    inheritance: 'table inheritance',
    rules: 'rules (other than views)',
    viewDefaults: 'column defaults on views',
    columns: 'column compression, virtual generated columns or columns of a row type',
    publications: 'publication membership',
    labels: 'security labels',
  };
  for (const [key, count] of Object.entries(checks!)) if (count > 0) unsupported.push(messages[key]!);

  const types = await rows<{ oid: number; name: string; typtype: string; compositeRelation: boolean }>(
    client,
    `select t.oid::int8::float8 as oid, t.typname as name, t.typtype, coalesce(c.relkind = 'c', false) as "compositeRelation"
       from pg_type t left join pg_class c on c.oid = t.typrelid where t.oid = any($1::oid[])`,
    [oidsOf('pg_type')],
  );
  for (const t of types) {
    if (!['e', 'd', 'c'].includes(t.typtype) || (t.typtype === 'c' && !t.compositeRelation)) unsupported.push(`type ${t.name} (typtype ${t.typtype})`);
  }
  const typeOids = types.filter((t) => ['e', 'd', 'c'].includes(t.typtype)).map((t) => t.oid);
  const [domainChecks] = await rows<{ n: number }>(
    client,
    `select count(*)::int as n from pg_constraint c join pg_depend d on d.classid = 'pg_constraint'::regclass and d.objid = c.oid and d.refclassid = 'pg_proc'::regclass
      where c.contypid = any($1::oid[]) and d.refobjid = any($2::oid[])`,
    [typeOids, oidsOf('pg_proc')],
  );
  if (domainChecks!.n > 0) unsupported.push('domain checks calling a function of the schema');

  const functions = await rows<{ oid: number; name: string; problem: string | null }>(
    client,
    `select p.oid::int8::float8 as oid, p.proname as name,
            case when p.prokind = 'a' then 'an aggregate'
                 when ${ns.version >= 140000 ? 'p.prosqlbody is not null' : 'false'} then 'an SQL-standard body'
                 when exists (select 1 from unnest(p.proargtypes::oid[] || coalesce(p.proallargtypes, '{}') || p.prorettype) u(typ)
                                join pg_type t on t.oid = u.typ or (t.oid = (select typelem from pg_type e where e.oid = u.typ and e.typcategory = 'A'))
                                join pg_class rc on rc.oid = t.typrelid
                               where rc.relkind <> 'c' and rc.relnamespace = $2) then 'a row type of the schema in its signature'
            end as problem
       from pg_proc p where p.oid = any($1::oid[])`,
    [oidsOf('pg_proc'), namespace],
  );
  for (const f of functions) if (f.problem) unsupported.push(`function ${f.name}: ${f.problem}`);

  return {
    objects: {
      namespace,
      relations: relations.filter((r) => rels.includes(r.oid)).map(({ oid, relkind }) => ({ oid, relkind })),
      types: typeOids,
      functions: functions.map((f) => f.oid),
    },
    unsupported: [...new Set(unsupported)],
  };
}
