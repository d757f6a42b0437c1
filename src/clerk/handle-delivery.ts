/**
 * One Clerk webhook delivery, whatever server received it: verify the Svix signature, then act on
 * the event. The Fetch API handler (webhook.ts) and the Node adapter (node-middleware.ts) only
 * translate their request and response types to and from this.
 */
import { liveOptionsOf, type LiveOptions } from '../db/lock-settings.ts';
import type { Knex } from 'knex';
import type { ConnectionSettings } from '../config/load-config.ts';
import { inProcessServerAt } from '../embedded/in-process.ts';
import { Webhook, WebhookVerificationError } from 'svix';
import { registryOf } from '../tenants/options.ts';
import { ensureRegistry, markTenantDeleted } from '../tenants/registry.ts';
import type { RegistryTable } from '../tenants/registry-table.ts';
import { provisionTenant } from '../tenants/provision.ts';
import { describeError } from '../migration/describe-error.ts';
import { orgIdProblem } from '../tenants/naming.ts';

/** `lockTimeoutMs`, `lockRetries`, `statementTimeoutMs`: as for every command (db/lock-settings.ts). */
export interface ClerkWebhookOptions extends LiveOptions {
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
   * nothing; `status` lists it. `'deprovision'` runs `deprovisionTenant` with a verified backup in
   * `backupDir` first (a failed backup answers 500 and drops nothing).
   */
  onDeleted?: 'mark' | 'deprovision';
  /** With `onDeleted: 'deprovision'` (required): where each dump and its manifest go before the schema is dropped. */
  backupDir?: string;
  /**
   * With `onDeleted: 'deprovision'`: the connection pg_dump uses. Default: the Knex instance's own
   * connection settings (when they are an object, as `knexConfig` makes them).
   */
  connection?: ConnectionSettings;
  /** With `onDeleted: 'deprovision'` on the embedded server: its in-process dumper (`EmbeddedServer.dumpSchema`). */
  dumpSchema?(schema: string): Promise<string>;
  /** Where pg_dump and pg_restore are looked for before PATH. Default: `PG_BIN_DIR`. */
  pgBinDir?: string;
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
  if (options.onDeleted === 'deprovision' && !options.backupDir) {
    return "onDeleted: 'deprovision' needs backupDir: a deleted org's schema is dropped only after a verified backup there. Or use the default ('mark'), which sets deleted_at and drops nothing.";
  }
  if (options.onDeleted !== undefined && options.onDeleted !== 'mark' && options.onDeleted !== 'deprovision') {
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
    if (type === 'organization.deleted' && options.onDeleted === 'deprovision') {
      return await deprovisionDeleted(orgId, options, report);
    }
    if (type === 'organization.deleted') {
      // The deletion may be the first event this database sees, or predate the deleted_at column.
      await ensureRegistry(options.knex, registryOf(options));
      const marked = await markTenantDeleted(options.knex, registryOf(options), orgId);
      return { status: 200, body: { ok: true, type, orgId, marked } };
    }
    const result = await provisionTenant(options.knex, [orgId], { directory: tenantDirectoryOf(options), registry: options.registry, ...liveOptionsOf(options) });
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

/**
 * `organization.deleted` with `onDeleted: 'deprovision'`: a verified backup, then the drop (one
 * transaction under the tenant's lock). An org that is not registered — never provisioned, or a
 * redelivery after the drop — is answered 200 with nothing done; a failed backup 500, untouched.
 */
async function deprovisionDeleted(orgId: string, options: ClerkWebhookOptions, report: (message: string) => void): Promise<DeliveryAnswer> {
  const type = 'organization.deleted';
  const registry = registryOf(options);
  await ensureRegistry(options.knex, registry);
  if (!(await isRegistered(options.knex, registry, orgId))) return { status: 200, body: { ok: true, type, orgId, deprovisioned: false } };
  const { deprovisionTenant } = await import('../backup/deprovision.ts');
  const connection = options.connection ?? connectionOf(options.knex);
  // An embedded server of this process is dumped by PGlite itself (no pg_dump binary reaches it).
  const dumpSchema = options.dumpSchema ?? (connection && inProcessServerAt(connection.host, connection.port)?.dumpSchema);
  const failed = (why: string): DeliveryAnswer => {
    const message = `${orgId}: deprovisioning failed, nothing dropped: ${why}`;
    report(message);
    return { status: 500, body: { ok: false, type, orgId, error: message } };
  };
  let result: Awaited<ReturnType<typeof deprovisionTenant>>;
  try {
    result = await deprovisionTenant(options.knex, [orgId], {
      ...liveOptionsOf(options),
      backupDir: options.backupDir,
      connection,
      ...(dumpSchema ? { dumpSchema } : {}),
      pgBinDir: options.pgBinDir ?? (process.env.PG_BIN_DIR?.trim() || undefined),
      registry,
    });
  } catch (error) {
    // pg_dump missing or older than the server, the backup directory not writable …
    return failed(describeError(error));
  }
  const tenant = result.tenants[0]!;
  if (!result.ok) return failed(tenant.error ?? 'no result');
  return { status: 200, body: { ok: true, type, orgId, deprovisioned: true, schema: tenant.schema, manifest: tenant.manifest } };
}

async function isRegistered(knex: Knex, registry: RegistryTable, orgId: string): Promise<boolean> {
  return (await knex(registry.table).withSchema(registry.schema).where({ org_id: orgId }).first('org_id')) !== undefined;
}

/** The Knex instance's connection settings, when they are an object (what pg_dump needs). */
function connectionOf(knex: Knex): ConnectionSettings | undefined {
  const settings = knex.client.config.connection as Partial<ConnectionSettings> | string | undefined;
  if (!settings || typeof settings !== 'object' || !settings.host) return undefined;
  return { host: settings.host, port: Number(settings.port ?? 5432), user: settings.user ?? 'postgres', database: settings.database ?? 'postgres', password: settings.password, ssl: settings.ssl } as ConnectionSettings;
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
