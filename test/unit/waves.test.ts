import { describe, expect, it } from 'vitest';
import { parseWaves, splitIntoWaves } from '../../src/fleet/waves.ts';

const fleet = (n: number) => Array.from({ length: n }, (_, i) => ({ orgId: `org_${String(i).padStart(3, '0')}` }));
const sizes = (waves: unknown[][]) => waves.map((wave) => wave.length);

describe('parseWaves', () => {
  it('reads counts and percentages', () => {
    expect(parseWaves('1, 10%,100%')).toEqual([{ count: 1 }, { percent: 10 }, { percent: 100 }]);
    expect(parseWaves('2.5%')).toEqual([{ percent: 2.5 }]);
  });
  it.each(['0', '-1', 'abc', '101%', '0%', '5,5', '5,2', '50%,10%', '1,,2', '', '100%,5'])('refuses %j', (text) => {
    expect(() => parseWaves(text)).toThrow(/Nothing was changed/);
  });
  it('--canary takes one size', () => {
    expect(parseWaves('10%', '--canary')).toEqual([{ percent: 10 }]);
    expect(() => parseWaves('1,10%', '--canary')).toThrow(/for several waves use --waves 1,10%/);
  });
});

describe('splitIntoWaves', () => {
  it('treats sizes as running totals of the fleet, rounding percentages up, the last wave taking the rest', () => {
    expect(sizes(splitIntoWaves(fleet(100), parseWaves('1,10%,100%')))).toEqual([1, 9, 90]);
    expect(sizes(splitIntoWaves(fleet(100), parseWaves('5')))).toEqual([5, 95]);
    expect(sizes(splitIntoWaves(fleet(3), parseWaves('1,10%,100%')))).toEqual([1, 2]); // 10% of 3 is 1: no empty wave
    expect(sizes(splitIntoWaves(fleet(2), parseWaves('5,100%')))).toEqual([2]);
  });
  it('keeps the order it is given, and puts named canaries first', () => {
    const tenants = fleet(10);
    const waves = splitIntoWaves(tenants, parseWaves('5,100%'), ['org_007', 'org_003']);
    expect(waves[0]!.map((tenant) => tenant.orgId)).toEqual(['org_003', 'org_007']);
    expect(sizes(waves)).toEqual([2, 3, 5]);
    expect(waves[1]!.map((tenant) => tenant.orgId)).toEqual(['org_000', 'org_001', 'org_002']);
    expect(sizes(splitIntoWaves(tenants, [], ['org_001']))).toEqual([1, 9]);
  });
});
