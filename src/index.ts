/**
 * tenant-migrate's library API: every CLI command is one of these functions, returning the same
 * object the command prints with `--json`.
 */
export { migrateMaster, rollbackMaster, type MasterOptions } from './master/master.ts';
export { provisionTenant } from './tenants/provision.ts';
export { migrateTenants, type MigrateTenantsOptions, type WaveEvent } from './tenants/migrate-tenants.ts';
export { parseWaves, splitIntoWaves, type WaveSpec } from './fleet/waves.ts';
export { lintTrees, judgeStatements, type LintFinding, type LintResult, type LintOptions } from './lint/lint-trees.ts';
export { RULES as LINT_RULES, type Rule as LintRule } from './lint/rules.ts';
export { dryRun, type DryRunCommand, type DryRunOptions, type DryRunResult, type DryRunGroup } from './dry-run/dry-run.ts';
export { acceptChecksums, findEditedFiles, fileChecksum, EditedMigrationError, MissingMigrationError, OutOfOrderMigrationError, CHECKSUMS_TABLE, type EditedFile } from './migration/checksums.ts';
export { rollbackTenants, type RollbackOptions } from './tenants/rollback-tenants.ts';
export { getStatus, type StatusOptions } from './status/get-status.ts';
export { withTenant } from './tenants/with-tenant.ts';
export { forEachTenant, type ForEachTenantOptions, type ForEachTenantResult, type TenantOutcome } from './tenants/for-each-tenant.ts';
export { DEFAULT_SCHEMAS_PER_CONNECTION, noteSchemasServed, retireAfterSchemas, type RetireOptions } from './db/recycle-connections.ts';
export { queryTenants, NotAReadError, QUERY_TIMEOUT_MS, type QueryTenantsResult } from './tenants/query-tenants.ts';
export { tenantSchemaName, validateOrgIds, ORG_ID_RULE, tenantRoleName } from './tenants/naming.ts';
export { tenantGroupRole } from './roles/group-role.ts';
export type { RolesSettings } from './roles/settings.ts';
export { makeMigration } from './migration/make-migration.ts';
export { loadConfig, type Config } from './config/load-config.ts';
export { openDatabase, type Database } from './db/connection.ts';
export { handleClerkWebhook } from './clerk/webhook.ts';
export { clerkWebhookMiddleware } from './clerk/node-middleware.ts';
export type { ClerkWebhookOptions } from './clerk/handle-delivery.ts';
export { syncClerk, type SyncClerkOptions, type SyncClerkResult } from './clerk/sync-clerk.ts';
export { listClerkOrganizationIds, ClerkApiError, type ClerkApiOptions } from './clerk/clerk-api.ts';
export { moveTenant, type MoveTenantOptions, type MoveTenantResult, type MoveMode } from './citus/move-tenant.ts';
export { hasCitus, type CitusSetting } from './citus/detect.ts';
export { listRuns, startRun, finishRun, RUNS_TABLE, type RunRecord, type RunFailure, type Outcome } from './history/run-ledger.ts';
export { currentActor, redactArgs, type Actor } from './history/actor.ts';
export { seedMaster, seedTenants, type SeedMasterResult } from './seeds/run-seeds.ts';
export { makeSeed } from './migration/make-migration.ts';
export { deprovisionTenant, type DeprovisionOptions, type DeprovisionResult } from './backup/deprovision.ts';
export { restoreTenant, type RestoreOptions, type RestoreResult } from './backup/restore.ts';
export { UsageError, ConnectionError, MigrationError } from './errors.ts';
export type { TenantCommandOptions } from './tenants/options.ts';
export type { FleetResult, FleetSummary, MasterResult, StatusResult, TenantResult, TenantStatus, WaveSummary } from './report/results.ts';
