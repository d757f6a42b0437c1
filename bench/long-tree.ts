/**
 * A generated tenant tree with a long history (issue 23, part 4): 150 Knex migrations — tables,
 * added columns, indexes, triggers, and a data migration every tenth file — written to a temporary
 * directory (never committed). Such a tree never takes the replay route: its data migrations are
 * not replayable, so every provisioning runs all 150 modules.
 *
 * @example
 *   const dir = writeLongTree(150); // → /tmp/tm-long-tree-XXXX with 150 .ts files
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Writes the tree and returns its directory (the caller removes it). */
export function writeLongTree(count = 150): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-long-tree-'));
  const tables: string[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `2025${String(Math.floor(i / 28) + 1).padStart(2, '0')}${String((i % 28) + 1).padStart(2, '0')}${String(i).padStart(6, '0')}`;
    let slug: string;
    let up: string;
    if (i === 1) {
      slug = 'touch_function';
      up = `  await knex.raw(\`create function touch_updated_at() returns trigger language plpgsql as $$ begin new.updated_at := now(); return new; end $$\`);`;
    } else if (i % 10 === 0 && tables.length > 0) {
      // A data migration: rows the application expects, then a backfill of them.
      const table = tables[tables.length - 1]!;
      slug = `seed_${table}`;
      up = `  await knex('${table}').insert(Array.from({ length: 20 }, (_, n) => ({ name: 'row ' + n })));
  await knex('${table}').update({ name: knex.raw("name || ' (backfilled)'") });`;
    } else if (i % 4 === 2 || tables.length === 0) {
      const table = `t${String(i).padStart(3, '0')}`;
      const parent = tables.at(-1);
      tables.push(table);
      slug = `create_${table}`;
      up = `  await knex.schema.createTable('${table}', (t) => {
    t.bigIncrements('id');
    t.string('name', 200).notNullable();
    t.jsonb('attributes').notNullable().defaultTo('{}');
    ${parent ? `t.bigInteger('${parent}_id').references('id').inTable('${parent}').onDelete('CASCADE');` : ''}
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });`;
    } else if (i % 4 === 3) {
      const table = tables[i % tables.length]!;
      slug = `add_column_${table}_c${i}`;
      up = `  await knex.schema.alterTable('${table}', (t) => { t.integer('c${i}').notNullable().defaultTo(0); t.text('note${i}'); });`;
    } else if (i % 8 === 0) {
      const table = tables[i % tables.length]!;
      slug = `trigger_${table}_${i}`;
      up = `  await knex.raw('create trigger ${table}_touch_${i} before update on ${table} for each row execute function touch_updated_at()');`;
    } else {
      const table = tables[i % tables.length]!;
      slug = `index_${table}_${i}`;
      up = `  await knex.schema.alterTable('${table}', (t) => { t.index(['name', 'created_at'], '${table}_name_created_${i}'); });`;
    }
    fs.writeFileSync(path.join(dir, `${name}_${slug}.ts`), `import type { Knex } from 'knex';\nexport async function up(knex: Knex) {\n${up}\n}\nexport async function down() {}\n`);
  }
  return dir;
}
