/**
 * A minimal Clerk webhook endpoint on node:http: POST /webhooks/clerk provisions a tenant for every
 * new organisation (see README.md next to this file).
 *
 *   DATABASE_URL=… CLERK_WEBHOOK_SIGNING_SECRET=whsec_… PORT=3000 [BACKUP_DIR=backups] node --import tsx examples/clerk-webhook/server.ts
 *
 * In your app, import from 'tenant-migrate' instead of '../../src/index.ts'.
 */
import http from 'node:http';
import { clerkWebhookMiddleware, loadConfig, openDatabase } from '../../src/index.ts';

const config = loadConfig();
const db = await openDatabase(config, { poolSize: config.poolMax ?? 5 });
const clerkWebhook = clerkWebhookMiddleware({
  knex: db.knex,
  signingSecret: config.clerk.webhookSigningSecret,
  tenantDirectory: config.tenantMigrationsDir,
  // BACKUP_DIR=backups: a deleted org is dropped after a verified backup there (default: only marked).
  ...(process.env.BACKUP_DIR ? { onDeleted: 'deprovision' as const, backupDir: process.env.BACKUP_DIR, connection: config.connection, dumpSchema: db.dumpSchema, pgBinDir: config.pgBinDir } : {}),
});

const server = http.createServer((req, res) => {
  if (req.url === '/webhooks/clerk') {
    void clerkWebhook(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
});

// Finish the deliveries in flight (a provision answered only after its commit), then close the pool.
const stop = () => server.close(() => void db.close().then(() => process.exit(0)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address() as { address: string; port: number };
  console.log(`clerk-webhook example listening on http://${address.address}:${address.port}/webhooks/clerk`);
});
