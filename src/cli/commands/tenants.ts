import { Option, type Command } from 'commander';
import type { FleetResult } from '../../report/results.ts';
import type { TenantCommandOptions } from '../../tenants/options.ts';
import type { MigrateTenantsOptions, WaveEvent } from '../../tenants/migrate-tenants.ts';
import { parseWaves } from '../../fleet/waves.ts';
import { UsageError } from '../../errors.ts';
import { ROLLBACK_RULE } from '../../tenants/rollback-rule.ts';
import { liveFrom, lockOptions, withDatabase, type LockFlags } from '../context.ts';
import { DRY_RUN_HELP, runDryRun } from './dry-run.ts';
import { lintBeforeMigrating } from './lint.ts';
import { fleetProgress, fleetSummaryLine, rollbackReleaseLine, waveLine, type Output } from '../output.ts';
import type { Register } from '../register.ts';

interface FleetFlags extends LockFlags {
  json?: boolean;
  concurrency?: string;
  continueOnError?: boolean;
  tenant?: string[];
  all?: boolean;
  to?: string;
  verify?: boolean;
  seed?: boolean;
  canary?: string;
  canaryTenants?: string[];
  waves?: string;
  pause?: string;
  dryRun?: boolean;
  strict?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const collectList = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((item) => item.trim()).filter(Boolean)];

/** --canary / --canary-tenants / --waves / --pause as library options, checked before anything runs. */
/** A day: longer is a typo, and Node's timers cannot wait past about 24.8 days anyway. */
const MAX_PAUSE_SECONDS = 86_400;

function waveOptions(flags: FleetFlags): Pick<MigrateTenantsOptions, 'waves' | 'canaryTenants' | 'pauseMs'> {
  // An empty list (an unset CI variable: --canary-tenants "$CANARIES") must not drop the canary.
  if (flags.canaryTenants !== undefined && flags.canaryTenants.length === 0) {
    throw new UsageError('--canary-tenants: the list is empty — name at least one org id (comma-separated or repeated). Nothing was changed.');
  }
  if (flags.canary !== undefined && flags.canaryTenants !== undefined) {
    throw new UsageError('--canary and --canary-tenants cannot be combined: --canary-tenants names the whole canary wave (add --waves to cut the rest). Nothing was changed.');
  }
  if (flags.canary !== undefined && flags.waves !== undefined) {
    throw new UsageError('--canary and --waves cannot be combined: --canary n is --waves n,100%. Nothing was changed.');
  }
  const waves = flags.waves !== undefined ? parseWaves(flags.waves) : flags.canary !== undefined ? parseWaves(flags.canary, '--canary') : undefined;
  let pauseMs: number | undefined;
  if (flags.pause !== undefined) {
    const seconds = Number(flags.pause);
    if (flags.pause.trim() === '' || !Number.isFinite(seconds) || seconds < 0) throw new UsageError(`--pause ${flags.pause}: give the seconds to wait between waves, e.g. --pause 30. Nothing was changed.`);
    if (seconds > MAX_PAUSE_SECONDS) throw new UsageError(`--pause ${flags.pause}: at most ${MAX_PAUSE_SECONDS} seconds (a day) between waves. Nothing was changed.`);
    if (!waves && !flags.canaryTenants?.length) throw new UsageError('--pause waits between waves: give --canary, --canary-tenants or --waves too. Nothing was changed.');
    pauseMs = seconds * 1000;
  }
  return {
    ...(waves ? { waves } : {}),
    ...(flags.canaryTenants?.length ? { canaryTenants: flags.canaryTenants } : {}),
    ...(pauseMs !== undefined ? { pauseMs } : {}),
  };
}

function waveEventLine(event: WaveEvent): string {
  return event.kind === 'start'
    ? `wave ${event.wave}/${event.waves}: ${event.tenants} tenant${event.tenants === 1 ? '' : 's'}`
    : `pausing ${event.seconds} s before wave ${event.wave}/${event.waves}`;
}

