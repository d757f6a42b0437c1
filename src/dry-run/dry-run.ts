/**
 * `--dry-run`: what a command would do, and the SQL it would send, with nothing changed. Tenants
 * are grouped by what the real run would do to them (each planned from its own bookkeeping where
 * the real run reads it, not from the registry); for one tenant of each group the migrations run for real — inside a transaction, under the tenant's lock, that is then rolled
 * back — and every statement they send is noted (Knex's `query` event, as the executor observes
 * migrations). So the SQL shown is what PostgreSQL accepted, not a guess. Nothing is created: not
 * the registry, the release ledger, the checksums or the run history.
 */
import path from 'node:path';
import type { Knex } from 'knex';
import { relationExists } from '../db/relation-exists.ts';
import { UsageError } from '../errors.ts';
import { readApplied, readAppliedOfSchemas } from '../migration/bookkeeping.ts';
import { describeError } from '../migration/describe-error.ts';
import { PlanError, planDown, planUp, type AppliedMigration, type UndoRule } from '../migration/plan.ts';
import { captureSql } from '../migration/capture-sql.ts';
import { assertTreeUnchanged, masterApplied, tenantApplied } from '../migration/checksums.ts';
import { directorySource, type MigrationSource } from '../migration/source.ts';
import { printableOrgId, tenantSchemaName, validateOrgIds } from '../tenants/naming.ts';
import { registryOf } from '../tenants/options.ts';
import { refuseConflicts } from '../tenants/provision.ts';
import { inspectRegistry, isUpToDate, listTenants, refuseForeignTable, type TenantRecord } from '../tenants/registry.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { rollbackRuleOf } from '../tenants/rollback-tenants.ts';
import { wavesOf } from '../tenants/migrate-tenants.ts';
import type { WaveSpec } from '../fleet/waves.ts';

export type DryRunCommand = 'migrate:master' | 'migrate:tenants' | 'provision:tenant' | 'rollback:tenants';

export interface DryRunGroup {
  /** The group's newest applied migration (null: nothing applied, or a new org). */
  fromVersion: string | null;
  /** What each tenant of the group would get (or, for a rollback, lose), in the order it would run. */
  migrations: string[];
  tenantCount: number;
  orgIds: string[];
}

export interface DryRunResult {
  command: DryRunCommand;
  dryRun: true;
  /** False when a migration failed while its SQL was captured (it would fail for real too). */
  ok: boolean;
  plan: DryRunGroup[];
  /** Per migration: the statements it sent, bindings inlined, for the first group that runs it. */
  sql: Record<string, string[]>;
  /** Migrations whose SQL could not be captured, and why (a `transaction: false` one). */
  notCaptured: Record<string, string>;
  /** migrate:tenants with canary waves: which tenants each wave holds, in order. */
  waves?: { wave: number; orgIds: string[] }[];
  /** Tenants the real run would open whose schema does not exist: it would fail for them (ok is false). */
  missingSchemas?: { orgId: string; schema: string }[];
  /** Tenants the real run would open whose schema has no knex_migrations: it would fail for them too. */
  missingBookkeeping?: { orgId: string; schema: string }[];
  error?: string;
}

export interface DryRunOptions {
  directory?: string;
  registry?: RegistryTable;
  /** migrate:tenants / rollback:tenants: only these tenants. provision:tenant: the orgs to provision. */
  tenants?: readonly string[];
  /** migrate:tenants: the canary waves, cut as the real run cuts them (`--canary`, `--waves`). */
  waves?: readonly WaveSpec[];
  /** migrate:tenants: the org ids of `--canary-tenants`, refused (exit 2) as the real run refuses them. */
  canaryTenants?: readonly string[];
  /** migrate:tenants: plan every tenant from its own knex_migrations, as `--verify` migrates them. */
  verify?: boolean;
  /** rollback:tenants */
  all?: boolean;
  to?: string;
}

/**
 * @example
 *   const preview = await dryRun(knex, 'migrate:tenants', { directory: 'migrations/tenant' });
 *   preview.plan; // [{ fromVersion: '2026…_b.ts', migrations: ['2026…_c.ts'], tenantCount: 3, orgIds: [...] }]
 *   preview.sql;  // { '2026…_c.ts': ['alter table "org_users" add column "nickname" text'] }
 */
