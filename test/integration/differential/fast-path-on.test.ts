/** The differential suite (suite.ts) with the fast path on: batching, replay, one script. */
import { defineDifferentialSuite } from './suite.ts';

defineDifferentialSuite(true);
