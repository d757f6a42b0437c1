import type { Knex } from 'knex';

/**
 * Every organisation starts with these settings. Re-runnable: a key the org already has (its own
 * value, or an earlier seed's) is left alone, so `seed:tenants` brings only new defaults to
 * existing orgs.
 */
export const DEFAULT_SETTINGS = {
  locale: { default: 'en' },
  coaching: { sessionMinutes: 30, reminders: true },
  retention: { chatDays: 365 },
};

export async function seed(knex: Knex): Promise<void> {
  await knex('org_settings')
    .insert(Object.entries(DEFAULT_SETTINGS).map(([key, value]) => ({ key, value: JSON.stringify(value) })))
    .onConflict('key')
    .ignore();
}
