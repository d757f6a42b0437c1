/**
 * The Node version the tests run on: a supported one (package.json `engines`), and in a CI leg for
 * one Node major (`.ci/run`, EXPECT_NODE_MAJOR=22) that very major — a leg that silently ran on
 * the machine's default Node would prove nothing. The CLI processes the tests start inherit it
 * (they run `process.execPath`).
 */
import { describe, expect, it } from 'vitest';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);

describe('the Node the tests run on', () => {
  it('is a supported version: 20.19+, 22.12+ or 24+', () => {
    const supported = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 24;
    expect(supported, `Node ${process.versions.node}`).toBe(true);
  });

  it.runIf(process.env.EXPECT_NODE_MAJOR)('is the major this CI leg installed (EXPECT_NODE_MAJOR)', () => {
    expect(String(major)).toBe(process.env.EXPECT_NODE_MAJOR);
  });
});
