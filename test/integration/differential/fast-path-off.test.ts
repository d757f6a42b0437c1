/** The differential suite (suite.ts) with the fast path off (`fastPath: false`): every module runs for every tenant. */
import { defineDifferentialSuite } from './suite.ts';

defineDifferentialSuite(false);