export async function dryRun(knex: Knex, command: DryRunCommand, options: DryRunOptions = {}): Promise<DryRunResult> {
  const result: DryRunResult = { command, dryRun: true, ok: true, plan: [], sql: {}, notCaptured: {} };
  const source = directorySource(path.resolve(options.directory ?? (command === 'migrate:master' ? 'migrations/master' : 'migrations/tenant')));
  const registry = registryOf(options);
  const groups: (PlannedGroup & { createSchema?: boolean })[] = [];
  const broken: Broken[] = [];
  const addTenantGroups = (planned: TenantGroups) => {
    groups.push(...planned.groups);
    broken.push(...planned.broken);
  };
  // A table of that name that is not a registry (the app's own tenants): exit 2, as every command.
  refuseForeignTable(await inspectRegistry(knex, registry), registry);
  // What the real command refuses first (exit 2), the dry run refuses too: an applied file edited or gone.
  const direction = command === 'rollback:tenants' ? 'down' : 'up';
  if (command === 'migrate:master') await assertTreeUnchanged(knex, 'master', source, masterApplied, direction);
  else await assertTreeUnchanged(knex, 'tenant', source, tenantApplied(registry), direction);

  if (command === 'migrate:master') {
    const applied = (await relationExists(knex, 'public', 'knex_migrations')) ? await readApplied(knex, 'public') : [];
    const steps = planUp(source.names, applied).steps;
    groups.push({ group: { fromVersion: newest(applied), migrations: steps, tenantCount: 0, orgIds: [] }, schema: 'public', direction: 'up' });
  } else if (command === 'provision:tenant') {
    const wanted = validateOrgIds(options.tenants ?? []);
    const shape = await inspectRegistry(knex, registry);
    // The real command's refusals (exit 2): a colliding org, a schema nobody registered, a registered org whose schema is gone.
    await refuseConflicts(knex, registry, wanted.map((orgId) => ({ orgId, schema: tenantSchemaName(orgId) })), { registryExists: shape.exists });
    const registered = await registeredTenants(knex, registry);
    const known = new Map(registered.map((tenant) => [tenant.orgId, tenant]));
    const fresh = wanted.filter((orgId) => !known.has(orgId));
    if (fresh.length > 0) {
      groups.push({ group: { fromVersion: null, migrations: [...source.names], tenantCount: fresh.length, orgIds: fresh }, schema: tenantSchemaName(fresh[0]!), direction: 'up', createSchema: true });
    }
    // Orgs provisioned before are only caught up, each from its own state.
    const caughtUp = wanted.filter((orgId) => known.has(orgId)).map((orgId) => known.get(orgId)!);
    addTenantGroups(await tenantGroups(knex, source, caughtUp, 'up', { opensAll: true, rebuilds: true }));
  } else {
    const tenants = await selectedTenants(knex, registry, options.tenants);
    if (command === 'migrate:tenants' && (options.waves?.length || options.canaryTenants?.length)) {
      // The real run's waves (and its refusals, exit 2), so the canaries can be seen before the rollout.
      const waves = await wavesOf(knex, tenants, source.names, { registry, waves: options.waves, canaryTenants: options.canaryTenants });
      result.waves = waves.map((wave, index) => ({ wave: index + 1, orgIds: wave.map((tenant) => tenant.orgId) }));
    }
    // As in migrateTenants: --verify or named tenants open every tenant, not only those the registry shows behind.
    const opensAll = Boolean(options.verify) || (options.tenants?.length ?? 0) > 0;
    if (command === 'migrate:tenants') addTenantGroups(await tenantGroups(knex, source, tenants, 'up', { opensAll }));
    else {
      const { rule } = await rollbackRuleOf(knex, registry, source, tenants.map((tenant) => tenant.schema), { all: options.all, to: options.to });
      addTenantGroups(await tenantGroups(knex, source, tenants, 'down', { opensAll: true, rule }));
    }
  }

  for (const { group, schema, direction, createSchema } of groups) {
    result.plan.push(group);
    const todo = group.migrations.filter((name) => !(name in result.sql) && !(name in result.notCaptured));
    if (todo.length === 0 || !result.ok) continue;
    try {
      await captureSql(knex, { schema, source, direction, steps: group.migrations, createSchema }, result);
    } catch (error) {
      result.ok = false;
      result.error = describeError(error);
    }
  }
  if (broken.length > 0) {
    result.ok = false;
    const problems: string[] = [];
    for (const [problem, list, what] of [
      ['schema', 'missingSchemas', 'the schema does not exist (status lists it under missing schemas)'],
      ['bookkeeping', 'missingBookkeeping', 'the schema has no knex_migrations (status --verify lists it as drifted)'],
    ] as const) {
      const tenants = broken.filter((entry) => entry.problem === problem).map(({ tenant }) => ({ orgId: tenant.orgId, schema: tenant.schema }));
      if (tenants.length === 0) continue;
      result[list] = tenants;
      problems.push(`${tenants.map((tenant) => `${printableOrgId(tenant.orgId)} (${tenant.schema})`).join(', ')}: registered, but ${what}`);
    }
    result.error ??= `${problems.join('; ')}; the real run would fail for ${broken.length === 1 ? 'it' : 'them'}`;
  }
  return result;
}

