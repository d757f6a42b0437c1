/**
 * `pnpm docs:check`: re-runs the console blocks of README.md and docs/*.md marked ```console checked
 * and fails when what they print differs from what the page shows (a unified diff is printed).
 *
 * Each page runs in a project of its own — a temporary copy of this repository's sources,
 * migration trees, seeds and examples, with node_modules linked — so a page that writes files
 * (`cp … migrations/tenant/`, `migrate:make:tenant`) or sets `DATABASE_URL=embedded` gets a fresh
 * embedded database under that copy's `.tenant-migrate/` and leaves this checkout alone. The blocks
 * of a page run in order, as one session: `export` and `cd` lines carry over, `$?` is the previous
 * command's exit code. Output is stdout and stderr together, compared after normalising what
 * changes between runs (durations, timestamps, pids, paths, user@host, column padding).
 *
 *   pnpm docs:check                 # every page
 *   pnpm docs:check README.md       # one page
 *   pnpm docs:check --update FILE   # write what the commands print back into the page
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MARKER = /^```console checked\s*$/;

/** What a project copy holds; node_modules is linked, not copied. */
const COPIED = ['package.json', 'tsconfig.json', 'knexfile.ts', '.env.example', 'src', 'bin', 'migrations', 'seeds', 'examples', 'test/fixtures'];

/** Variables of this machine that would change what the commands do or print. */
const SCRUBBED = /^(DATABASE_URL|DB_[A-Z_]+|PG[A-Z]+|TENANT_[A-Z_]+|MASTER_[A-Z_]+|CLERK_[A-Z_]+|GITHUB_[A-Z_]+|CI_[A-Z_]+|CI|FORCE_COLOR|npm_[a-z_]+)$/;

export interface Command {
  /** The command line after `$ `. */
  line: string;
  /** The lines the page shows after it. */
  expected: string[];
}

export interface Block {
  /** Index of the opening fence's line in the page. */
  start: number;
  /** Index of the closing fence's line. */
  end: number;
  commands: Command[];
}

/** The checked console blocks of a page, in order. */
export function checkedBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!MARKER.test(lines[i]!)) continue;
    const start = i;
    const commands: Command[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) {
      const line = lines[i]!;
      if (line.startsWith('$ ')) commands.push({ line: line.slice(2), expected: [] });
      else if (commands.length > 0) commands.at(-1)!.expected.push(line);
      else throw new Error(`line ${i + 1}: a checked console block must start with a "$ " command`);
    }
    blocks.push({ start, end: i, commands });
  }
  return blocks;
}

/**
 * Makes two outputs comparable: what differs between runs of the same commands on a fresh
 * database becomes a placeholder.
 */
