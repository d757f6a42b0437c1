/**
 * A tenant's end state as data, read the same way from the database tenant-migrate worked on and
 * from the reference database, so two states compare part by part: catalog (relations, columns,
 * indexes, constraints, functions, triggers, enum types, sequences, comments), the rows of every
 * table, `knex_migrations` (name and batch — not the time) and, added by the caller, the registry
 * row and the reported status.
 *
 * The catalog is read with PostgreSQL's own deparsers (pg_get_indexdef, pg_get_constraintdef,
 * pg_get_functiondef, pg_get_triggerdef), under the default search_path, so names come out
 * schema-qualified; both databases use the same org ids, hence the same schema names, and the
 * text compares directly.
 */
import type { Knex } from 'knex';

/** One tenant schema's catalog and data (`exists: false` and nothing else when there is no schema). */
export interface SchemaState {
  exists: boolean;
  relations?: unknown[];
  columns?: unknown[];
  indexes?: unknown[];
  constraints?: unknown[];
  functions?: unknown[];
  triggers?: unknown[];
  enums?: unknown[];
  sequences?: unknown[];
  knexMigrations?: unknown[];
  rows?: Record<string, unknown[]>;
}

/** Creates the server-side reader of a schema's rows (once per database; it lives in `public`). */
export async function installStateReader(knex: Knex): Promise<void> {
  await knex.raw(`
    create or replace function public.differential_schema_rows(target text) returns jsonb language plpgsql as $fn$
    declare
      rel record;
      result jsonb := '{}';
      dump jsonb;
    begin
      for rel in select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where n.nspname = target and c.relkind in ('r', 'p', 'm') and c.relname <> 'knex_migrations'
                  order by c.relname loop
        execute format('select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text), ''[]'') from %I.%I t', target, rel.relname) into dump;
        result := result || jsonb_build_object(rel.relname, dump);
      end loop;
      if to_regclass(format('%I.knex_migrations', target)) is not null then
        execute format('select coalesce(jsonb_agg(jsonb_build_array(name, batch) order by id), ''[]'') from %I.knex_migrations', target) into dump;
        result := result || jsonb_build_object('knex_migrations', dump);
      end if;
      return result;
    end
    $fn$`);
}

/** Parts read by one catalog query each, grouped by schema; `$1` is the array of schema names. */
const CATALOG: Record<string, string> = {
  relations: `
    select n.nspname as schema, c.relname as name, c.relkind::text as kind, c.relpersistence::text as persistence,
           obj_description(c.oid, 'pg_class') as comment
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any(?) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c')
     order by 1, 2`,
  columns: `
    select n.nspname as schema, c.relname as "table", a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
           a.attnotnull as "notNull", pg_get_expr(d.adbin, d.adrelid) as "default", a.attidentity::text as identity,
           a.attgenerated::text as generated, col_description(c.oid, a.attnum) as comment
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where n.nspname = any(?) and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
     order by 1, 2, a.attnum`,
  indexes: `
    select n.nspname as schema, c.relname as name, pg_get_indexdef(i.indexrelid) as def
      from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any(?)
     order by 1, 2`,
  constraints: `
    select n.nspname as schema, coalesce(c.relname, t.typname) as "on", con.conname as name, con.contype::text as type,
           pg_get_constraintdef(con.oid) as def, con.convalidated as validated
      from pg_constraint con
      join pg_namespace n on n.oid = con.connamespace
      left join pg_class c on c.oid = con.conrelid
      left join pg_type t on t.oid = con.contypid
     where n.nspname = any(?)
     order by 1, 2, 3`,
  functions: `
    select n.nspname as schema, p.proname as name, pg_get_function_identity_arguments(p.oid) as args,
           pg_get_functiondef(p.oid) as def, obj_description(p.oid, 'pg_proc') as comment
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = any(?) and p.prokind in ('f', 'p')
     order by 1, 2, 3`,
  triggers: `
    select n.nspname as schema, c.relname as "table", t.tgname as name, pg_get_triggerdef(t.oid) as def, t.tgenabled::text as enabled
      from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any(?) and not t.tgisinternal
     order by 1, 2, 3`,
  enums: `
    select n.nspname as schema, t.typname as name, array_agg(e.enumlabel::text order by e.enumsortorder) as labels,
           obj_description(t.oid, 'pg_type') as comment
      from pg_type t join pg_namespace n on n.oid = t.typnamespace join pg_enum e on e.enumtypid = t.oid
     where n.nspname = any(?)
     group by 1, 2, t.oid
     order by 1, 2`,
  // The bookkeeping's own sequences are left out: a failed attempt that the executor retries
  // advances them (sequences are not transactional), and their values mean nothing to a user.
  sequences: `
    select schemaname as schema, sequencename as name, data_type::text as type, start_value::text, min_value::text,
           max_value::text, increment_by::text, cycle, last_value::text
      from pg_sequences
     where schemaname = any(?) and sequencename not in ('knex_migrations_id_seq', 'knex_migrations_lock_index_seq')
     order by 1, 2`,
};

/**
 * The state of each schema, keyed by schema name.
 *
 * @example
 *   const states = await readSchemaStates(knex, ['tid_cf4116b064']);
 *   states.get('tid_cf4116b064')?.columns;
 */
export async function readSchemaStates(knex: Knex, schemas: readonly string[]): Promise<Map<string, SchemaState>> {
  const { rows: present } = await knex.raw<{ rows: { nspname: string }[] }>('select nspname from pg_namespace where nspname = any(?)', [
    [...schemas],
  ]);
  const states = new Map<string, SchemaState>(schemas.map((schema) => [schema, { exists: false }]));
  for (const { nspname } of present) states.set(nspname, { exists: true, rows: {} });
  for (const [part, sql] of Object.entries(CATALOG)) {
    for (const schema of present.map((row) => row.nspname)) (states.get(schema) as unknown as Record<string, unknown[]>)[part] = [];
    const { rows } = await knex.raw<{ rows: ({ schema: string } & Record<string, unknown>)[] }>(sql, [[...schemas]]);
    for (const { schema, ...row } of rows) (states.get(schema) as unknown as Record<string, unknown[]>)[part]!.push(row);
  }
  for (const { nspname } of present) {
    const { rows } = await knex.raw<{ rows: { dump: Record<string, unknown[]> }[] }>('select public.differential_schema_rows(?) as dump', [nspname]);
    const { knex_migrations: knexMigrations, ...tables } = rows[0]!.dump;
    const state = states.get(nspname)!;
    state.rows = tables;
    state.knexMigrations = knexMigrations ?? [];
  }
  return states;
}
