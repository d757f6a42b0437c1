/**
 * The Clerk webhook endpoint for Node's http module and Express. The signature covers the exact
 * bytes Clerk sent, so the body must reach the handler unparsed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UsageError } from '../errors.ts';
import { handleDelivery, optionsProblem, type ClerkWebhookOptions } from './handle-delivery.ts';

/** A Node request; under Express, `body` is what a body parser left (a Buffer from `express.raw()`). */
type NodeRequest = IncomingMessage & { body?: unknown };

/**
 * A `(req, res)` handler for `http.createServer` or an Express route. With Express, mount it with
 * `express.raw({ type: 'application/json' })` (or before any JSON parser): a parsed body can no
 * longer be verified and is answered 500 with that advice.
 *
 * @example
 *   app.post('/webhooks/clerk', express.raw({ type: 'application/json' }), clerkWebhookMiddleware({ knex }));
 *   http.createServer(clerkWebhookMiddleware({ knex })).listen(3000);
 * @throws UsageError at once when the options cannot work (no signing secret, onDeleted: 'deprovision').
 */
export function clerkWebhookMiddleware(options: ClerkWebhookOptions): (req: NodeRequest, res: ServerResponse) => Promise<void> {
  const problem = optionsProblem(options);
  if (problem) throw new UsageError(problem);
  return async (req, res) => {
    const answer = async (status: number, body: Record<string, unknown>) => {
      res.writeHead(status, { 'content-type': 'application/json', ...(status === 405 ? { allow: 'POST' } : {}) });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return answer(405, { ok: false, error: 'POST only' });
    const body = await rawBody(req);
    if (body === undefined) {
      const error = 'the request body was already parsed, so its signature cannot be checked: mount the handler with express.raw({ type: "application/json" })';
      (options.onError ?? ((message: string) => process.stderr.write(`clerk webhook: ${message}\n`)))(error);
      return answer(500, { ok: false, error });
    }
    const headers = Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]));
    const result = await handleDelivery({ body, headers }, options);
    return answer(result.status, result.body);
  };
}

/** The body as sent: from a raw body parser, or read from the stream; undefined when a parser already turned it into an object. */
async function rawBody(req: NodeRequest): Promise<string | undefined> {
  if (Buffer.isBuffer(req.body)) return req.body.toString('utf8');
  if (typeof req.body === 'string') return req.body;
  if (req.body !== undefined && req.readableEnded) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
