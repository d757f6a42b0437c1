/**
 * Runs tenant-migrate's CLI as a child process, the way a user or CI does
 * (`node --import tsx src/cli/main.ts <command>`), and measures its wall time and peak RSS.
 * With `BENCH_CLI=built` it runs the compiled CLI instead (`node bin/tenant-migrate.js`, after
 * `pnpm build`), as users of the npm package do: tsx compiles the sources on every start, 1.5–2 s of
 * each run on a loaded 2-core machine (`--version` 2.3 s through tsx, 0.6 s built).
 *
 * Peak RSS and CPU time: GNU `/usr/bin/time -f '%M %U %S'` (the kernel's maxrss of the child, in
 * KiB, and its user and system seconds) when it exists; otherwise /proc/<pid>/status VmHWM polled
 * every 20 ms (may miss a peak in the last 20 ms) and no CPU time.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
const BUILT_CLI = path.join(REPO_ROOT, 'bin', 'tenant-migrate.js');

/** `BENCH_CLI=built`: the compiled CLI (dist/, from `pnpm build`); otherwise the sources through tsx. */
export function cliEntryArgs(): string[] {
  const mode = process.env.BENCH_CLI ?? 'tsx';
  if (mode === 'tsx') return ['--import', 'tsx', CLI];
  if (mode !== 'built') throw new Error(`BENCH_CLI must be tsx (the default) or built, got "${mode}".`);
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js'))) throw new Error('BENCH_CLI=built: dist/ is missing — run pnpm build first.');
  return [BUILT_CLI];
}
const GNU_TIME = '/usr/bin/time';

export interface ProcessRun {
  ms: number;
  peakRssKb: number | undefined;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The `(N ms)` the command reports itself (its summary line), i.e. without process start-up. */
  selfMs: number | undefined;
  /** CPU time (user + system) the child used, from GNU time; undefined without it. */
  cpuMs: number | undefined;
}

export type RssMethod = 'gnu-time' | 'proc-vmhwm';

let gnuTime: boolean | undefined;
export function rssMethod(): RssMethod {
  if (gnuTime === undefined) {
    try {
      fs.accessSync(GNU_TIME, fs.constants.X_OK);
      gnuTime = true;
    } catch {
      gnuTime = false;
    }
  }
  return gnuTime ? 'gnu-time' : 'proc-vmhwm';
}

/** The running child, so that Ctrl-C or a failure can end it (and only it: its own process group). */
const running = new Set<ChildProcess>();

export function killRunningChildren(): void {
  for (const child of running) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, 'SIGKILL'); // the child's own group (spawned detached): time + node
    } catch {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** Where `--cpu-prof` runs leave their profiles (bench/results/ is git-ignored). */
export const CPU_PROFILE_DIR = path.join(REPO_ROOT, 'bench', 'results', 'cpu-prof');

export interface CliOptions {
  /** Run the child with `node --cpu-prof` (profiles in {@link CPU_PROFILE_DIR}/<profileName>-<time>/). */
  cpuProfile?: boolean;
  profileName?: string;
}

/** `node --import tsx src/cli/main.ts ...args` (or the built CLI: {@link cliEntryArgs}) with `env` added to ours. */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv, options: CliOptions = {}): Promise<ProcessRun> {
  // One directory per run: every thread writes its own profile (tsx's loader runs in a worker
  // thread); the main thread's file is CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile.
  const profileDir = options.cpuProfile
    ? path.join(CPU_PROFILE_DIR, `${options.profileName ?? args[0] ?? 'cli'}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
    : undefined;
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const nodeArgs = [...profile, ...cliEntryArgs(), ...args];
  const method = rssMethod();
  const rssFile = method === 'gnu-time' ? path.join(os.tmpdir(), `tm-bench-rss-${process.pid}-${Date.now()}.txt`) : undefined;
  const [command, commandArgs] =
    method === 'gnu-time' ? [GNU_TIME, ['-f', '%M %U %S', '-o', rssFile!, process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];

  const started = performance.now();
  const child = spawn(command, commandArgs, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, FORCE_COLOR: '0', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));

  let polledKb: number | undefined;
  const poll =
    method === 'proc-vmhwm'
      ? setInterval(() => {
          const kb = readVmHwm(child.pid);
          if (kb !== undefined) polledKb = Math.max(polledKb ?? 0, kb);
        }, 20)
      : undefined;

  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  }).finally(() => {
    running.delete(child);
    if (poll) clearInterval(poll);
  });
  const ms = performance.now() - started;

  let peakRssKb = polledKb;
  let cpuMs: number | undefined;
  if (rssFile) {
    try {
      // GNU time writes "Command exited with non-zero status N" before the values when it fails.
      const lines = fs.readFileSync(rssFile, 'utf8').trim().split('\n');
      const [kb, user, system] = (lines.at(-1) ?? '').split(' ').map(Number);
      peakRssKb = kb !== undefined && Number.isFinite(kb) && kb > 0 ? kb : undefined;
      cpuMs = user !== undefined && system !== undefined && Number.isFinite(user + system) ? (user + system) * 1000 : undefined;
    } catch {
      peakRssKb = undefined;
    } finally {
      fs.rmSync(rssFile, { force: true });
    }
  }
  const stdout = Buffer.concat(out).toString('utf8');
  const stderr = Buffer.concat(err).toString('utf8');
  const self = /\((\d+) ms\)\s*$/m.exec(stripAnsi(stdout));
  return { ms, peakRssKb, cpuMs, exitCode: code, signal, stdout, stderr, selfMs: self ? Number(self[1]) : undefined };
}

function readVmHwm(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmHWM:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

/**
 * Splits org ids into as few `provision:tenant` calls as the OS's argument limit allows. Linux
 * caps argv + environment together at ARG_MAX (usually stack limit / 4, e.g. 2 MiB); we use at most
 * half of it, minus the environment and the interpreter's own arguments.
 */
export function splitForArgv(ids: readonly string[], fixedBytes: number): string[][] {
  const argMax = systemArgMax();
  const envBytes = Object.entries(process.env).reduce((sum, [key, value]) => sum + key.length + (value?.length ?? 0) + 2 + 8, 0);
  const budget = Math.max(16 * 1024, Math.floor(argMax / 2) - envBytes - fixedBytes);
  const calls: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const id of ids) {
    const cost = Buffer.byteLength(id) + 1 + 8; // the string, its NUL, its argv pointer
    if (current.length > 0 && bytes + cost > budget) {
      calls.push(current);
      current = [];
      bytes = 0;
    }
    current.push(id);
    bytes += cost;
  }
  if (current.length > 0) calls.push(current);
  return calls;
}

let argMaxCache: number | undefined;
/** ARG_MAX as `getconf` reports it (Linux: max(stack rlimit / 4, 128 KiB)); 128 KiB when unknown. */
export function systemArgMax(): number {
  if (argMaxCache !== undefined) return argMaxCache;
  let value = 131_072;
  try {
    const reported = Number(execFileSync('getconf', ['ARG_MAX'], { encoding: 'utf8' }).trim());
    if (Number.isFinite(reported) && reported > 0) value = reported;
  } catch {
    // keep the fallback
  }
  argMaxCache = value;
  return value;
}
