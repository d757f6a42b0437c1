/**
 * The DDL of one schema, read from the catalog with PostgreSQL's own `pg_get_*def` functions (the
 * ones pg_dump uses), every query by the oids of the schema's objects (schema-dump-unsupported.ts
 * found them through pg_depend). Runs in the dump's transaction with `search_path = ''`, so every
 * name these functions print is schema-qualified.
 *
 * Order of what is written (each part can only refer to what came before it):
 * schema; enums, domains and composite types (by their dependencies); sequences; functions and
 * procedures (check_function_bodies off, like pg_dump); domain defaults; tables (columns, types, collations,
 * defaults, identity, generated, NOT NULL); OWNED BY; column settings — then the data (COPY, in
 * schema-dump.ts) and sequence values — then primary keys, unique, check and exclusion
 * constraints; indexes; foreign keys; views (a view after the views it reads); triggers; row level
 * security and policies; comments; privileges. No OWNER TO: like pg_restore --no-owner today, the
 * restoring role owns what it restores.
 */
import type pg from 'pg';
import type { SchemaObjects } from './schema-dump-unsupported.ts';

export interface SchemaDdl {
  before: string[];
  /** Tables whose rows are copied: qualified name and the COPY column list (generated columns left out). */
  tables: { name: string; columns: string }[];
  /** Sequence values: `select pg_catalog.setval(…)`, written after the data. */
  sequenceValues: string[];
  after: string[];
}

type Row = Record<string, unknown>;
const q = async <T = Row>(client: pg.ClientBase, sql: string, params: unknown[] = []): Promise<T[]> => (await client.query(sql, params)).rows as T[];
const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
const literal = (value: string) => `'${value.replace(/'/g, "''")}'`;

