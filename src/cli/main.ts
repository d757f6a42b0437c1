#!/usr/bin/env node
/**
 * The CLI: registers commands and owns the only `process.exit`. Every command body lives in a
 * library function; commands/ only translate flags and print results.
 *
 * It starts in the time of a bare `node`: nothing here, nor in commands/, imports Knex, pg, the
 * SQL parser or a library module at the top — each action imports what it uses when it runs — and
 * `--version` does not even load commands/ (test/unit/cli-startup.test.ts checks both).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { UsageError } from '../errors.ts';
import { createOutput } from './output.ts';
import type { Register, RunCommand } from './register.ts';
import { setCurrentCommand } from './context.ts';

/** Every file under commands/, in the order `--help` lists their commands. */
async function commandRegistrations(): Promise<Register[]> {
  const [master, make, tenants, status, clerk, citus, query, history, backup, checksums, lint] = await Promise.all([
    import('./commands/master.ts'),
    import('./commands/make.ts'),
    import('./commands/tenants.ts'),
    import('./commands/status.ts'),
    import('./commands/clerk.ts'),
    import('./commands/citus.ts'),
    import('./commands/query.ts'),
    import('./commands/history.ts'),
    import('./commands/backup.ts'),
    import('./commands/checksums.ts'),
    import('./commands/lint.ts'),
  ]);
  return [
    master.registerMasterCommands, make.registerMakeCommands, tenants.registerTenantCommands, status.registerStatusCommand,
    clerk.registerClerkCommands, citus.registerCitusCommands, query.registerQueryCommand, history.registerHistoryCommand,
    master.registerSeedMasterCommand, backup.registerBackupCommands, checksums.registerChecksumsCommand, lint.registerLintCommand,
  ];
}

/** `tenant-migrate --version` (or `-V`) alone: answered without loading any command. */
function asksForVersionOnly(argv: string[]): boolean {
  const args = argv.slice(2);
  return args.length === 1 && (args[0] === '--version' || args[0] === '-V');
}

/** The error handler is needed only when something failed. */
async function handleError(...args: Parameters<typeof import('./handle-error.ts').handleError>): Promise<1 | 2> {
  const { handleError: handle } = await import('./handle-error.ts');
  return handle(...args);
}

/** The commands that may change the database: each run gets a row in the run history (`history`). */
const CHANGES_DATABASE = new Set(['migrate:master', 'rollback:master', 'provision:tenant', 'migrate:tenants', 'rollback:tenants', 'sync:clerk', 'move:tenant', 'seed:master', 'seed:tenants', 'deprovision:tenant', 'restore:tenant', 'checksums:accept']);

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const run: RunCommand = async (command, flags, body) => {
    const output = createOutput(Boolean(flags.json));
    const dryRun = (flags as { dryRun?: boolean }).dryRun === true;
    setCurrentCommand({ command, args: argv.slice(2), output, changesDatabase: CHANGES_DATABASE.has(command) && !dryRun });
    try {
      exitCode = await body(output);
    } catch (error) {
      exitCode = await handleError(error, output, command);
    } finally {
      setCurrentCommand(undefined);
    }
  };

  const program = new Command('tenant-migrate')
    .description('Schema-per-tenant migrations for PostgreSQL, on Knex')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError('(run tenant-migrate --help for usage)')
    .exitOverride();
  if (!asksForVersionOnly(argv)) for (const register of await commandRegistrations()) register(program, run);
  for (const command of program.commands) command.exitOverride();

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; every other parse problem is bad usage.
      if (error.exitCode === 0) return 0;
      // Commander has printed its message on stderr; a --json caller still gets its one document.
      if (argv.slice(2).includes('--json')) {
        const names = new Set(program.commands.map((command) => command.name()));
        const command = argv.slice(2).find((arg) => names.has(arg)) ?? 'tenant-migrate';
        await createOutput(true).document({ command, ok: false, error: error.message.replace(/^error: /, '') });
      }
      return 2;
    }
    return handleError(error, createOutput(false), 'tenant-migrate');
  }
  if (program.args.length === 0 && argv.length <= 2) {
    program.outputHelp();
    return 2;
  }
  return exitCode;
}

/** The version in package.json, two directories up both from src/cli/ (tsx) and dist/cli/ (built). */
function packageVersion(): string {
  const manifest = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/**
 * Runs the CLI on `argv` and ends the process with its exit code once stdout and stderr have taken
 * all of their output. Both entry points use it: `tsx src/cli/main.ts` (below) and the installed
 * bin/tenant-migrate.js.
 */
export function runAndExit(argv: string[]): void {
  main(argv).then(
    (code) => exitAfterOutput(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof UsageError ? error.message : String(error)}\n`);
      exitAfterOutput(1);
    },
  );
}

// Run when executed directly (tsx src/cli/main.ts); importing main() has no side effect.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) runAndExit(process.argv);

/**
 * Exits once stdout has taken everything written to it. A pipe whose other end is non-blocking
 * (a parent such as pnpm shares it), or a reader slower than the CLI, makes Node queue the writes;
 * exiting at once then cut a 5 MB --json report after its first 384 KB (the bench saw it through
 * pnpm; the installed bin, which called process.exit directly, cut a 15 MB report at 1.7 MB).
 */
function exitAfterOutput(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}
