/**
 * Issue 21, the preflight's decision (src/roles/preflight.ts) with the server's facts as input: the
 * rules no test server can show — PostgreSQL 14 and older (both CI legs run 15 and 17) and Citus
 * (its cluster is built by scripts/citus-cluster.sh only where `pnpm test:citus` runs). Every
 * other refusal is shown on a real server in test/integration/tenant-roles-lifecycle.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { preflightProblems, type PreflightFacts } from '../../src/roles/preflight.ts';

/** A set-up the preflight accepts: tool with CREATEROLE, a NOINHERIT app role that owns nothing. */
const good: PreflightFacts = {
  database: 'app',
  tool: 'migrator',
  version: 150020,
  toolSuper: false,
  toolCreateRole: true,
  groupExists: false,
  groupAdmin: null,
  appExists: true,
  appSuper: false,
  appBypassRls: false,
  appInherit: false,
  appOwnsSchemas: null,
  appMemberOfTool: false,
  publicCreate: false,
  citus: false,
  plpgsql: true,
};
const problems = (facts: Partial<PreflightFacts>) => preflightProblems({ ...good, ...facts }, 'app_tenants', 'app');

describe('the roles preflight decision', () => {
  it('accepts a sound set-up on 14, 15, 16 and 17', () => {
    for (const version of [140011, 150020, 160006, 170002]) expect(problems({ version })).toEqual([]);
    expect(problems({ version: 170002, appInherit: true })).toEqual([]); // 16+: the membership says INHERIT FALSE
  });

  it('PostgreSQL 14 and older while PUBLIC may CREATE in public: refused (from 15 on, the rule is not the default and is not checked)', () => {
    for (const version of [120020, 130016, 140011]) {
      const found = problems({ version, publicCreate: true });
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(/PUBLIC may CREATE in schema public .*REVOKE CREATE ON SCHEMA public FROM PUBLIC/);
    }
    expect(problems({ version: 150020, publicCreate: true })).toEqual([]);
  });

  it('an inheriting app role: refused before 16 (14 and 15), accepted from 16', () => {
    expect(problems({ version: 140011, appInherit: true })[0]).toMatch(/on PostgreSQL 14 TENANT_APP_ROLE "app" must be NOINHERIT/);
    expect(problems({ version: 150020, appInherit: true })[0]).toMatch(/on PostgreSQL 15 TENANT_APP_ROLE "app" must be NOINHERIT/);
    expect(problems({ version: 160006, appInherit: true })).toEqual([]);
  });

  it('Citus: refused with the reason (citus #7719), whatever else holds', () => {
    const found = problems({ citus: true });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/citus extension.*citusdata\/citus#7719.*TENANT_ROLES=off/);
  });

  it('ADMIN on an existing group is needed from 16 (a CREATEROLE role no longer administers every role), not before', () => {
    expect(problems({ version: 160006, groupExists: true, groupAdmin: false })[0]).toMatch(/no ADMIN option on the group role "app_tenants"/);
    expect(problems({ version: 150020, groupExists: true, groupAdmin: false })).toEqual([]);
    expect(problems({ version: 160006, groupExists: true, groupAdmin: false, toolSuper: true })).toEqual([]);
  });
});
