import { describe, expect, it } from 'vitest';
import { provisionTenant } from '../../src/tenants/provision.ts';
import { withTenant } from '../../src/tenants/with-tenant.ts';
import { useFreshDatabase } from '../support/database.ts';
import { fixture } from '../support/trees.ts';

const db = useFreshDatabase({ prefix: 'tm_with_tenant' });
const orgIds = ['org_one', 'org_two', 'org_three', 'org_four'];

describe('withTenant', () => {
  it('hundreds of concurrent calls on a pool of 3: each sees only its own rows, no connection keeps a tenant path', async () => {
    await provisionTenant(db.knex(), orgIds, { directory: fixture('tenant-basic') });
    for (const orgId of orgIds) {
      await withTenant(db.knex(), orgId, (trx) => trx('org_users').insert({ email: `${orgId}@example.com` }));
    }

    const knex = db.createKnex({ pool: { min: 3, max: 3 } });
    const calls = Array.from({ length: 400 }, (_, i) => orgIds[i % orgIds.length]!);
    const seen = await Promise.all(
      calls.map((orgId) =>
        withTenant(knex, orgId, async (trx) => {
          await trx.raw('select pg_sleep(0.001)'); // let calls interleave across the three connections
          return (await trx('org_users').pluck('email')) as string[];
        }),
      ),
    );
    seen.forEach((emails, i) => expect(emails).toEqual([`${calls[i]}@example.com`]));

    // After the transactions, every pooled connection is back on the default path.
    const paths = await Promise.all(Array.from({ length: 3 }, () => knex.raw('show search_path')));
    for (const { rows } of paths) expect(rows[0].search_path).toBe('"$user", public');
  });

  it('refuses an org with no schema instead of silently reaching public', async () => {
    await db.knex().raw('create table if not exists public.org_users (email text)');
    await expect(withTenant(db.knex(), 'org_never_provisioned', (trx) => trx('org_users').select())).rejects.toThrow(/provision it first/);
  });
});
