/**
 * The one part of Clerk's Backend API tenant-migrate reads: the list of organisations
 * (`GET /v1/organizations`, paginated with `limit`/`offset`, rate limited with 429 + Retry-After).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface ClerkApiOptions {
  /** `CLERK_SECRET_KEY` (sk_live_… / sk_test_…), sent as a Bearer token. */
  secretKey: string;
  /** Base URL, default https://api.clerk.com (`CLERK_API_URL`). */
  apiUrl?: string;
  /** Organisations asked for per request (Clerk allows up to 500). Default 500. */
  pageSize?: number;
  /** 429 answers tolerated in a row before giving up. Default 5. */
  maxRetries?: number;
  /** Longest wait a Retry-After may impose, in seconds. Default 60. */
  maxWaitSeconds?: number;
}

/** The Clerk API answered with an error (or not at all). Exit code 1: nothing was changed. */
export class ClerkApiError extends Error {
  override readonly name = 'ClerkApiError';
  readonly exitCode = 1;
}

interface OrganizationPage {
  data?: { id?: unknown }[];
  total_count?: unknown;
}

/**
 * Every organisation id in the Clerk instance, in Clerk's order. Follows `total_count` rather than
 * trusting that a short page is the last (the server may cap `limit`), and waits out 429s.
 *
 * @example
 *   const orgIds = await listClerkOrganizationIds({ secretKey: process.env.CLERK_SECRET_KEY! });
 * @throws ClerkApiError naming the status and what to check.
 */
export async function listClerkOrganizationIds(options: ClerkApiOptions): Promise<string[]> {
  const base = (options.apiUrl ?? 'https://api.clerk.com').replace(/\/+$/, '');
  const limit = options.pageSize ?? 500;
  const ids: string[] = [];
  for (let offset = 0; ; ) {
    const url = `${base}/v1/organizations?limit=${limit}&offset=${offset}`;
    const page = await getWithRetries(url, options);
    const data = Array.isArray(page.data) ? page.data : undefined;
    if (!data || typeof page.total_count !== 'number') {
      throw new ClerkApiError(`GET ${url}: the answer has no data array or total_count; is CLERK_API_URL the Clerk Backend API?`);
    }
    for (const org of data) {
      if (typeof org.id !== 'string') throw new ClerkApiError(`GET ${url}: an organisation without an id.`);
      ids.push(org.id);
    }
    offset += data.length;
    if (data.length === 0 || offset >= page.total_count) return ids;
  }
}

async function getWithRetries(url: string, options: ClerkApiOptions): Promise<OrganizationPage> {
  const maxRetries = options.maxRetries ?? 5;
  for (let attempt = 0; ; attempt += 1) {
    let response: Response;
    try {
      response = await fetch(url, { headers: { authorization: `Bearer ${options.secretKey}`, accept: 'application/json' } });
    } catch (error) {
      throw new ClerkApiError(`GET ${url}: the Clerk API could not be reached (${(error as Error).cause ?? (error as Error).message}). Check CLERK_API_URL.`);
    }
    if (response.status === 429 && attempt < maxRetries) {
      await response.body?.cancel();
      await sleep(retryAfterSeconds(response.headers.get('retry-after'), options.maxWaitSeconds ?? 60) * 1000);
      continue;
    }
    if (!response.ok) throw await apiError(url, response);
    return (await response.json()) as OrganizationPage;
  }
}

/** Retry-After as seconds (a number or an HTTP date), at least 1 and at most `max`. */
export function retryAfterSeconds(header: string | null, max: number): number {
  if (header === null) return 1;
  const seconds = /^\d+$/.test(header.trim()) ? Number(header.trim()) : (Date.parse(header) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.min(Math.max(seconds, 1), max) : 1;
}

async function apiError(url: string, response: Response): Promise<ClerkApiError> {
  const text = (await response.text().catch(() => '')).slice(0, 300);
  const hint =
    response.status === 401 || response.status === 403
      ? ' Check CLERK_SECRET_KEY (Clerk dashboard → API keys → Secret keys).'
      : response.status === 429
        ? ' Still rate limited after several retries; run it again later.'
        : '';
  return new ClerkApiError(`GET ${url}: the Clerk API answered ${response.status}${text ? `: ${text}` : ''}.${hint}`);
}
