/**
 * Summarises a V8 `.cpuprofile` (from `pnpm bench --cpu-prof` or `node --cpu-prof`): where the
 * process's wall time went — idle (waiting on PostgreSQL), GC, and self time by package, by file
 * and by function.
 *
 *   pnpm -s exec tsx bench/profile-summary.ts bench/results/cpu-prof/migrate-<time>/ [--top 25]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

const REPO = fileURLToPath(new URL('..', import.meta.url));

/** "(idle)", "(garbage collector)", "knex", "pg", "src/migration/run-schema.ts", "node:internal", … */
function bucketOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const path = url.replace(/^file:\/\//, '');
  const modules = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (modules) return modules[1]!;
  if (path.startsWith('node:')) return 'node: (runtime)';
  if (path.startsWith(REPO)) return path.slice(REPO.length);
  return path;
}

function main(): void {
  // `… | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => process.exit(error.code === 'EPIPE' ? 0 : 1));
  const args = process.argv.slice(2);
  const topIndex = args.indexOf('--top');
  const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
  const target = args.find((arg, i) => !arg.startsWith('--') && (topIndex < 0 || i !== topIndex + 1));
  if (!target) {
    process.stderr.write('usage: tsx bench/profile-summary.ts <dir or file.cpuprofile> [--top N]\n');
    process.exit(2);
  }
  // A directory from `pnpm bench --cpu-prof`: one profile per thread, main thread (tid 0) first.
  const files = fs.statSync(target).isDirectory()
    ? fs
        .readdirSync(target)
        .filter((name) => name.endsWith('.cpuprofile'))
        .sort((a, b) => threadOf(a) - threadOf(b))
        .map((name) => path.join(target, name))
    : [target];
  for (const file of files) summarize(file, top);
}

/** Node names profiles CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0. */
function threadOf(name: string): number {
  const parts = name.split('.');
  const tid = Number(parts[4]);
  return Number.isFinite(tid) ? tid : 1e9;
}

function summarize(file: string, top: number): void {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  // Self time per node from the sample stream (timeDeltas[i] is the time before sample i).
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const next = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, next));
  }
  const totalUs = profile.endTime - profile.startTime;
  const buckets = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const bucket = bucketOf(url, functionName);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
    const name = `${functionName || '(anonymous)'}  ${url ? `${bucket}:${lineNumber + 1}` : ''}`.trim();
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / totalUs).toFixed(1).padStart(5)}%`;
  const print = (title: string, entries: Map<string, number>, limit: number) => {
    process.stdout.write(`\n${title}\n`);
    for (const [name, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, limit)) process.stdout.write(`  ${ms(us)}  ${name}\n`);
  };
  const tid = threadOf(path.basename(file));
  const thread = tid === 0 ? 'main thread' : tid < 1e9 ? `worker thread ${tid}` : 'thread unknown';
  process.stdout.write(`\n═══ ${file} (${thread})\nprofiled wall time: ${(totalUs / 1000).toFixed(0)} ms, ${samples.length} samples\n`);
  print('self time by package / file:', buckets, top);
  print(`top ${top} functions by self time:`, functions, top);
}

main();