function fleetOptions(command: Command, withTenantFilter = true): Command {
  command
    .option('--concurrency <n>', 'tenants worked on at once (default TENANT_CONCURRENCY or 4)')
    .option('--continue-on-error', 'keep starting tenants after one fails (default: stop starting new ones)')
    .option('--json', 'print exactly one JSON document on stdout');
  lockOptions(command);
  if (withTenantFilter) {
    command.addOption(
      new Option('--tenant <orgId>', "only this tenant (repeatable); it is always opened and its real state read, whatever the registry says").argParser(collect),
    );
  }
  return command;
}

export const registerTenantCommands: Register = (program: Command, run) => {
  fleetOptions(
    program
      .command('provision:tenant')
      .description("create each org's schema, apply every tenant migration and register it (atomic, idempotent)")
      .argument('<orgId...>', 'Clerk org ids, e.g. org_2abc123def456'),
    false,
  )
    .option('--dry-run', DRY_RUN_HELP)
    .option('--seed', "run the tenant seeds (TENANT_SEEDS_DIR) in each new org's provisioning transaction")
    .action((orgIds: string[], flags: FleetFlags) =>
      run('provision:tenant', flags, (output) =>
        flags.dryRun ? runDryRun(output, flags, 'provision:tenant', (config) => ({ directory: config.tenantMigrationsDir, tenants: orgIds })) : runFleetCommand(output, flags, 'provision:tenant', async (knex, options, config) => {
          const { provisionTenant } = await import('../../tenants/provision.ts');
          return provisionTenant(knex, orgIds, { ...options, seed: flags.seed, seedsDirectory: config.tenantSeedsDir });
        }),
      ),
    );

  fleetOptions(program.command('seed:tenants').description('run the tenant seeds in every tenant (one transaction each, re-runnable seeds)'))
    .action((flags: FleetFlags) =>
      run('seed:tenants', flags, (output) =>
        runFleetCommand(output, flags, 'seed:tenants', async (knex, options, config) => {
          const { seedTenants } = await import('../../seeds/run-seeds.ts');
          return seedTenants(knex, { ...options, seedsDirectory: config.tenantSeedsDir });
        }),
      ),
    );

  fleetOptions(program.command('migrate:tenants').description('apply pending tenant migrations to every registered tenant'))
    .option('--dry-run', DRY_RUN_HELP)
    .option('--verify', "open every tenant and migrate it from its own knex_migrations, correcting the registry (after a restore, or a schema changed by hand)")
    .option('--canary <n|n%>', 'migrate this many tenants first (first by schema name); stop with exit 1 if one fails, else go on with the rest')
    .addOption(new Option('--canary-tenants <orgId...>', 'the canary wave is exactly these orgs (repeatable, or comma-separated)').argParser(collectList))
    .option('--waves <list>', 'waves as running totals of the fleet, e.g. 1,10%,100%; a failure in a wave skips every later wave')
    .option('--pause <seconds>', 'wait this long between waves')
    .option('--strict', 'stop (exit 1, nothing migrated) when lint finds fleet-unsafe DDL in a pending migration')
    .action((flags: FleetFlags) =>
      run('migrate:tenants', flags, (output) => {
        const waves = waveOptions(flags); // bad wave flags are exit 2 for a dry run too
        const lint = (knex: import('knex').Knex, config: import('../../config/load-config.ts').Config) => lintBeforeMigrating(knex, output, 'tenant', config, flags.strict);
        if (flags.dryRun) return runDryRun(output, flags, 'migrate:tenants', (config) => ({ directory: config.tenantMigrationsDir, tenants: flags.tenant, waves: waves.waves, canaryTenants: waves.canaryTenants, verify: flags.verify }), lint);
        return runFleetCommand(
          output,
          flags,
          'migrate:tenants',
          async (knex, options) => {
            const { migrateTenants } = await import('../../tenants/migrate-tenants.ts');
            return migrateTenants(knex, { ...options, verify: flags.verify, ...waves });
          },
          lint,
        );
      }),
    );

  fleetOptions(
    program
      .command('rollback:tenants')
      .summary('undo the newest release in every tenant that has it (or back to --to <migration>, or --all)')
      .description(`${ROLLBACK_RULE[0]!.toUpperCase()}${ROLLBACK_RULE.slice(1)}.`),
  )
    .option('--to <migration>', 'undo, in every tenant, everything applied after this migration (a file of the tenant tree)')
    .option('--all', 'undo every tenant migration')
    .option('--dry-run', DRY_RUN_HELP)
    .action((flags: FleetFlags) =>
      run('rollback:tenants', flags, (output) =>
        flags.dryRun ? runDryRun(output, flags, 'rollback:tenants', (config) => ({ directory: config.tenantMigrationsDir, tenants: flags.tenant, all: flags.all, to: flags.to })) : runFleetCommand(output, flags, 'rollback:tenants', async (knex, options) => {
          const { rollbackTenants } = await import('../../tenants/rollback-tenants.ts');
          return rollbackTenants(knex, { ...options, all: flags.all, to: flags.to });
        }),
      ),
    );
};