export async function schemaDdl(client: pg.ClientBase, schema: string, objects: SchemaObjects): Promise<SchemaDdl> {
  const s = ident(schema);
  const tableOids = objects.relations.filter((r) => r.relkind === 'r').map((r) => r.oid);
  const viewOids = objects.relations.filter((r) => r.relkind === 'v').map((r) => r.oid);
  const sequenceOids = objects.relations.filter((r) => r.relkind === 'S').map((r) => r.oid);
  const before: string[] = [`CREATE SCHEMA ${s};`];
  const after: string[] = [];

  const domainDefaults: string[] = [];
  const notValidDomainChecks: string[] = [];
  // Types: enums, domains, composites — each after the types of the schema it is built on.
  const types = await q<{ oid: number; name: string; typtype: string; deps: number[]; labels: string[] | null; base: string; collate: string | null; def: string | null; notnull: boolean; attrs: { name: string; type: string; collate: string | null }[] | null; constraints: { name: string; def: string; contype: string; validated: boolean }[] | null }>(
    client,
    `select t.oid::int8::float8 as oid, t.oid::regtype::text as name, t.typtype,
            array(select d.oid::int8::float8 from pg_type d where d.oid in (t.typbasetype, bt.typelem)
                  union select a.atttypid::int8::float8 from pg_attribute a where a.attrelid = t.typrelid and t.typrelid <> 0 and a.attnum > 0
                  union select e.typelem::int8::float8 from pg_attribute a join pg_type e on e.oid = a.atttypid where a.attrelid = t.typrelid and t.typrelid <> 0 and a.attnum > 0) as deps,
            (select array_agg(quote_literal(e.enumlabel) order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid) as labels,
            format_type(t.typbasetype, t.typtypmod) as base,
            case when t.typcollation <> 0 and t.typcollation <> bt.typcollation then (select quote_ident(n.nspname) || '.' || quote_ident(c.collname) from pg_collation c join pg_namespace n on n.oid = c.collnamespace where c.oid = t.typcollation) end as collate,
            pg_get_expr(t.typdefaultbin, 0) as def, t.typnotnull as notnull,
            (select json_agg(json_build_object('name', quote_ident(a.attname), 'type', format_type(a.atttypid, a.atttypmod),
                    'collate', case when a.attcollation <> at.typcollation then (select quote_ident(n.nspname) || '.' || quote_ident(c.collname) from pg_collation c join pg_namespace n on n.oid = c.collnamespace where c.oid = a.attcollation) end) order by a.attnum)
               from pg_attribute a join pg_type at on at.oid = a.atttypid where a.attrelid = t.typrelid and t.typrelid <> 0 and a.attnum > 0 and not a.attisdropped) as attrs,
            (select json_agg(json_build_object('name', quote_ident(c.conname), 'def', pg_get_constraintdef(c.oid), 'contype', c.contype, 'validated', c.convalidated) order by c.conname)
               from pg_constraint c where c.contypid = t.oid) as constraints
       from pg_type t left join pg_type bt on bt.oid = t.typbasetype
      where t.oid = any($1::oid[])
      order by t.typname`,
    [objects.types],
  );
  for (const t of inDependencyOrder(types, (t) => t.oid, (t) => t.deps)) {
    if (t.typtype === 'e') before.push(`CREATE TYPE ${t.name} AS ENUM (${(t.labels ?? []).join(', ')});`);
    else if (t.typtype === 'c') before.push(`CREATE TYPE ${t.name} AS (${(t.attrs ?? []).map((a) => `${a.name} ${a.type}${a.collate ? ` COLLATE ${a.collate}` : ''}`).join(', ')});`);
    else {
      const notNullConstraint = (t.constraints ?? []).some((c) => c.contype === 'n');
      before.push(`CREATE DOMAIN ${t.name} AS ${t.base}${t.collate ? ` COLLATE ${t.collate}` : ''}${t.notnull && !notNullConstraint ? ' NOT NULL' : ''};`);
      // A domain's default may call a function or nextval() a sequence of the schema, both written
      // below: it is set once they exist (a `DEFAULT nextval('seq')` here made the dump unrestorable).
      if (t.def !== null) domainDefaults.push(`ALTER DOMAIN ${t.name} SET DEFAULT ${t.def};`);
      for (const c of t.constraints ?? []) {
        // A check added NOT VALID over rows that break it is added after the rows (as pg_dump does):
        // before them, COPY checks every row against it and the restore fails.
        if (c.validated) before.push(`ALTER DOMAIN ${t.name} ADD CONSTRAINT ${c.name} ${c.def};`);
        else notValidDomainChecks.push(`ALTER DOMAIN ${t.name} ADD CONSTRAINT ${c.name} ${c.def};`);
      }
    }
  }

  // Functions and procedures: bodies are not checked (they may name tables created below).
  const functions = await q<{ def: string }>(client, 'select pg_get_functiondef(p.oid) as def from pg_proc p where p.oid = any($1::oid[]) order by p.proname, p.oid::regprocedure::text', [objects.functions]);
  // Sequences are spliced in before the functions (below): an argument default such as
  // `n bigint DEFAULT nextval('seq')` is parsed by CREATE FUNCTION, bodies unchecked or not.
  const sequencesAt = before.length;
  for (const f of functions) before.push(`${f.def.trimEnd()};`);

  // Sequences: an identity column's own is created by its column, a serial's is OWNED BY it after its table.
  const sequences = await q<{ oid: number; name: string; type: string; start: string; increment: string; min: string; max: string; cache: string; cycle: boolean; unlogged: boolean; identity: boolean; ownedBy: string | null }>(
    client,
    `select c.oid::int8::float8 as oid, c.oid::regclass::text as name, format_type(s.seqtypid, null) as type, s.seqstart::text as start, s.seqincrement::text as increment,
            s.seqmin::text as min, s.seqmax::text as max, s.seqcache::text as cache, s.seqcycle as cycle, c.relpersistence = 'u' as unlogged,
            exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass and d.deptype = 'i') as identity,
            (select d.refobjid::regclass::text || '.' || quote_ident(a.attname) from pg_depend d join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
              where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass and d.refobjsubid > 0 and d.deptype = 'a') as "ownedBy"
       from pg_class c join pg_sequence s on s.seqrelid = c.oid where c.oid = any($1::oid[]) order by c.relname`,
    [sequenceOids],
  );
  const options = (x: (typeof sequences)[number]) => `START WITH ${x.start} INCREMENT BY ${x.increment} MINVALUE ${x.min} MAXVALUE ${x.max} CACHE ${x.cache}${x.cycle ? ' CYCLE' : ' NO CYCLE'}`;
  before.splice(sequencesAt, 0, ...sequences.filter((x) => !x.identity).map((x) => `CREATE${x.unlogged ? ' UNLOGGED' : ''} SEQUENCE ${x.name} AS ${x.type} ${options(x)};`));
  const identitySequences = new Map(
    (await q<{ table: string; attnum: number; oid: number }>(
      client,
      `select d.refobjid::int8::float8 as table, d.refobjsubid as attnum, d.objid::int8::float8 as oid from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = any($1::oid[]) and d.refclassid = 'pg_class'::regclass and d.deptype = 'i'`,
      [sequences.filter((x) => x.identity).map((x) => x.oid)],
    )).map((d) => [`${d.table}.${d.attnum}`, sequences.find((x) => x.oid === d.oid)!]),
  );

  before.push(...domainDefaults);

  // Tables.
  const tables = await q<{ oid: number; name: string; unlogged: boolean; reloptions: string[] | null; rls: boolean; force: boolean; replident: string; columns: { attnum: number; name: string; type: string; collate: string | null; def: string | null; generated: string; identity: string; notnull: boolean; stattarget: number | null; storage: string | null; options: string[] | null }[] | null }>(
    client,
    `select c.oid::int8::float8 as oid, c.oid::regclass::text as name, c.relpersistence = 'u' as unlogged, c.reloptions, c.relrowsecurity as rls, c.relforcerowsecurity as force, c.relreplident as replident,
            (select json_agg(json_build_object('attnum', a.attnum, 'name', quote_ident(a.attname), 'type', format_type(a.atttypid, a.atttypmod),
                    'collate', case when a.attcollation <> t.typcollation then (select quote_ident(n.nspname) || '.' || quote_ident(co.collname) from pg_collation co join pg_namespace n on n.oid = co.collnamespace where co.oid = a.attcollation) end,
                    'def', pg_get_expr(d.adbin, d.adrelid), 'generated', a.attgenerated, 'identity', a.attidentity, 'notnull', a.attnotnull,
                    'stattarget', nullif(a.attstattarget, -1), 'storage', nullif(a.attstorage, t.typstorage), 'options', a.attoptions) order by a.attnum)
               from pg_attribute a join pg_type t on t.oid = a.atttypid left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns
       from pg_class c where c.oid = any($1::oid[]) order by c.relname`,
    [tableOids],
  );
  const copied: SchemaDdl['tables'] = [];
  const storage: Record<string, string> = { p: 'PLAIN', e: 'EXTERNAL', x: 'EXTENDED', m: 'MAIN' };
  for (const t of tables) {
    const columns = (t.columns ?? []).map((c) => {
      let text = `    ${c.name} ${c.type}${c.collate ? ` COLLATE ${c.collate}` : ''}`;
      if (c.generated === 's') text += ` GENERATED ALWAYS AS (${c.def}) STORED`;
      else if (c.def !== null) text += ` DEFAULT ${c.def}`;
      if (c.identity === 'a' || c.identity === 'd') {
        const x = identitySequences.get(`${t.oid}.${c.attnum}`);
        if (!x) throw new Error(`the identity sequence of ${t.name}.${c.name} was not found`);
        text += ` GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY (SEQUENCE NAME ${x.name} ${options(x)})`;
      }
      if (c.notnull) text += ' NOT NULL';
      return text;
    });
    before.push(`CREATE${t.unlogged ? ' UNLOGGED' : ''} TABLE ${t.name} (\n${columns.join(',\n')}\n)${t.reloptions ? ` WITH (${t.reloptions.join(', ')})` : ''};`);
    for (const c of t.columns ?? []) {
      if (c.stattarget !== null) before.push(`ALTER TABLE ONLY ${t.name} ALTER COLUMN ${c.name} SET STATISTICS ${c.stattarget};`);
      if (c.storage !== null) before.push(`ALTER TABLE ONLY ${t.name} ALTER COLUMN ${c.name} SET STORAGE ${storage[c.storage]};`);
      // Options the server keeps for itself (`pg_…`, e.g. pg_attver on some builds) are not written, as pg_dump does not.
      const columnOptions = (c.options ?? []).filter((option) => !option.startsWith('pg_'));
      if (columnOptions.length > 0) before.push(`ALTER TABLE ONLY ${t.name} ALTER COLUMN ${c.name} SET (${columnOptions.join(', ')});`);
    }
    if (t.replident === 'f') before.push(`ALTER TABLE ONLY ${t.name} REPLICA IDENTITY FULL;`);
    if (t.replident === 'n') before.push(`ALTER TABLE ONLY ${t.name} REPLICA IDENTITY NOTHING;`);
    copied.push({ name: t.name, columns: (t.columns ?? []).filter((c) => c.generated === '').map((c) => c.name).join(', ') });
  }
  for (const x of sequences) if (x.ownedBy && !x.identity) before.push(`ALTER SEQUENCE ${x.name} OWNED BY ${x.ownedBy};`);

  // Sequence values: read from each sequence (not transactional: its value now, like pg_dump's).
  const sequenceValues: string[] = [];
  for (const x of sequences) {
    const [value] = await q<{ last: string; called: boolean }>(client, `select last_value::text as last, is_called as called from ${x.name}`);
    sequenceValues.push(`SELECT pg_catalog.setval(${literal(x.name)}, ${value!.last}, ${value!.called});`);
  }

  // Constraints and indexes, after the data; foreign keys last.
  const constraints = await q<{ name: string; rel: string; contype: string; def: string }>(
    client,
    `select quote_ident(c.conname) as name, c.conrelid::regclass::text as rel, c.contype, pg_get_constraintdef(c.oid) as def
       from pg_constraint c where c.conrelid = any($1::oid[]) and c.contype in ('p', 'u', 'c', 'x', 'f')
      order by c.conrelid::regclass::text, case c.contype when 'p' then 0 when 'u' then 1 when 'x' then 2 when 'c' then 3 else 4 end, c.conname`,
    [tableOids],
  );
  after.push(...notValidDomainChecks);
  for (const c of constraints.filter((c) => c.contype !== 'f')) after.push(`ALTER TABLE ONLY ${c.rel} ADD CONSTRAINT ${c.name} ${c.def};`);
  const indexes = await q<{ def: string; rel: string; name: string; qualified: string; clustered: boolean; byConstraint: boolean; reloptions: string[] | null; stats: { attnum: number; target: number }[] | null }>(
    client,
    `select pg_get_indexdef(i.indexrelid) as def, i.indrelid::regclass::text as rel, quote_ident(ic.relname) as name, i.indexrelid::regclass::text as qualified, i.indisclustered as clustered,
            exists (select 1 from pg_constraint c where c.conrelid = i.indrelid and c.conindid = i.indexrelid and c.contype in ('p', 'u', 'x')) as "byConstraint",
            ic.reloptions,
            (select json_agg(json_build_object('attnum', a.attnum, 'target', a.attstattarget) order by a.attnum) from pg_attribute a
              where a.attrelid = i.indexrelid and a.attstattarget > 0) as stats
       from pg_index i join pg_class ic on ic.oid = i.indexrelid
      where i.indrelid = any($1::oid[]) and i.indisvalid order by ic.relname`,
    [tableOids],
  );
  for (const i of indexes) {
    if (!i.byConstraint) after.push(`${i.def};`);
    // pg_get_constraintdef leaves out the storage parameters of a constraint's index (pg_dump adds
    // them itself): without this a PRIMARY KEY/UNIQUE … WITH (fillfactor=…) came back without them.
    else if (i.reloptions) after.push(`ALTER INDEX ${i.qualified} SET (${i.reloptions.join(', ')});`);
    // Statistics targets of expression-index columns (ALTER INDEX … ALTER COLUMN n SET STATISTICS) were lost.
    for (const st of i.stats ?? []) after.push(`ALTER INDEX ${i.qualified} ALTER COLUMN ${st.attnum} SET STATISTICS ${st.target};`);
    if (i.clustered) after.push(`ALTER TABLE ONLY ${i.rel} CLUSTER ON ${i.name};`);
  }
  for (const c of constraints.filter((c) => c.contype === 'f')) after.push(`ALTER TABLE ONLY ${c.rel} ADD CONSTRAINT ${c.name} ${c.def};`);

  // Views, each after the views of the schema it reads.
  const views = await q<{ oid: number; name: string; def: string; reloptions: string[] | null; deps: number[] }>(
    client,
    `select c.oid::int8::float8 as oid, c.oid::regclass::text as name, pg_get_viewdef(c.oid) as def, c.reloptions,
            array(select distinct d.refobjid::int8::float8 from pg_rewrite r join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
                   where r.ev_class = c.oid and d.refclassid = 'pg_class'::regclass and d.refobjid <> c.oid) as deps
       from pg_class c where c.oid = any($1::oid[]) order by c.relname`,
    [viewOids],
  );
  for (const v of inDependencyOrder(views, (v) => v.oid, (v) => v.deps)) {
    after.push(`CREATE VIEW ${v.name}${v.reloptions ? ` WITH (${v.reloptions.join(', ')})` : ''} AS\n${v.def.trim().replace(/;$/, '')};`);
  }

  const relationOids = [...tableOids, ...viewOids];
  const triggers = await q<{ def: string; rel: string; name: string; enabled: string }>(
    client,
    `select pg_get_triggerdef(t.oid) as def, t.tgrelid::regclass::text as rel, quote_ident(t.tgname) as name, t.tgenabled as enabled
       from pg_trigger t where t.tgrelid = any($1::oid[]) and not t.tgisinternal order by t.tgrelid::regclass::text, t.tgname`,
    [relationOids],
  );
  const enabled: Record<string, string> = { D: 'DISABLE TRIGGER', R: 'ENABLE REPLICA TRIGGER', A: 'ENABLE ALWAYS TRIGGER' };
  for (const t of triggers) {
    after.push(`${t.def};`);
    if (enabled[t.enabled]) after.push(`ALTER TABLE ${t.rel} ${enabled[t.enabled]} ${t.name};`);
  }

  for (const t of tables) {
    if (t.rls) after.push(`ALTER TABLE ${t.name} ENABLE ROW LEVEL SECURITY;`);
    if (t.force) after.push(`ALTER TABLE ${t.name} FORCE ROW LEVEL SECURITY;`);
  }
  const policies = await q<{ name: string; rel: string; permissive: boolean; cmd: string; roles: string; qual: string | null; check: string | null }>(
    client,
    `select quote_ident(p.polname) as name, p.polrelid::regclass::text as rel, p.polpermissive as permissive, p.polcmd as cmd,
            (select string_agg(case when r = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(r)) end, ', ' order by case when r = 0 then '' else pg_get_userbyid(r)::text end) from unnest(p.polroles) r) as roles,
            pg_get_expr(p.polqual, p.polrelid) as qual, pg_get_expr(p.polwithcheck, p.polrelid) as check
       from pg_policy p where p.polrelid = any($1::oid[]) order by p.polrelid::regclass::text, p.polname`,
    [tableOids],
  );
  const commands: Record<string, string> = { '*': 'ALL', r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE' };
  for (const p of policies) {
    after.push(`CREATE POLICY ${p.name} ON ${p.rel} AS ${p.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'} FOR ${commands[p.cmd]} TO ${p.roles}${p.qual !== null ? ` USING (${p.qual})` : ''}${p.check !== null ? ` WITH CHECK (${p.check})` : ''};`);
  }

  after.push(...(await comments(client, objects, relationOids)));
  after.push(...(await privileges(client, objects)));
  return { before, tables: copied, sequenceValues, after };
}

/** COMMENT ON every commented object of the schema: itself, relations, columns, indexes, types, functions, constraints, triggers, policies. */
async function comments(client: pg.ClientBase, objects: SchemaObjects, relationOids: number[]): Promise<string[]> {
  const rows = await q<{ target: string; text: string }>(
    client,
    `with owned as (
       select $1::oid as oid
       union all select unnest($2::oid[]) union all select unnest($3::oid[]) union all select unnest($4::oid[])
       union all select typrelid from pg_type where oid = any($3::oid[]) and typrelid <> 0
       union all select indexrelid from pg_index where indrelid = any($5::oid[])
       union all select oid from pg_constraint where conrelid = any($5::oid[]) or contypid = any($3::oid[])
       union all select oid from pg_trigger where tgrelid = any($5::oid[]) and not tgisinternal
       union all select oid from pg_policy where polrelid = any($5::oid[]))
     select quote_literal(d.description) as text,
            case d.classoid
              when 'pg_namespace'::regclass then 'SCHEMA ' || (select quote_ident(nspname) from pg_namespace where oid = d.objoid)
              when 'pg_class'::regclass then (select case when d.objsubid > 0 then 'COLUMN ' || c.oid::regclass::text || '.' || (select quote_ident(attname) from pg_attribute where attrelid = c.oid and attnum = d.objsubid)
                                                          else case c.relkind when 'v' then 'VIEW ' when 'S' then 'SEQUENCE ' when 'i' then 'INDEX ' else 'TABLE ' end || c.oid::regclass::text end
                                                from pg_class c where c.oid = d.objoid)
              when 'pg_type'::regclass then (select case t.typtype when 'd' then 'DOMAIN ' else 'TYPE ' end || t.oid::regtype::text from pg_type t where t.oid = d.objoid)
              when 'pg_proc'::regclass then (select case p.prokind when 'p' then 'PROCEDURE ' else 'FUNCTION ' end || p.oid::regprocedure::text from pg_proc p where p.oid = d.objoid)
              when 'pg_constraint'::regclass then (select 'CONSTRAINT ' || quote_ident(c.conname) || ' ON ' || case when c.contypid <> 0 then 'DOMAIN ' || c.contypid::regtype::text else c.conrelid::regclass::text end from pg_constraint c where c.oid = d.objoid)
              when 'pg_trigger'::regclass then (select 'TRIGGER ' || quote_ident(t.tgname) || ' ON ' || t.tgrelid::regclass::text from pg_trigger t where t.oid = d.objoid)
              when 'pg_policy'::regclass then (select 'POLICY ' || quote_ident(p.polname) || ' ON ' || p.polrelid::regclass::text from pg_policy p where p.oid = d.objoid)
            end as target
       from pg_description d
      where d.objoid in (select oid from owned)
        and d.classoid in ('pg_namespace'::regclass, 'pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, 'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_policy'::regclass)
      order by 2`,
    [objects.namespace, objects.relations.map((r) => r.oid), objects.types, objects.functions, relationOids],
  );
  return rows.filter((r) => r.target !== null).map((r) => `COMMENT ON ${r.target} IS ${r.text};`);
}

/**
 * GRANT and REVOKE as pg_dump writes them: what an object's ACL holds beyond the owner's defaults
 * (acldefault), and what it lacks of them. Grants to a tenant role come back with it (the restore
 * creates the role first). Column privileges too.
 */
async function privileges(client: pg.ClientBase, objects: SchemaObjects): Promise<string[]> {
  const rows = await q<{ action: string; kind: string; target: string; privileges: string; grantee: string; grantable: boolean; columns: string | null }>(
    client,
    `with acls(kind, target, acl, def, ord) as (
       select 'SCHEMA', quote_ident(n.nspname), n.nspacl, acldefault('n'::"char", n.nspowner), 0 from pg_namespace n where n.oid = $1
       union all select case c.relkind when 'S' then 'SEQUENCE' else 'TABLE' end, c.oid::regclass::text, c.relacl, acldefault((case c.relkind when 'S' then 's' else 'r' end)::"char", c.relowner), 1 from pg_class c where c.oid = any($2::oid[])
       union all select case t.typtype when 'd' then 'DOMAIN' else 'TYPE' end, t.oid::regtype::text, t.typacl, acldefault('T'::"char", t.typowner), 2 from pg_type t where t.oid = any($3::oid[])
       union all select case p.prokind when 'p' then 'PROCEDURE' else 'FUNCTION' end, p.oid::regprocedure::text, p.proacl, acldefault('f'::"char", p.proowner), 3 from pg_proc p where p.oid = any($4::oid[])),
     changes as (
       select 'REVOKE' as action, kind, target, ord, x.* from acls, lateral (select grantee, privilege_type, is_grantable from aclexplode(def) except select grantee, privilege_type, is_grantable from aclexplode(acl)) x where acl is not null
       union all
       select 'GRANT', kind, target, ord, x.* from acls, lateral (select grantee, privilege_type, is_grantable from aclexplode(acl) except select grantee, privilege_type, is_grantable from aclexplode(def)) x where acl is not null)
     select action, kind, target, string_agg(privilege_type, ', ' order by privilege_type) as privileges,
            case when grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(grantee)) end as grantee, is_grantable as grantable, null as columns
       from changes group by action, kind, target, ord, grantee, is_grantable
     union all
     select 'GRANT', 'TABLE', a.attrelid::regclass::text, x.privilege_type, case when x.grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(x.grantee)) end, x.is_grantable,
            string_agg(quote_ident(a.attname), ', ' order by a.attnum)
       from pg_attribute a, lateral aclexplode(a.attacl) x
      where a.attrelid = any($2::oid[]) and a.attnum > 0 and not a.attisdropped and a.attacl is not null
      group by a.attrelid, x.privilege_type, x.grantee, x.is_grantable
     order by 1 desc, 2, 3, 5`,
    [objects.namespace, objects.relations.map((r) => r.oid), objects.types, objects.functions],
  );
  return rows.map((r) =>
    r.action === 'REVOKE'
      ? `REVOKE ${r.privileges} ON ${r.kind} ${r.target} FROM ${r.grantee};`
      : `GRANT ${r.columns ? `${r.privileges} (${r.columns})` : r.privileges} ON ${r.kind} ${r.target} TO ${r.grantee}${r.grantable ? ' WITH GRANT OPTION' : ''};`,
  );
}

/** Items in an order where each comes after those of the list it depends on (others' dependencies ignored). */
function inDependencyOrder<T>(items: T[], key: (item: T) => number, deps: (item: T) => number[]): T[] {
  const byKey = new Map(items.map((item) => [key(item), item]));
  const done = new Set<number>();
  const ordered: T[] = [];
  const visit = (item: T, path: Set<number>) => {
    const k = key(item);
    if (done.has(k) || path.has(k)) return;
    path.add(k);
    for (const dep of deps(item)) {
      const other = byKey.get(dep);
      if (other) visit(other, path);
    }
    done.add(k);
    ordered.push(item);
  };
  for (const item of items) visit(item, new Set());
  return ordered;
}
