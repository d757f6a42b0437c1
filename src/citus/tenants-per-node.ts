/**
 * How many tenants each Citus node holds, for `status`. Read from Citus's metadata tables (not the
 * `citus_shards` view, which asks every worker for shard sizes): a distributed schema's tables are
 * co-located, so any one placement of its colocation group tells the node. A registered schema
 * that is not distributed lives on the coordinator.
 */
import type { Knex } from 'knex';
import { registrySql, type RegistryTable } from '../tenants/registry-table.ts';

export interface NodeTenants {
  /** `host:port` as the cluster's metadata names it. */
  node: string;
  tenants: number;
}

export async function tenantsPerNode(knex: Knex, registry: RegistryTable): Promise<NodeTenants[]> {
  const { rows } = await knex.raw<{ rows: { node: string; tenants: number }[] }>(
    `with placed as (
       select distinct on (ds.schemaid) ds.schemaid, pl.groupid
         from pg_dist_schema ds
         join pg_dist_partition p on p.colocationid = ds.colocationid
         join pg_dist_shard s on s.logicalrelid = p.logicalrelid
         join pg_dist_placement pl on pl.shardid = s.shardid
        order by ds.schemaid, pl.groupid
     ),
     tenants as (
       select coalesce(placed.groupid, 0) as groupid
         from ${registrySql(registry)} t
         join pg_namespace n on n.nspname = t.schema_name
         left join placed on placed.schemaid = n.oid
     )
     select nd.nodename || ':' || nd.nodeport as node, count(tenants.groupid)::int as tenants
       from pg_dist_node nd
       left join tenants on tenants.groupid = nd.groupid
      where nd.noderole = 'primary' and nd.isactive
      group by nd.nodename, nd.nodeport, nd.groupid
      order by nd.groupid`,
  );
  return rows;
}
