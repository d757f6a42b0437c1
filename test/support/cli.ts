/**
 * Runs the CLI the way a user does: a separate `node --import tsx src/cli/main.ts …` process with
 * a clean environment, so a test sees real exit codes, stdout and stderr, and no DATABASE_URL or
 * DB_* of the machine running the tests leaks in.
 *
 * @example
 *   const db = useFreshDatabase();
 *   const { code, stdout } = await runCli(['status', '--json'], { env: db.env });
 *   expect(code).toBe(0);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root (where package.json is). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cliEntry = path.join(repoRoot, 'src/cli/main.ts');
/** tsx's ESM loader, as an absolute URL so the CLI can run from any working directory. */
const tsxLoader = pathToFileURL(createRequire(path.join(repoRoot, 'package.json')).resolve('tsx')).href;

/** Variables a child process keeps from ours; everything else (DATABASE_URL, DB_*, CI noise) is dropped. */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'TEMP', 'TMP', 'LANG', 'LC_ALL', 'TZ', 'SYSTEMROOT', 'USERPROFILE'];

export interface CliOptions {
  /** Added to the clean environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Working directory (where `.env` and relative migration dirs are read). Default: the repo root. */
  cwd?: string;
  /** Written to the CLI's stdin, which is then closed (it is closed at once when not given). */
  input?: string;
  /** Kill (SIGKILL) and fail after this long. Default 45s (below the 60s test timeout). */
  timeoutMs?: number;
  /** Another TypeScript file to run the same way instead of the CLI (e.g. an example server). */
  script?: string;
}

export interface CliResult {
  /** Exit code; `null` when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CliProcess {
  child: ChildProcess;
  /** Settles when the process has exited (never rejects, even on timeout: see `timedOut`). */
  done: Promise<CliResult & { timedOut: boolean }>;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout+stderr match `pattern`; rejects if the process exits first or after `timeoutMs`. */
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
  /** Sends a signal (default SIGTERM). */
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<ChildProcess>();
// A worker that ends (or a test that forgot) must not leave CLI processes behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** The environment a CLI process gets: the few inherited variables plus `extra`. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (process.env[name] !== undefined) env[name] = process.env[name];
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/**
 * Starts the CLI and returns at once, for tests that watch or kill it mid-run.
 *
 * @example
 *   const run = startCli(['migrate:tenants'], { env: db.env });
 *   await run.waitForOutput(/org_1/);
 *   run.kill('SIGKILL');
 *   const { signal } = await run.done;
 */
export function startCli(args: string[], options: CliOptions = {}): CliProcess {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', tsxLoader, options.script ?? cliEntry, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: cliEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const listener of listeners) listener();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const listener of listeners) listener();
  });
  child.stdin!.on('error', () => {}); // the CLI may exit without reading stdin
  child.stdin!.end(options.input ?? '');

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 45_000);

  const done = new Promise<CliResult & { timedOut: boolean }>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      running.delete(child);
      for (const listener of listeners) listener();
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    };
    child.on('error', (error) => {
      stderr += `\n[runCli] could not start the CLI: ${error.message}`;
      finish(null, null);
    });
    child.on('close', finish);
  });
  let exited = false;
  void done.then(() => {
    exited = true;
  });

  return {
    child,
    done,
    stdout: () => stdout,
    stderr: () => stderr,
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
    waitForOutput: (pattern, timeoutMs = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const matches = () => {
          const text = stdout + stderr;
          return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
        };
        const cleanup = () => {
          clearTimeout(timeout);
          listeners.delete(check);
        };
        const check = () => {
          if (matches()) {
            cleanup();
            resolve();
          } else if (exited || child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`the CLI exited before printing ${String(pattern)}.\nstdout:\n${stdout}\nstderr:\n${stderr}`));
          }
        };
        const timeout = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${String(pattern)} from the CLI after ${timeoutMs}ms.\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}

/**
 * Runs the CLI to the end and resolves its exit code and output. Rejects (with the output so far)
 * when it has to be killed after `timeoutMs`, so a hanging CLI fails the test with a reason.
 *
 * @example
 *   const { code, stdout, stderr } = await runCli(['migrate:master'], { env: db.env });
 */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const { timedOut, ...result } = await startCli(args, options).done;
  if (timedOut) {
    throw new Error(
      `tenant-migrate ${args.join(' ')} did not finish within ${options.timeoutMs ?? 45_000}ms and was killed.\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
  return result;
}
