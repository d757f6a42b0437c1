/**
 * `move:tenant`: moves one tenant's distributed schema to another Citus worker with
 * citus_schema_move(), under the tenant's advisory lock, so a migration of that tenant (which takes
 * the same lock) waits for the move instead of racing it. Every table of the schema moves together
 * (they are co-located); the coordinator keeps routing queries, so nothing else changes for the app.
 */
import { liveSettingsOf, timeoutsSql, type LiveOptions } from '../db/lock-settings.ts';
import type { Knex } from 'knex';
import { schemaLockKey } from '../db/advisory-lock.ts';
import { READ_COMMITTED } from '../db/isolation.ts';
import { UsageError } from '../errors.ts';
import { validateOrgIds } from '../tenants/naming.ts';
import { DEFAULT_REGISTRY, registrySql, type RegistryTable } from '../tenants/registry-table.ts';
import { hasCitus } from './detect.ts';

/**
 * `block-writes` (the default) copies the tables while writes to them wait — simple, and short for
 * a tenant's data; `logical` copies with logical replication and blocks writes only for the final
 * switch (needs a primary key or replica identity on every table, and wal_level = logical).
 */
export type MoveMode = 'block-writes' | 'logical';
export const MOVE_MODES: readonly MoveMode[] = ['block-writes', 'logical'];
const TRANSFER_MODE: Record<MoveMode, string> = { 'block-writes': 'block_writes', logical: 'force_logical' };

export interface MoveTenantOptions extends LiveOptions {
  /** The target worker, `host:port` as `status` lists it. */
  to: string;
  mode?: MoveMode;
  registry?: RegistryTable;
}

export interface MoveTenantResult {
  ok: true;
  orgId: string;
  schema: string;
  /** Where the tenant was (`host:port`). */
  from: string;
  /** Where it is now. */
  to: string;
  mode: MoveMode;
  /** False when the tenant already was on the target node: nothing was done. */
  moved: boolean;
  ms: number;
}

/**
 * @example
 *   const result = await moveTenant(knex, 'org_2abc123def456', { to: '10.0.0.12:5432' });
 *   result.from; // '10.0.0.11:5432'
 * @throws UsageError (nothing changed) for an unknown org, a target that is not an active worker,
 *   a database without Citus or a schema that is not distributed.
 */
export async function moveTenant(knex: Knex, orgId: string, options: MoveTenantOptions): Promise<MoveTenantResult> {
  const started = performance.now();
  const wanted = validateOrgIds([orgId])[0]!;
  const mode = options.mode ?? 'block-writes';
  if (!MOVE_MODES.includes(mode)) throw new UsageError(`--mode must be one of ${MOVE_MODES.join(', ')} (got "${mode}"). Nothing was changed.`);
  const target = parseNode(options.to);
  if (!(await hasCitus(knex))) {
    throw new UsageError('move:tenant needs a Citus coordinator: the citus extension is not created in this database. Nothing was changed.');
  }
  const registry = options.registry ?? DEFAULT_REGISTRY;
  const { rows: found } = await knex.raw<{ rows: { schema: string }[] }>(
    `select schema_name as schema from ${registrySql(registry)} where org_id = ?`,
    [wanted],
  );
  const schema = found[0]?.schema;
  if (!schema) throw new UsageError(`${wanted} is not provisioned (no row in the registry). Nothing was changed.`);

  return knex.transaction(
    async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?, ?)', [...schemaLockKey(schema)]);
      await trx.raw(timeoutsSql(liveSettingsOf(options)));
      const from = await nodeOf(trx, schema);
      if (!from) {
        throw new UsageError(
          `${wanted} (${schema}) is not a distributed schema: it was provisioned before Citus was enabled, or with TENANT_MIGRATE_CITUS=off. ` +
            `Distribute it first (SELECT citus_schema_distribute('${schema}')). Nothing was changed.`,
        );
      }
      const { rows: nodes } = await trx.raw<{ rows: { found: boolean }[] }>(
        `select exists (select 1 from pg_dist_node where nodename = ? and nodeport = ? and noderole = 'primary' and isactive and shouldhaveshards) as found`,
        [target.host, target.port],
      );
      if (!nodes[0]?.found) {
        throw new UsageError(`${options.to} is not an active worker of this cluster (see pg_dist_node, or \`status\`). Nothing was changed.`);
      }
      const to = `${target.host}:${target.port}`;
      if (from === to) return { ok: true, orgId: wanted, schema, from, to, mode, moved: false, ms: elapsed(started) } as const;
      await trx.raw('select citus_schema_move(?::regnamespace, ?, ?, ?::citus.shard_transfer_mode)', [schema, target.host, target.port, TRANSFER_MODE[mode]]);
      const now = await nodeOf(trx, schema);
      return { ok: true, orgId: wanted, schema, from, to: now ?? to, mode, moved: true, ms: elapsed(started) } as const;
    },
    READ_COMMITTED,
  );
}

/** `host:port` of the node holding a distributed schema's tables, or undefined when it is not one. */
async function nodeOf(knex: Knex, schema: string): Promise<string | undefined> {
  const { rows } = await knex.raw<{ rows: { node: string }[] }>(
    `select nd.nodename || ':' || nd.nodeport as node
       from pg_dist_schema ds
       join pg_dist_partition p on p.colocationid = ds.colocationid
       join pg_dist_shard s on s.logicalrelid = p.logicalrelid
       join pg_dist_placement pl on pl.shardid = s.shardid
       join pg_dist_node nd on nd.groupid = pl.groupid
      where ds.schemaid = to_regnamespace(?)
      limit 1`,
    [schema],
  );
  return rows[0]?.node;
}

function parseNode(value: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(`--to must be a worker as host:port (e.g. 10.0.0.12:5432), got "${value}". Nothing was changed.`);
  }
  return { host: match[1]!, port };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
