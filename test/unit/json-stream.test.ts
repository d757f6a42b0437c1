/**
 * Issue 23, part 3: a --json report of 100,000 tenants is written piece by piece, never as one
 * string, and is byte for byte what JSON.stringify(value, null, 2) gives.
 */
import { describe, expect, it } from 'vitest';
import { writeJsonDocument } from '../../src/cli/json-stream.ts';

function streamed(value: unknown): { text: string; chunks: number; largest: number } {
  const chunks: string[] = [];
  writeJsonDocument((chunk) => chunks.push(chunk), value);
  return { text: chunks.join(''), chunks: chunks.length, largest: Math.max(...chunks.map((chunk) => chunk.length)) };
}

describe('writeJsonDocument', () => {
  it('writes what JSON.stringify(value, null, 2) writes, for every kind of value', () => {
    const values: unknown[] = [
      null,
      0,
      'a "quoted"\nline',
      [],
      {},
      [1, [2, []], { a: {} }],
      { command: 'migrate:tenants', ok: true, summary: { total: 2, ms: 3 }, skipped: undefined, fn: () => 1, at: new Date(0), tenants: [{ orgId: 'org_a', migrations: ['x'], error: undefined }] },
      { nested: { list: Array.from({ length: 120 }, (_, i) => ({ i, name: `t${i}`, tags: i % 2 ? [] : ['a', 'b'], gone: undefined })) } },
      Array.from({ length: 80 }, (_, i) => (i % 3 ? i : undefined)),
    ];
    for (const value of values) expect(streamed(value).text).toBe(`${JSON.stringify(value, null, 2)}\n`);
  });

  it('sends a report of 30,000 tenants in chunks of about 64 KB, one valid document', () => {
    const tenants = Array.from({ length: 30_000 }, (_, i) => ({ orgId: `org_${i}`, schema: `tid_${i}`, status: 'up-to-date', migrations: [], ms: 1 }));
    const report = { command: 'migrate:tenants', ok: true, summary: { total: tenants.length, upToDate: tenants.length, ms: 1 }, tenants };
    const { text, chunks, largest } = streamed(report);
    expect(chunks).toBeGreaterThan(50);
    expect(largest).toBeLessThan(70 * 1024);
    expect(JSON.parse(text).tenants).toHaveLength(30_000);
    expect(text).toBe(`${JSON.stringify(report, null, 2)}\n`);
  }, 30_000);
});
