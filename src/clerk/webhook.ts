/**
 * The Clerk webhook endpoint as a Fetch API handler: Next.js route handlers, Hono, Remix, Bun and
 * Deno all hand over a `Request` and take a `Response`.
 */
import { handleDelivery, type ClerkWebhookOptions } from './handle-delivery.ts';

/**
 * Verifies a Clerk delivery (Svix signature) and acts on it: `organization.created` provisions the
 * org's tenant and answers 200 only once it committed; `organization.deleted` marks the tenant
 * `deleted_at` (nothing dropped); other events answer 200 and are ignored. A bad or stale signature
 * answers 400 and writes nothing; a failure answers 500 so that Svix retries.
 *
 * @example
 *   // app/api/webhooks/clerk/route.ts (Next.js)
 *   export const POST = (request: Request) => handleClerkWebhook(request, { knex });
 */
export async function handleClerkWebhook(request: Request, options: ClerkWebhookOptions): Promise<Response> {
  if (request.method !== 'POST') return Response.json({ ok: false, error: 'POST only' }, { status: 405, headers: { allow: 'POST' } });
  const body = await request.text();
  const answer = await handleDelivery({ body, headers: Object.fromEntries(request.headers) }, options);
  return Response.json(answer.body, { status: answer.status });
}
