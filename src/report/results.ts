/**
 * The result objects every command returns: the library returns them, `--json` prints them as they
 * are, and the human output is rendered from them.
 */
import type { Blocker } from './blockers.ts';
import type { LockReason } from '../db/lock-errors.ts';

/**
 * `unchanged`: a rollback had nothing to undo in that tenant (it holds none of the release, nothing
 * after `--to`, or nothing at all with `--all`). A rollback never reports `up-to-date`: being at
 * the newest migration is what a rollback changes.
 */
export type TenantStatus = 'migrated' | 'rolled-back' | 'up-to-date' | 'unchanged' | 'failed' | 'skipped' | 'provisioned' | 'seeded';


export interface TenantResult {
  orgId: string;
  schema: string;
  status: TenantStatus;
  /** Migrations applied (or undone, for rollbacks), in the order they ran. */
  migrations: string[];
  error?: string;
  ms: number;
  /** With canary waves: the wave (1-based) the tenant was in. */
  wave?: number;
  /** Per-tenant roles (src/roles/): this run created the tenant's role, or dropped it (TENANT_ROLES=off). */
  role?: 'created' | 'dropped';
  /** Failed on a lock, a deadlock or a limit (issue #20): which. */
  reason?: LockReason;
  /** How many attempts the tenant took, when it took more than one (or failed on a lock). */
  attempts?: number;
  /** The sessions that held the tenant up, at the root of its lock wait (literals redacted). */
  blockedBy?: Blocker[];
}

/** One canary wave of a migrate:tenants run. */
export interface WaveSummary {
  wave: number;
  tenants: number;
  migrated: number;
  upToDate: number;
  failed: number;
  skipped: number;
}

export interface FleetSummary {
  total: number;
  migrated?: number;
  rolledBack?: number;
  provisioned?: number;
  seeded?: number;
  upToDate?: number;
  unchanged?: number;
  failed?: number;
  skipped?: number;
  /** Tenant roles this run created or dropped (TENANT_ROLES turned on or off). */
  rolesCreated?: number;
  rolesDropped?: number;
  /** Tenants that were held up by a lock and tried again (however they ended). */
  retried?: number;
  ms: number;
}

export interface FleetResult {
  command: 'migrate:tenants' | 'rollback:tenants' | 'provision:tenant' | 'seed:tenants';
  ok: boolean;
  summary: FleetSummary;
  tenants: TenantResult[];
  /** With canary waves: what each wave did, in order. */
  waves?: WaveSummary[];
  warnings?: string[];
  /**
   * A plain `rollback:tenants` only: the release it undid — the newest that a tenant of the run
   * still held — or null when none held one (every tenant `unchanged`).
   */
  release?: { id: number; migrations: string[] } | null;
}

export interface MasterResult {
  command: 'migrate:master' | 'rollback:master';
  ok: boolean;
  schema: 'public';
  /** `unchanged`: rollback:master had nothing to undo. */
  status: 'migrated' | 'rolled-back' | 'up-to-date' | 'unchanged' | 'failed';
  migrations: string[];
  error?: string;
  /** As for a tenant (issue #20): why locks stopped the run, how often it was tried, who held it up. */
  reason?: LockReason;
  attempts?: number;
  blockedBy?: Blocker[];
  warnings?: string[];
  ms: number;
}

export interface StatusResult {
  master: { applied: number; pending: string[]; missingFiles: string[] };
  tenants: {
    total: number;
    upToDate: number;
    /** Tenants with pending migrations (not counting those in missingFileOrgIds or missingSchemas). */
    behind: number;
    /** Newest applied migration → how many tenants are there, newest first. */
    versions: { version: string | null; count: number }[];
    behindOrgIds: string[];
    /** Tenants whose newest applied migration has no file any more. */
    missingFileOrgIds: string[];
    /** Tenant-tree files applied in the most-migrated tenant that are gone from the tree: deleted or renamed. */
    missingFiles: string[];
    /** Tenants whose org was deleted in Clerk (`organization.deleted`): kept, awaiting deprovisioning. */
    deletedOrgIds: string[];
    /**
     * `status --verify` only: tenants whose registry row disagrees with their own knex_migrations
     * (a restored schema, a stock-Knex rollback). `migrate:tenants --verify` corrects them.
     */
    driftedOrgIds?: string[];
    /** TENANT_ROLES=on: tenants without their role (`migrate:tenants` creates it). */
    missingRoleOrgIds?: string[];
    /**
     * TENANT_ROLES=on with `--verify`: tenants whose role lacks a privilege, holds one on the
     * bookkeeping or CREATE on the schema, or owns anything (`migrate:tenants --verify` re-grants).
     */
    grantDriftOrgIds?: string[];
  };
  /** `tid_…` schemas with no registry row. */
  orphanSchemas: string[];
  /** Registry rows whose schema does not exist. */
  missingSchemas: string[];
  /** Applied migrations whose file changed since (checksums): migrate, rollback and provision refuse to run. */
  editedFiles: { tree: 'master' | 'tenant'; name: string; recorded: string; current: string }[];
  /**
   * On a Citus coordinator only: how many tenants each node holds (a distributed schema lives on
   * one worker; a schema that is not distributed counts on the coordinator).
   */
  nodes?: { node: string; tenants: number }[];
  /** True when nothing is pending or drifted: what `status --check` gates on. */
  ok: boolean;
}

const SUMMARY_KEY: Record<TenantStatus, Exclude<keyof FleetSummary, 'total' | 'ms'>> = {
  migrated: 'migrated',
  'rolled-back': 'rolledBack',
  provisioned: 'provisioned',
  seeded: 'seeded',
  'up-to-date': 'upToDate',
  unchanged: 'unchanged',
  failed: 'failed',
  skipped: 'skipped',
};

/** Counts per status, keys in PRODUCT.md's order; zero counts are left out. */
export function summarize(tenants: readonly TenantResult[], ms: number): FleetSummary {
  const counts = new Map<string, number>();
  for (const tenant of tenants) counts.set(SUMMARY_KEY[tenant.status], (counts.get(SUMMARY_KEY[tenant.status]) ?? 0) + 1);
  const ordered: Partial<FleetSummary> = {};
  for (const key of Object.values(SUMMARY_KEY)) if (counts.has(key)) ordered[key] = counts.get(key);
  const created = tenants.filter((tenant) => tenant.role === 'created').length;
  const dropped = tenants.filter((tenant) => tenant.role === 'dropped').length;
  if (created > 0) ordered.rolesCreated = created;
  if (dropped > 0) ordered.rolesDropped = dropped;
  const retried = tenants.filter((tenant) => (tenant.attempts ?? 1) > 1).length;
  return { total: tenants.length, ...ordered, ...(retried > 0 ? { retried } : {}), ms };
}
