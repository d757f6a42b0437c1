import { Option, type Command } from 'commander';
import type { MoveMode } from '../../citus/move-tenant.ts';
import { liveFrom, lockOptions, withDatabase, type LockFlags } from '../context.ts';
import type { Register } from '../register.ts';

export const registerCitusCommands: Register = (program: Command, run) => {
  lockOptions(program
    .command('move:tenant'))
    .description("Citus: move a tenant's distributed schema to another worker (citus_schema_move), under the tenant's lock")
    .argument('<orgId>', 'the Clerk org id, e.g. org_2abc123def456')
    .requiredOption('--to <host:port>', 'the target worker, as `status` lists the nodes')
    .addOption(new Option('--mode <mode>', 'block-writes: writes to the tenant wait during the copy; logical: only during the switch').choices(['block-writes', 'logical'] satisfies MoveMode[]).default('block-writes'))
    .option('--json', 'print the result as JSON on stdout')
    .action((orgId: string, flags: { to: string; mode: MoveMode; json?: boolean } & LockFlags) =>
      run('move:tenant', flags, (output) =>
        withDatabase({}, async (db, config) => {
          const { moveTenant } = await import('../../citus/move-tenant.ts');
          const result = await moveTenant(db.knex, orgId, { ...liveFrom(flags, config), to: flags.to, mode: flags.mode, registry: config.registryTable });
          output.result(result);
          if (output.json) await output.document(result);
          else if (!result.moved) output.info(`move:tenant: ${result.orgId} (${result.schema}) is already on ${result.to}; nothing to do.`);
          else output.info(`move:tenant: ${result.orgId} (${result.schema}) moved from ${result.from} to ${result.to} (${result.mode}, ${result.ms} ms)`);
          return 0;
        }),
      ),
    );
};