export function normalise(output: string, project: string): string {
  const user = os.userInfo().username;
  const host = os.hostname();
  return output
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split(project)
    .join('<project>')
    .replace(/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?/g, '<time>')
    .replace(/\b\d{8}T\d{6}Z\b/g, '<stamp>')
    .replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, '<t>')
    .replace(/"(ms|durationMs|transactionMs)": \d+/g, '"$1": <t>') // durations in --json documents
    .replace(/\bpid \d+/g, 'pid <pid>')
    .replace(/\b[0-9a-f]{64}\b/g, '<sha256>')
    .replace(/\b\d+ bytes\b/g, '<n> bytes')
    .replace(/\b\d+ kB\b/g, '<n> kB')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
    .split(`${user}@${host}`)
    .join('<who>')
    .replace(/\b[\w.-]+@vm\b/g, '<who>')
    .replace(/(^|[\s"'(])\/(?:[\w.@+-]+\/)+/gm, '$1<dir>/')
    .split('\n')
    .map((line) => line.replace(/ {2,}/g, ' ').trimEnd())
    .join('\n')
    .trim();
}

function makeProject(): string {
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-migrate-docs-'));
  for (const entry of COPIED) {
    const from = path.join(repoRoot, entry);
    if (!fs.existsSync(from)) continue;
    fs.mkdirSync(path.dirname(path.join(project, entry)), { recursive: true });
    fs.cpSync(from, path.join(project, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(project, 'node_modules'), 'dir');
  return project;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!SCRUBBED.test(key)) env[key] = value;
  return { ...env, NO_COLOR: '1' };
}

interface Ran {
  command: Command;
  actual: string;
}

/** Runs a page's blocks in a fresh project; returns what every command printed. */
function runPage(blocks: Block[], project: string, log: (line: string) => void): Ran[] {
  const session: string[] = []; // export / cd lines, replayed before every command
  const env = cleanEnv();
  let status = 0;
  const ran: Ran[] = [];
  for (const block of blocks) {
    for (const command of block.commands) {
      log(`  $ ${command.line}`);
      const script = [...session, `(exit ${status})`, `{ ${command.line}\n} 2>&1`].join('\n');
      const result = spawnSync('bash', ['-c', script], { cwd: project, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      status = result.status ?? 1;
      ran.push({ command, actual: (result.stdout ?? '').replace(/\n$/, '') });
      if (/^(export|cd) /.test(command.line)) session.push(command.line);
    }
  }
  return ran;
}

function diff(expected: string, actual: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'docs-check-diff-'));
  try {
    fs.writeFileSync(path.join(dir, 'page'), `${expected}\n`);
    fs.writeFileSync(path.join(dir, 'ran'), `${actual}\n`);
    const result = spawnSync('diff', ['-u', 'page', 'ran'], { cwd: dir, encoding: 'utf8' });
    return result.error ? `--- page\n${expected}\n+++ ran\n${actual}` : result.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes the raw output back into the page (paths of the project copy shown as the repository's). */
function update(file: string, text: string, blocks: Block[], ran: Ran[], project: string): void {
  const lines = text.split('\n');
  const byCommand = new Map(ran.map((entry) => [entry.command, entry.actual]));
  for (const block of [...blocks].reverse()) {
    const body: string[] = [];
    for (const command of block.commands) {
      body.push(`$ ${command.line}`);
      const actual = byCommand.get(command)!.split(project).join(repoRoot);
      if (actual !== '') body.push(...actual.split('\n'));
    }
    lines.splice(block.start + 1, block.end - block.start - 1, ...body);
  }
  fs.writeFileSync(file, lines.join('\n'));
}

function main(argv: string[]): number {
  const updating = argv.includes('--update');
  const named = argv.filter((arg) => !arg.startsWith('--'));
  const pages = named.length > 0
    ? named.map((file) => path.resolve(file))
    : [path.join(repoRoot, 'README.md'), ...fs.readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(repoRoot, 'docs', f))];
  let failures = 0;
  let checked = 0;
  for (const file of pages) {
    const text = fs.readFileSync(file, 'utf8');
    const blocks = checkedBlocks(text);
    if (blocks.length === 0) continue;
    const name = path.relative(repoRoot, file);
    console.log(`${name}: ${blocks.length} checked block(s) on a fresh project and embedded database`);
    const project = makeProject();
    try {
      const started = Date.now();
      const ran = runPage(blocks, project, console.log);
      if (updating) {
        update(file, text, blocks, ran, project);
        console.log(`${name}: updated (${((Date.now() - started) / 1000).toFixed(0)} s)`);
        continue;
      }
      const mismatches = ran.filter(({ command, actual }) => normalise(command.expected.join('\n'), repoRoot) !== normalise(actual, project));
      checked += ran.length;
      for (const { command, actual } of mismatches) {
        console.log(`\n${name}: "$ ${command.line}" printed something else (normalised):`);
        console.log(diff(normalise(command.expected.join('\n'), repoRoot), normalise(actual, project)));
      }
      failures += mismatches.length;
      console.log(`${name}: ${ran.length - mismatches.length}/${ran.length} commands as shown (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    } finally {
      fs.rmSync(project, { recursive: true, force: true });
    }
  }
  if (updating) return 0;
  console.log(failures === 0 ? `docs:check: ${checked} commands print what the docs show` : `docs:check: ${failures} of ${checked} commands differ from the docs`);
  return failures === 0 ? 0 : 1;
}

// Run as a script only (the unit test imports the parser and the normaliser).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