type FleetCall = (knex: import('knex').Knex, options: TenantCommandOptions & Pick<MigrateTenantsOptions, 'onWave'>, config: import('../../config/load-config.ts').Config) => Promise<FleetResult>;

/** `before`: a check run first on the same connection (the linter); false ends the command with exit 1. */
async function runFleetCommand(
  output: Output,
  flags: FleetFlags,
  command: string,
  call: FleetCall,
  before?: (knex: import('knex').Knex, config: import('../../config/load-config.ts').Config) => Promise<boolean>,
): Promise<number> {
  return withDatabase(flags, async (db, config, concurrency) => {
    if (before && !(await before(db.knex, config))) return 1;
    const live = liveFrom(flags, config); // exit 2 for a bad flag, before any tenant is touched
    const progress = fleetProgress(output, command);
    // Ctrl-C: no tenant starts any more, those pausing before a retry are reported skipped, those
    // in flight finish; the report is printed. A second Ctrl-C ends the process as usual.
    const abort = new AbortController();
    const onInterrupt = () => {
      process.off('SIGINT', onInterrupt);
      progress.note('interrupted: finishing the tenants in flight, starting no other (Ctrl-C again to stop at once)');
      abort.abort();
    };
    process.on('SIGINT', onInterrupt);
    let result: FleetResult;
    try {
      result = await call(db.knex, {
        ...live,
        signal: abort.signal,
        onHeldUp: (tenant, blockers) => progress.heldUp(tenant, blockers),
        onRetry: (tenant, event) => progress.retry(tenant, event),
        directory: config.tenantMigrationsDir,
        concurrency,
        continueOnError: flags.continueOnError,
        tenants: flags.tenant,
        fastPath: config.fastPath,
        citus: config.citus,
        registry: config.registryTable,
        roles: config.roles,
        onStart: (total) => progress.start(total),
        onTenantDone: (tenant) => progress.tenantDone(tenant),
        onWave: (event) => progress.note(waveEventLine(event)),
        onWarning: output.warn,
      }, config);
    } finally {
      process.off('SIGINT', onInterrupt);
      progress.stop();
    }
    // Interrupted with tenants left unstarted (or re-queued): the fleet is not done, so not ok.
    const interrupted = abort.signal.aborted && result.tenants.some((tenant) => tenant.status === 'skipped');
    if (interrupted) result = { ...result, ok: false };
    output.result(result);
    if (output.json) await output.document(result);
    else {
      output.info(fleetSummaryLine(result));
      const release = rollbackReleaseLine(result);
      if (release) output.info(release);
      for (const wave of result.waves ?? []) output.info(`  ${waveLine(wave)}`);
      if (interrupted) output.info('interrupted: the tenants reported skipped were left as they were; run the command again to finish them');
    }
    return result.ok ? 0 : 1;
  });
}
