import { Option, type Command } from 'commander';
import type { FleetResult } from '../../report/results.ts';
import type { TenantCommandOptions } from '../../tenants/options.ts';
import { ROLLBACK_RULE } from '../../tenants/rollback-rule.ts';
import { withDatabase } from '../context.ts';
import { fleetProgress, fleetSummaryLine, type Output } from '../output.ts';
import type { Register } from '../register.ts';

interface FleetFlags {
  json?: boolean;
  concurrency?: string;
  continueOnError?: boolean;
  tenant?: string[];
  all?: boolean;
  to?: string;
  verify?: boolean;
  seed?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function fleetOptions(command: Command, withTenantFilter = true): Command {
  command
    .option('--concurrency <n>', 'tenants worked on at once (default TENANT_CONCURRENCY or 4)')
    .option('--continue-on-error', 'keep starting tenants after one fails (default: stop starting new ones)')
    .option('--json', 'print exactly one JSON document on stdout');
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
    .option('--seed', "run the tenant seeds (TENANT_SEEDS_DIR) in each new org's provisioning transaction")
    .action((orgIds: string[], flags: FleetFlags) =>
      run('provision:tenant', flags, (output) =>
        runFleetCommand(output, flags, 'provision:tenant', async (knex, options, config) => {
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
    .option('--verify', "open every tenant and migrate it from its own knex_migrations, correcting the registry (after a restore, or a schema changed by hand)")
    .action((flags: FleetFlags) =>
      run('migrate:tenants', flags, (output) =>
        runFleetCommand(output, flags, 'migrate:tenants', async (knex, options) => {
          const { migrateTenants } = await import('../../tenants/migrate-tenants.ts');
          return migrateTenants(knex, { ...options, verify: flags.verify });
        }),
      ),
    );

  fleetOptions(
    program
      .command('rollback:tenants')
      .summary('undo the newest release in every tenant that has it (or back to --to <migration>, or --all)')
      .description(`${ROLLBACK_RULE[0]!.toUpperCase()}${ROLLBACK_RULE.slice(1)}.`),
  )
    .option('--to <migration>', 'undo, in every tenant, everything applied after this migration (a file of the tenant tree)')
    .option('--all', 'undo every tenant migration')
    .action((flags: FleetFlags) =>
      run('rollback:tenants', flags, (output) =>
        runFleetCommand(output, flags, 'rollback:tenants', async (knex, options) => {
          const { rollbackTenants } = await import('../../tenants/rollback-tenants.ts');
          return rollbackTenants(knex, { ...options, all: flags.all, to: flags.to });
        }),
      ),
    );
};

type FleetCall = (knex: import('knex').Knex, options: TenantCommandOptions, config: import('../../config/load-config.ts').Config) => Promise<FleetResult>;

async function runFleetCommand(output: Output, flags: FleetFlags, command: string, call: FleetCall): Promise<number> {
  return withDatabase(flags, async (db, config, concurrency) => {
    const progress = fleetProgress(output, command);
    let result: FleetResult;
    try {
      result = await call(db.knex, {
        directory: config.tenantMigrationsDir,
        concurrency,
        continueOnError: flags.continueOnError,
        tenants: flags.tenant,
        fastPath: config.fastPath,
        citus: config.citus,
        registry: config.registryTable,
        onStart: (total) => progress.start(total),
        onTenantDone: (tenant) => progress.tenantDone(tenant),
        onWarning: output.warn,
      }, config);
    } finally {
      progress.stop();
    }
    output.result(result);
    if (output.json) output.document(result);
    else output.info(fleetSummaryLine(result));
    return result.ok ? 0 : 1;
  });
}
