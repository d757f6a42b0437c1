/**
 * A local stand-in for the Clerk Backend API's organisation list, on 127.0.0.1: `GET
 * /v1/organizations?limit&offset` answering `{ data, total_count }` like Clerk, with a page size
 * cap (to force pagination with few orgs) and scripted failures (a 429 with Retry-After, a 500).
 *
 * @example
 *   const clerk = await startFakeClerk({ orgIds: ['org_a', 'org_b'], pageCap: 1 });
 *   clerk.failures.push({ status: 429, headers: { 'retry-after': '1' } });
 *   // … CLERK_API_URL=clerk.url …
 *   await clerk.close();
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeClerk {
  url: string;
  /** The organisations the fake instance has (edit between runs). */
  orgIds: string[];
  /** Answers given, in order, before any real page: each is used once. */
  failures: { status: number; headers?: Record<string, string> }[];
  /** Every request received: offset, limit, and the Authorization header. */
  requests: { offset: number; limit: number; authorization: string | undefined; status: number }[];
  close(): Promise<void>;
}

export async function startFakeClerk(options: { orgIds?: string[]; pageCap?: number } = {}): Promise<FakeClerk> {
  const fake: Omit<FakeClerk, 'url' | 'close'> = { orgIds: [...(options.orgIds ?? [])], failures: [], requests: [] };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const limit = Number(url.searchParams.get('limit') ?? 10);
    const failure = fake.failures.shift();
    const status = url.pathname !== '/v1/organizations' ? 404 : failure ? failure.status : 200;
    fake.requests.push({ offset, limit, authorization: req.headers.authorization, status });
    if (status !== 200) {
      res.writeHead(status, { 'content-type': 'application/json', ...failure?.headers });
      res.end(JSON.stringify({ errors: [{ message: status === 429 ? 'Too many requests' : 'Internal server error' }] }));
      return;
    }
    // Like Clerk: the page is at most `limit` long, and the server may cap it further.
    const size = Math.min(limit, options.pageCap ?? limit);
    const data = fake.orgIds.slice(offset, offset + size).map((id) => ({ object: 'organization', id, name: id }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data, total_count: fake.orgIds.length }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(fake, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
