/**
 * One Clerk webhook delivery, whatever server received it: verify the Svix signature, then act on
 * the event. The Fetch API handler (webhook.ts) and the Node adapter (node-middleware.ts) only
 * translate their request and response types to and from this.
 */
import type { Knex } from 'knex';
import { Webhook, WebhookVerificationError } from 'svix';
import { registryOf } from '../tenants/options.ts';
import { ensureRegistry, markTenantDeleted } from '../tenants/registry.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { provisionTenant } from '../tenants/provision.ts';
import { describeError } from '../migration/describe-error.ts';
import { orgIdProblem } from '../tenants/naming.ts';

export interface ClerkWebhookOptions {
  /** Where tenants are provisioned (the app's pool; the handler never closes it). */
  knex: Knex;
  /** The endpoint's signing secret (whsec_…). Default: `CLERK_WEBHOOK_SIGNING_SECRET`. */
  signingSecret?: string;
  /** The tenant migrations directory. Default: `TENANT_MIGRATIONS_DIR`, else `migrations/tenant`. */
  tenantDirectory?: string;
  /** The registry table. Default `public.tenants`. */
  registry?: RegistryTable;
  /**
   * What `organization.deleted` does. `'mark'` (the default) sets the tenant's `deleted_at` and drops
   * nothing; `status` lists it. `'deprovision'` is refused: tenant-migrate cannot deprovision yet.
   */
  onDeleted?: 'mark' | 'deprovision';
  /** For `onDeleted: 'deprovision'`, once it exists: where the backup goes before the schema is dropped. */
  backupDir?: string;
  /** Where failures are reported (a 5xx answer alone shows only in the Clerk dashboard). Default: stderr. */
  onError?(message: string): void;
}

/** What a delivery is answered with: a status and a small JSON body. */
export interface DeliveryAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** The raw delivery: the body exactly as received (the signature covers its bytes) and the headers. */
export interface Delivery {
  body: string;
  headers: Record<string, string | undefined>;
}

interface ClerkEvent {
  type?: unknown;
  data?: { id?: unknown };
}

/**
 * Why these options cannot serve deliveries, or undefined when they can. Checked before every
 * delivery and when the Node middleware is created, so a misconfigured endpoint says so at once.
 */
export function optionsProblem(options: ClerkWebhookOptions): string | undefined {
  if (options.onDeleted === 'deprovision') {
    return "onDeleted: 'deprovision' is not available: tenant-migrate cannot deprovision a tenant yet. Use the default ('mark'), which sets deleted_at and drops nothing.";
  }
  if (options.onDeleted !== undefined && options.onDeleted !== 'mark') {
    return `onDeleted must be 'mark' or 'deprovision', got ${JSON.stringify(options.onDeleted)}.`;
  }
  if (!signingSecretOf(options)) {
    return 'No webhook signing secret: set CLERK_WEBHOOK_SIGNING_SECRET (Clerk dashboard → Webhooks → your endpoint → Signing Secret) or pass signingSecret.';
  }
  return undefined;
}

function signingSecretOf(options: ClerkWebhookOptions): string | undefined {
  return options.signingSecret ?? (process.env.CLERK_WEBHOOK_SIGNING_SECRET?.trim() || undefined);
}

/**
 * Verifies and handles one delivery. 400 when the signature is missing, wrong or older than five
 * minutes (nothing written); 200 only after the tenant's transaction committed; 500 when
 * provisioning or the configuration failed, so that Svix retries.
 *
 * @example
 *   const answer = await handleDelivery({ body: rawBody, headers }, { knex });
 *   res.writeHead(answer.status).end(JSON.stringify(answer.body));
 */
export async function handleDelivery(delivery: Delivery, options: ClerkWebhookOptions): Promise<DeliveryAnswer> {
  const report = options.onError ?? ((message: string) => process.stderr.write(`clerk webhook: ${message}\n`));
  const problem = optionsProblem(options);
  if (problem) {
    report(problem);
    return { status: 500, body: { ok: false, error: problem } };
  }
  let webhook: Webhook;
  try {
    webhook = new Webhook(signingSecretOf(options)!);
  } catch (error) {
    // The secret itself is unusable (not whsec_ + base64): a configuration error, not a bad request.
    const message = `the signing secret could not be used: ${describeError(error)}`;
    report(message);
    return { status: 500, body: { ok: false, error: message } };
  }
  let event: ClerkEvent;
  try {
    event = verify(webhook, delivery);
  } catch (error) {
    // Missing headers, no matching signature, a stale timestamp, or a signed body that is not JSON.
    return { status: 400, body: { ok: false, error: `signature verification failed: ${describeError(error)}` } };
  }

  const type = typeof event.type === 'string' ? event.type : undefined;
  if (type !== 'organization.created' && type !== 'organization.deleted') {
    return { status: 200, body: { ok: true, ignored: true, type: type ?? null } };
  }
  const orgId = event.data?.id;
  if (typeof orgId !== 'string' || orgIdProblem(orgId) !== undefined) {
    // Signed by Clerk yet unusable: retrying cannot help, so say it is a bad request.
    return { status: 400, body: { ok: false, type, error: 'data.id is not a usable org id' } };
  }

  try {
    if (type === 'organization.deleted') {
      // The deletion may be the first event this database sees, or predate the deleted_at column.
      await ensureRegistry(options.knex, registryOf(options));
      const marked = await markTenantDeleted(options.knex, registryOf(options), orgId);
      return { status: 200, body: { ok: true, type, orgId, marked } };
    }
    const result = await provisionTenant(options.knex, [orgId], { directory: tenantDirectoryOf(options), registry: options.registry });
    const tenant = result.tenants[0];
    if (!result.ok || !tenant) {
      const message = `${orgId}: provisioning failed: ${tenant?.error ?? 'no result'}`;
      report(message);
      return { status: 500, body: { ok: false, type, orgId, error: message } };
    }
    return { status: 200, body: { ok: true, type, orgId, schema: tenant.schema, status: tenant.status } };
  } catch (error) {
    const message = `${orgId}: ${type} failed: ${describeError(error)}`;
    report(message);
    return { status: 500, body: { ok: false, type, orgId, error: message } };
  }
}

/** The svix library checks the HMAC (constant time) and refuses timestamps more than 5 minutes off. */
function verify(webhook: Webhook, delivery: Delivery): ClerkEvent {
  const event = webhook.verify(delivery.body, {
    'svix-id': delivery.headers['svix-id'] ?? '',
    'svix-timestamp': delivery.headers['svix-timestamp'] ?? '',
    'svix-signature': delivery.headers['svix-signature'] ?? '',
  });
  if (typeof event !== 'object' || event === null) throw new WebhookVerificationError('the payload is not a JSON object');
  return event as ClerkEvent;
}

function tenantDirectoryOf(options: ClerkWebhookOptions): string {
  return options.tenantDirectory ?? (process.env.TENANT_MIGRATIONS_DIR?.trim() || 'migrations/tenant');
}
