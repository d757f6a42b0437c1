/** Which registered tenants a fleet command works on (`--tenant` narrows it). */
import type { Knex } from 'knex';
import { UsageError } from '../errors.ts';
import { printableOrgId, validateOrgIds } from './naming.ts';
import { ensureRegistry, listTenants, type TenantRecord } from './registry.ts';
import { DEFAULT_REGISTRY, type RegistryTable } from './registry-table.ts';

/**
 * The registered tenants, or only those named. A named org id that is not registered is an error
 * (exit 2), checked before any tenant is touched.
 */
export async function selectTenants(
  knex: Knex,
  orgIds: readonly string[] | undefined,
  registry: RegistryTable = DEFAULT_REGISTRY,
): Promise<TenantRecord[]> {
  const wanted = orgIds && orgIds.length > 0 ? validateOrgIds(orgIds) : undefined;
  await ensureRegistry(knex, registry);
  const tenants = await listTenants(knex, registry, wanted);
  if (wanted) {
    const found = new Set(tenants.map((tenant) => tenant.orgId));
    const unknown = wanted.filter((orgId) => !found.has(orgId));
    if (unknown.length > 0) {
      throw new UsageError(
        `Not a registered tenant: ${unknown.map(printableOrgId).join(', ')}. Provision it first (provision:tenant). Nothing was changed.`,
      );
    }
  }
  return tenants;
}