interface TenantGroups {
  groups: PlannedGroup[];
  /** Tenants the real run would open and fail for: their schema, or its knex_migrations, is gone. */
  broken: Broken[];
}

interface Broken {
  tenant: TenantRecord;
  problem: 'schema' | 'bookkeeping';
}

type PlannedGroup = { group: DryRunGroup; schema: string; direction: 'up' | 'down' };

/**
 * Tenants grouped by what the real run would do to them: same newest migration, same steps. A tenant
 * the real run opens is planned from its own knex_migrations (all of them read a chunk per
 * statement), never from the registry's word: a tenant restored from an old backup or changed by
 * hand gets a group of its own, as it gets its own plan in the real run. A tenant it does not open
 * (the registry shows it current and nothing asks to verify it) is planned as it is reported there:
 * nothing to do. `provision:tenant` builds a schema without knex_migrations anew (`rebuilds`); the
 * other commands fail for it.
 */
async function tenantGroups(
  knex: Knex,
  source: MigrationSource,
  tenants: readonly TenantRecord[],
  direction: 'up' | 'down',
  { opensAll, rule, rebuilds = false }: { opensAll: boolean; rule?: UndoRule; rebuilds?: boolean },
): Promise<TenantGroups> {
  const opens = (tenant: TenantRecord) => (direction === 'down' ? rule !== undefined : opensAll || !isUpToDate(tenant, source.names));
  const applied = await readAppliedOfSchemas(knex, tenants.filter(opens).map((tenant) => tenant.schema));
  const byPlan = new Map<string, PlannedGroup>();
  const broken: Broken[] = [];
  for (const tenant of tenants) {
    let fromVersion = tenant.version;
    let steps: string[] = [];
    if (opens(tenant)) {
      const read = applied.get(tenant.schema);
      if (read === undefined || (read === null && !rebuilds)) {
        broken.push({ tenant, problem: read === undefined ? 'schema' : 'bookkeeping' });
        continue;
      }
      const rows = read ?? [];
      fromVersion = newest(rows);
      try {
        steps = direction === 'up' ? planUp(source.names, rows).steps : planDown(source.names, rows, rule).steps;
      } catch (error) {
        // The real run fails this tenant with the same refusal (exit 1): name it, as the real run does.
        if (error instanceof PlanError) throw new PlanError(`${printableOrgId(tenant.orgId)} (${tenant.schema}): ${error.message}`);
        throw error;
      }
    }
    const key = [fromVersion ?? '', ...steps].join('\u0000');
    const planned = byPlan.get(key) ?? { group: { fromVersion, migrations: steps, tenantCount: 0, orgIds: [] }, schema: tenant.schema, direction };
    planned.group.tenantCount += 1;
    planned.group.orgIds.push(tenant.orgId);
    byPlan.set(key, planned);
  }
  const groups = [...byPlan.values()].sort((a, b) => (a.group.fromVersion ?? '').localeCompare(b.group.fromVersion ?? ''));
  return { groups, broken };
}

function newest(applied: readonly AppliedMigration[]): string | null {
  return applied.map((row) => row.name).sort().at(-1) ?? null;
}

/** The registry's rows, without creating it (a dry run writes nothing). */
async function registeredTenants(knex: Knex, registry: RegistryTable, wanted?: readonly string[]): Promise<TenantRecord[]> {
  const shape = await inspectRegistry(knex, registry);
  return shape.exists && shape.columns.includes('migration_version') ? listTenants(knex, registry, wanted) : [];
}

async function selectedTenants(knex: Knex, registry: RegistryTable, orgIds?: readonly string[]): Promise<TenantRecord[]> {
  const wanted = orgIds && orgIds.length > 0 ? validateOrgIds(orgIds) : undefined;
  const tenants = await registeredTenants(knex, registry, wanted);
  const unknown = (wanted ?? []).filter((orgId) => !tenants.some((tenant) => tenant.orgId === orgId));
  if (unknown.length > 0) throw new UsageError(`Not a registered tenant: ${unknown.map(printableOrgId).join(', ')}. Provision it first (provision:tenant). Nothing was changed.`);
  return tenants;
}
