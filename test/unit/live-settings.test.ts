import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/duration.ts';
import { DEFAULT_LOCK_RETRIES, DEFAULT_LOCK_TIMEOUT_MS, liveSettingsOf, pgOptionsOf, timeoutsSql } from '../../src/db/lock-settings.ts';
import { lockFailureOf, NotRetryableError } from '../../src/db/lock-errors.ts';
import { firstKeyword, loadRedaction, redactQuery } from '../../src/db/redact-query.ts';
import { retryPauseMs, MAX_PAUSE_MS } from '../../src/fleet/retry-pause.ts';
import { UsageError } from '../../src/errors.ts';

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code, severity: 'ERROR' });

describe('durations: one parser', () => {
  it.each([
    ['200', 200],
    ['0', 0],
    ['2s', 2000],
    ['1.5s', 1500],
    ['750ms', 750],
    [' 3S ', 3000],
  ])('%s → %i ms', (raw, ms) => expect(parseDuration(raw, '--lock-timeout')).toBe(ms));

  it.each(['', 'abc', '-1', '1.5', '2m', '1e3', '2147483648', '0.0001s'])('%j is refused (exit 2)', (raw) => {
    expect(() => parseDuration(raw, '--lock-timeout')).toThrow(UsageError);
  });

  it('0 can be refused where a limit is required', () => {
    expect(() => parseDuration('0', '--statement-timeout', { allowZero: false })).toThrow(/more than 0/);
  });
});

describe('lock settings', () => {
  it('options win over variables, variables over the defaults', () => {
    expect(liveSettingsOf({}, {})).toEqual({ lockTimeoutMs: DEFAULT_LOCK_TIMEOUT_MS, lockRetries: DEFAULT_LOCK_RETRIES, statementTimeoutMs: 0 });
    expect(liveSettingsOf({}, { TENANT_LOCK_TIMEOUT: '2s', TENANT_LOCK_RETRIES: '3', TENANT_STATEMENT_TIMEOUT: '60s' })).toEqual({ lockTimeoutMs: 2000, lockRetries: 3, statementTimeoutMs: 60000 });
    expect(liveSettingsOf({ lockTimeoutMs: 200, lockRetries: 0 }, { TENANT_LOCK_TIMEOUT: '2s', TENANT_LOCK_RETRIES: '3' })).toMatchObject({ lockTimeoutMs: 200, lockRetries: 0 });
  });

  it('bad values are usage errors', () => {
    expect(() => liveSettingsOf({}, { TENANT_LOCK_TIMEOUT: 'soon' })).toThrow(/TENANT_LOCK_TIMEOUT "soon" is not a duration/);
    expect(() => liveSettingsOf({}, { TENANT_LOCK_RETRIES: '-1' })).toThrow(UsageError);
    expect(() => liveSettingsOf({ lockRetries: 1001 }, {})).toThrow(UsageError);
    expect(() => liveSettingsOf({ lockTimeoutMs: -5 }, {})).toThrow(UsageError);
  });

  it('SET LOCAL in a transaction, session-wide for a transaction: false migration, PGOPTIONS for the pg tools', () => {
    expect(timeoutsSql({ lockTimeoutMs: 200, statementTimeoutMs: 0 })).toBe(
      "select set_config('lock_timeout', '200ms', true) as lock_timeout, set_config('statement_timeout', '0ms', true) as statement_timeout",
    );
    expect(timeoutsSql({ lockTimeoutMs: 200, statementTimeoutMs: 0 }, false)).toContain("'200ms', false");
    expect(pgOptionsOf({ lockTimeoutMs: 1000, statementTimeoutMs: 0 }, '-c work_mem=64MB')).toBe('-c work_mem=64MB -c lock_timeout=1000 -c statement_timeout=0');
  });
});

describe('lock errors', () => {
  it('classifies by SQLSTATE through the cause chain', () => {
    const wrapped = (error: Error) => Object.assign(new Error('20260101_notes.ts (up) failed', { cause: error }), { migration: 'x' });
    expect(lockFailureOf(wrapped(pgError('55P03', 'canceling statement due to lock timeout')))).toMatchObject({ reason: 'lock_timeout', retryable: true });
    expect(lockFailureOf(pgError('40P01', 'deadlock detected'))).toMatchObject({ reason: 'deadlock', retryable: true });
    expect(lockFailureOf(pgError('40001', 'could not serialize access'))).toMatchObject({ reason: 'deadlock', retryable: true });
    expect(lockFailureOf(pgError('57014', 'canceling statement due to statement timeout'))).toMatchObject({ reason: 'statement_timeout', retryable: false });
    expect(lockFailureOf(pgError('57014', 'canceling statement due to user request'))).toMatchObject({ reason: 'canceled', retryable: false });
    expect(lockFailureOf(new NotRetryableError('alone', pgError('55P03', 'lock timeout')))).toMatchObject({ reason: 'lock_timeout', retryable: false });
    expect(lockFailureOf(pgError('42P01', 'relation does not exist'))).toBeUndefined();
    expect(lockFailureOf('nope')).toBeUndefined();
  });
});

describe('retry pauses', () => {
  it('grow, are jittered between half and all of the step, and stop growing at 10 s', () => {
    expect(retryPauseMs(1, () => 0)).toBe(125);
    expect(retryPauseMs(1, () => 1)).toBe(250);
    expect(retryPauseMs(3, () => 1)).toBe(1000);
    expect(retryPauseMs(20, () => 1)).toBe(MAX_PAUSE_MS);
  });
});

describe('query redaction', () => {
  it('replaces every literal, keeps identifiers, keywords and parameters', async () => {
    await loadRedaction();
    expect(redactQuery("select * from notes where body = 'it''s secret' and id > 42 and n = -3.5 and b = true limit 10")).toBe(
      'select * from notes where body = ? and id > ? and n = ? and b = true limit ?',
    );
    expect(redactQuery("insert into notes (body) values (E'a\\'b', $$x$$, $1) -- ünïcode 'q'")).toBe('insert into notes (body) values (?, ?, $1)');
    expect(redactQuery("select 'é', interval '1 day', x'ff'")).toBe('select ?, interval ?, ?');
  });

  it('drops every comment (sqlcommenter tags, "-- user=…"), nested ones too, but not what a quoted identifier holds', async () => {
    await loadRedaction();
    expect(redactQuery("/* user='alice@example.com',password='s3' */ select count(*) from \"t--x\".notes -- token=line-secret\nwhere a = 1")).toBe(
      'select count(*) from "t--x".notes where a = ?',
    );
    expect(redactQuery("select /* outer /* inner 'x' */ still */ 1 /*tail*/")).toBe('select ?');
    expect(redactQuery("select '-- not a comment', \"a\"\"/*b\" from t")).toBe('select ?, "a""/*b" from t');
  });

  it('text the parser refuses (a query cut short by track_activity_query_size) shows its first keyword only', async () => {
    await loadRedaction();
    expect(redactQuery("select * from notes where body = 'sec")).toBe('select …');
    expect(firstKeyword('/* c */ UPDATE t')).toBe('update …');
  });
});
