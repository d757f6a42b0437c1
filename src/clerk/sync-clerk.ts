/**
 * `sync:clerk`: the nightly catch-up for lost webhook deliveries (Clerk does not guarantee
 * delivery). Compares Clerk's organisations with the registry, provisions what is missing and
 * reports tenants whose org is gone. It never deletes anything.
 */
import type { Knex } from 'knex';
import { provisionTenant } from '../tenants/provision.ts';
import { registryOf } from '../tenants/options.ts';
import { ensureRegistry, listTenants } from '../tenants/registry.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { listClerkOrganizationIds, type ClerkApiOptions } from './clerk-api.ts';

export interface SyncClerkOptions extends ClerkApiOptions {
  /** Only report what would be provisioned; write nothing. */
  dryRun?: boolean;
  /** The tenant migrations directory. Default `migrations/tenant`. */
  tenantDirectory?: string;
  /** Orgs provisioned at once. Default 4. */
  concurrency?: number;
  /** The registry table. Default `public.tenants`. */
  registry?: RegistryTable;
}

export interface SyncClerkResult {
  command: 'sync:clerk';
  /** False when an org could not be provisioned (see `failed`). Orgs missing in Clerk do not make it false. */
  ok: boolean;
  dryRun: boolean;
  /** Orgs that had no tenant and were provisioned (with `dryRun`: would be). */
  provisioned: string[];
  /** Registered tenants whose org Clerk no longer lists (kept; deprovision them deliberately). */
  missingInClerk: string[];
  /** Orgs in Clerk that already had a tenant. */
  upToDate: number;
  /** Orgs whose provisioning failed, with why. */
  failed: { orgId: string; error: string }[];
  ms: number;
}

/**
 * Lists every Clerk organisation, provisions those without a tenant and lists tenants whose org
 * Clerk no longer has. The Clerk API is read completely before anything is written, so an API
 * failure changes nothing.
 *
 * @example
 *   const result = await syncClerk(knex, { secretKey: process.env.CLERK_SECRET_KEY!, dryRun: true });
 *   console.log(result.provisioned, result.missingInClerk);
 */
export async function syncClerk(knex: Knex, options: SyncClerkOptions): Promise<SyncClerkResult> {
  const started = performance.now();
  const inClerk = await listClerkOrganizationIds(options);
  if (!options.dryRun) await ensureRegistry(knex, registryOf(options));
  const registered = new Set((await listTenants(knex, registryOf(options)).catch(noRegistryYet)).map((tenant) => tenant.orgId));
  const clerkIds = new Set(inClerk);
  const missing = [...clerkIds].filter((orgId) => !registered.has(orgId));
  const missingInClerk = [...registered].filter((orgId) => !clerkIds.has(orgId)).sort();
  const upToDate = clerkIds.size - missing.length;

  let provisioned = missing;
  const failed: SyncClerkResult['failed'] = [];
  if (!options.dryRun && missing.length > 0) {
    const result = await provisionTenant(knex, missing, {
      directory: options.tenantDirectory,
      concurrency: options.concurrency,
      continueOnError: true,
      registry: options.registry,
    });
    provisioned = result.tenants.filter((tenant) => tenant.status !== 'failed' && tenant.status !== 'skipped').map((tenant) => tenant.orgId);
    for (const tenant of result.tenants) {
      if (tenant.status === 'failed' || tenant.status === 'skipped') failed.push({ orgId: tenant.orgId, error: tenant.error ?? tenant.status });
    }
  }
  return {
    command: 'sync:clerk',
    ok: failed.length === 0,
    dryRun: Boolean(options.dryRun),
    provisioned,
    missingInClerk,
    upToDate,
    failed,
    ms: Math.round(performance.now() - started),
  };
}

/** A dry run on a database never provisioned has no registry: nothing is registered. */
function noRegistryYet(error: { code?: string }): [] {
  if (error.code === '42P01') return [];
  throw error;
}
