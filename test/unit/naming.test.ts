import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { orgIdProblem, tenantSchemaName, validateOrgIds } from '../../src/tenants/naming.ts';

describe('tenantSchemaName', () => {
  it('is tid_ + the first 10 hex characters of sha256(orgId)', () => {
    const hex = createHash('sha256').update('org_2abc123def456').digest('hex');
    expect(tenantSchemaName('org_2abc123def456')).toBe(`tid_${hex.slice(0, 10)}`);
    expect(tenantSchemaName('org_a')).not.toBe(tenantSchemaName('org_A')); // org ids match exactly
  });
});

describe('org id validation', () => {
  it.each([
    ['', 'empty'],
    [' org_a', 'whitespace'],
    ['org_a\t', 'whitespace'],
    ['org\u0000a', 'control character'],
    ['org\u007fa', 'control character'],
    ['x'.repeat(129), '129 characters'],
  ])('refuses %j (%s)', (orgId, why) => {
    expect(orgIdProblem(orgId)).toContain(why);
  });

  it('accepts Clerk ids and anything printable up to 128 characters', () => {
    for (const orgId of ['org_2abc123def456', 'x'.repeat(128), `o'";--`, 'org_ünïcode']) expect(orgIdProblem(orgId)).toBeUndefined();
  });

  it('checks every id of a call and refuses all of them if one is bad', () => {
    expect(() => validateOrgIds(['org_ok', 'bad id'])).toThrow(UsageError);
    expect(() => validateOrgIds([])).toThrow(/No org id/);
    expect(validateOrgIds(['org_a', 'org_b', 'org_a'])).toEqual(['org_a', 'org_b']);
  });

  it('refuses two ids of one call that collide, naming both', () => {
    expect(() => validateOrgIds(['org_collide_60272', 'org_collide_2376068'])).toThrow(/org_collide_2376068.*collides with.*org_collide_60272/);
  });
});
