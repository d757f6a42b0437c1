/**
 * Who ran a command, for the run ledger: the OS user and host, the process, and the CI identity
 * when the run is a CI job. Values only from the environment names below — never the whole
 * environment, which holds secrets.
 */
import os from 'node:os';

/** CI variables worth keeping (GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins). None is a secret. */
const CI_VARIABLES = [
  'GITHUB_ACTOR',
  'GITHUB_SHA',
  'GITHUB_RUN_ID',
  'GITHUB_REPOSITORY',
  'GITHUB_WORKFLOW',
  'GITHUB_REF',
  'CI_JOB_URL',
  'CI_PIPELINE_URL',
  'CI_COMMIT_SHA',
  'GITLAB_USER_LOGIN',
  'BUILDKITE_BUILD_URL',
  'BUILDKITE_BUILD_CREATOR',
  'CIRCLE_BUILD_URL',
  'CIRCLE_USERNAME',
  'BUILD_URL',
] as const;

export interface Actor {
  /** The database role, filled in by the server when the row is written. */
  databaseUser?: string;
  osUser: string;
  host: string;
  pid: number;
  /** The CI variables above that are set. */
  ci?: Record<string, string>;
}

export function currentActor(env: NodeJS.ProcessEnv = process.env): Actor {
  const ci = Object.fromEntries(CI_VARIABLES.flatMap((name) => (env[name]?.trim() ? [[name, env[name]!.trim()]] : [])));
  return {
    osUser: safeUserName(),
    host: os.hostname(),
    pid: process.pid,
    ...(Object.keys(ci).length > 0 ? { ci } : {}),
  };
}

function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.USERNAME ?? 'unknown'; // no passwd entry (a container's random uid)
  }
}

/**
 * Command-line arguments as the ledger keeps them: a URL's password, and anything shaped like a
 * Clerk key or webhook secret, replaced by `***`.
 */
export function redactArgs(args: readonly string[]): string[] {
  return args.map((arg) =>
    arg
      .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@')
      .replace(/\b(sk|pk|rk)_(live|test)_[A-Za-z0-9]+/g, '$1_$2_***')
      .replace(/\bwhsec_[A-Za-z0-9+/=]+/g, 'whsec_***')
      .replace(/^(--?(?:password|secret|token|key)[^=]*=).*/i, '$1***'),
  );
}
