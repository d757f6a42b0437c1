/**
 * The differential suite (suite.ts) with per-tenant roles on (issue 21): the same end states as
 * plain Knex, with tenant-migrate running as a non-superuser with CREATEROLE, and every tenant's
 * role holding exactly the grants of src/roles/grants.ts (ACLs applied alike on both routes).
 */
import { defineDifferentialSuite } from './suite.ts';

defineDifferentialSuite(true, { roles: true });
